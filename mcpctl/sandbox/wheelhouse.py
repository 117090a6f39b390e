"""The sandbox's Python wheelhouse: what an air-gapped site's nodes install from.

Filled once on the controller (which can reach PyPI) and re-filled only when the requirement
list changes. Nodes run Debian bookworm's Python 3.11, so the controller must match.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

from mcpctl.errors import McpError
from mcpctl.sandbox.paths import SandboxLayout

# torch is pinned: unpinned, pip would pull gigabytes of CUDA packages.
REQUIREMENTS = (
    "ray[default]==2.60.0",
    "torch==2.13.0",
    "numpy>=1.26",
    "nvidia-ml-py>=12.535",
    # The ingress gateway's (roles/python_env installs them on every node).
    "httptools==0.9.0",
    "msgspec==0.23.0",
    "uvloop==0.23.0",
    # The stream sources' Kafka client (the same list in roles/python_env).
    "confluent-kafka==2.16.1",
    "pip",
    "setuptools",
    "wheel",
)
# An older Ray, with what it needs, beside the current: upgrades are tested from it
# (bench/recovery.py). A separate download, since one resolution cannot hold two.
UPGRADE_FROM_RAY = "2.58.0"
OLDER_REQUIREMENTS = (f"ray[default]=={UPGRADE_FROM_RAY}",)
NODE_PYTHON = (3, 11)


def _stamp_name() -> str:
    digest = hashlib.sha256("\n".join(REQUIREMENTS + OLDER_REQUIREMENTS).encode()).hexdigest()[:12]
    return f".filled-{digest}"


def is_filled(layout: SandboxLayout) -> bool:
    return (layout.wheelhouse / _stamp_name()).exists()


def fill(layout: SandboxLayout) -> None:
    if is_filled(layout):
        return
    if sys.version_info[:2] != NODE_PYTHON:
        raise McpError(
            f"the wheelhouse is filled for the nodes' Python {NODE_PYTHON[0]}.{NODE_PYTHON[1]}, "
            f"but mcpctl runs on {sys.version_info[0]}.{sys.version_info[1]}: run mcpctl from a "
            "Python 3.11 venv, or pass --no-wheelhouse"
        )
    layout.wheelhouse.mkdir(parents=True, exist_ok=True)
    print(
        f"filling the wheelhouse {layout.wheelhouse} (once; ray and torch are large)",
        file=sys.stderr,
    )
    for requirements in (REQUIREMENTS, OLDER_REQUIREMENTS):
        _download(layout, requirements)
    for stale in layout.wheelhouse.glob(".filled-*"):
        stale.unlink()
    (layout.wheelhouse / _stamp_name()).touch()


def _download(layout: SandboxLayout, requirements: tuple[str, ...]) -> None:
    download = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(layout.wheelhouse),
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        errors = [line for line in download.stderr.splitlines() if "is ignored" not in line]
        raise McpError("pip download for the wheelhouse failed:\n" + "\n".join(errors[-15:]))
