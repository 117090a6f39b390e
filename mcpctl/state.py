"""What mcpctl keeps on the operator's machine per cluster, in ~/.local/state/mcp-cluster/:
run logs under runs/<cluster>/, and secrets and tunnels under <cluster>/ (for the sandbox's
cluster that is the sandbox's own state dir). Never in the working tree, where a secret could
be committed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def state_root() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "mcp-cluster"


def runs_dir(cluster: str) -> Path:
    """Per-cluster artifacts of playbook runs (ansible-runner keeps the newest few)."""
    return state_root() / "runs" / cluster


def cluster_state_dir(cluster: str) -> Path:
    """The cluster's private folder (mode 0700), made if missing."""
    directory = state_root() / cluster
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    return directory


def write_private(path: Path, text: str) -> None:
    """Write `text` readable by this user only (0600) from its first byte, and atomically:
    a reader sees the old file or the new one, never a part."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as file:  # mkstemp creates it 0600
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
