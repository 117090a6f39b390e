"""Where the Ansible project (playbooks/, roles/, ansible.cfg) and its inventories live."""

from __future__ import annotations

import os
from pathlib import Path

from mcpctl.errors import McpError

PLAYBOOK_DIR_VARIABLE = "MCP_PLAYBOOK_DIR"


def project_dir() -> Path:
    """The checkout mcpctl runs from: playbooks/, roles/ and ansible.cfg sit next to mcpctl/."""
    import mcpctl

    root = Path(mcpctl.__file__).resolve().parents[1]
    if not (root / "ansible.cfg").is_file():
        raise McpError(
            f"{root}: no ansible.cfg here — mcpctl runs playbooks from a checkout of "
            "mcp-cluster (pip install -e .), not from an installed wheel"
        )
    return root


def playbook_dir(override: str | None = None) -> Path:
    """`override` (--playbook-dir), else $MCP_PLAYBOOK_DIR, else the project's playbooks/."""
    chosen = override or os.environ.get(PLAYBOOK_DIR_VARIABLE)
    directory = Path(chosen).resolve() if chosen else project_dir() / "playbooks"
    if not directory.is_dir():
        source = "--playbook-dir" if override else PLAYBOOK_DIR_VARIABLE if chosen else ""
        raise McpError(
            f"{directory}: no such directory"
            + (f" (from {source})" if source else " — is this a checkout of mcp-cluster?")
        )
    return directory


def playbook_path(name: str, override: str | None = None) -> Path:
    path = playbook_dir(override) / f"{name}.yml"
    if not path.is_file():
        raise McpError(f"{path}: no such playbook — `mcpctl {name}` runs it")
    return path


def inventory_dir(spec_file: str | os.PathLike[str], cluster: str) -> Path:
    """Where the inventory of the spec `spec_file` (cluster `cluster`) is rendered.

    A sandbox's spec keeps its inventory beside it, in the sandbox's state directory, so that
    `sandbox down` leaves nothing behind in the checkout; any other spec renders into
    inventory/<cluster>/ at the top of the project (ignored by git, except inventory/example/).
    """
    from mcpctl.sandbox.paths import SandboxLayout

    sandbox = SandboxLayout.default()
    if Path(spec_file).resolve() == sandbox.spec_file.resolve():
        return sandbox.inventory_dir
    return project_dir() / "inventory" / cluster
