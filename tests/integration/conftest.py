"""Integration tests run against real hosts: the podman sandbox on this machine (root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The tests get a sandbox of their own, so an operator's `make sandbox` survives `make test`.
os.environ.setdefault("MCP_SANDBOX_NAME", "mcp-test")
os.environ.setdefault("MCP_SANDBOX_SUBNET", "10.76.0.0/24")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("podman", "mmdebstrap", "apt-cacher-ng") if not shutil.which(tool)]
    reason = None
    if os.geteuid() != 0:
        reason = "the sandbox needs root (rootful podman)"
    elif missing:
        reason = f"missing {', '.join(missing)}: run `make system-deps`"
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


def run(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a tool from this venv (mcpctl, ansible...) from the repo root, as a user would."""
    executable = VENV_BIN / args[0]
    argv = [str(executable) if executable.exists() else args[0], *args[1:]]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result
