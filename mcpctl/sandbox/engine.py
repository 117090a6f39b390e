"""Rootful Podman, configured from files in the sandbox's own state dir (never /etc)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mcpctl.errors import McpError
from mcpctl.sandbox.paths import SandboxLayout

# runc, cgroupfs and these ulimits are what works on hosts in cgroup hybrid mode without
# CAP_SYS_RESOURCE (crun fails there; podman's default nofile of 1048576 cannot be set).
CONTAINERS_CONF = """\
# Written by mcpctl sandbox; removed by `mcpctl sandbox down`.
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{run}/events.log"
tmp_dir = "{run}/libpod"

[network]
network_backend = "netavark"
network_config_dir = "{networks}"
{default_network}"""

STORAGE_CONF = """\
# Written by mcpctl sandbox; images live in the cache dir so `down` keeps them.
[storage]
driver = "overlay"
graphroot = "{graphroot}"
runroot = "{run}/storage"
"""


class Podman:
    def __init__(self, layout: SandboxLayout) -> None:
        self.layout = layout

    def environment(self) -> dict[str, str]:
        return {
            "CONTAINERS_CONF": str(self.layout.containers_conf),
            "CONTAINERS_STORAGE_CONF": str(self.layout.storage_conf),
        }

    def write_config(self, *, default_network: bool = True) -> None:
        layout = self.layout
        for directory in (
            layout.state_dir,
            layout.engine_run_dir,
            layout.network_config_dir,
            layout.image_storage,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        _write_if_changed(
            layout.containers_conf,
            CONTAINERS_CONF.format(
                run=layout.engine_run_dir,
                networks=layout.network_config_dir,
                default_network=f'default_network = "{layout.name}"\n' if default_network else "",
            ),
        )
        _write_if_changed(
            layout.storage_conf,
            STORAGE_CONF.format(graphroot=layout.image_storage, run=layout.engine_run_dir),
        )

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input_bytes: bytes | None = None,
        stdin: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        executable = shutil.which("podman")
        if executable is None:
            raise McpError(
                "podman is not installed: run `make system-deps` (or apt-get install podman runc "
                "netavark aardvark-dns iptables mmdebstrap apt-cacher-ng)"
            )
        result = subprocess.run(
            [executable, *args],
            env={**os.environ, **self.environment()},
            input=input_bytes.decode() if input_bytes is not None else None,
            stdin=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise McpError(f"podman {' '.join(args[:3])} failed: {result.stderr.strip()}")
        return result

    def exists(self, kind: str, name: str) -> bool:
        """`kind` is container, network or image."""
        return self.run([kind, "exists", name], check=False).returncode == 0

    def containers(self, label: str) -> list[dict]:
        listed = self.run(["ps", "--all", "--format", "json", "--filter", f"label={label}"])
        return json.loads(listed.stdout or "[]")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
