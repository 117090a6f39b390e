"""Which cluster spec a command that talks to the running cluster reads.

`-f FILE`, else $MCP_SPEC, else ./cluster.yaml; and when none of those is there, the spec of
the sandbox that is up (`mcpctl sandbox up` writes it, `down` removes it), so the sandbox's
cluster works from any folder with no flags.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcpctl.errors import UsageError

SPEC_VARIABLE = "MCP_SPEC"
DEFAULT_SPEC = "cluster.yaml"


def find_spec(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(SPEC_VARIABLE):
        return Path(os.environ[SPEC_VARIABLE])
    if Path(DEFAULT_SPEC).exists():
        return Path(DEFAULT_SPEC)
    from mcpctl.sandbox.paths import SandboxLayout

    sandbox_spec = SandboxLayout.default().spec_file
    if sandbox_spec.is_file():
        return sandbox_spec
    raise UsageError(
        f"no cluster spec: no ./{DEFAULT_SPEC} and no sandbox is up — pass -f FILE (or set "
        f"${SPEC_VARIABLE}), or --address URL for a cluster reached another way"
    )
