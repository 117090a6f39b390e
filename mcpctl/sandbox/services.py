"""Gateway services of the sandbox: apt-cacher-ng and the gateway relay/wheelhouse server.

Each runs as a detached process whose pid (with its start time, so a recycled pid is never
signalled) is kept in the state dir; `stop` ends exactly the processes `start` made.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from mcpctl.errors import McpError
from mcpctl.proctree import read_process, terminate_with_group
from mcpctl.sandbox.paths import SandboxLayout

APT_PROXY_PORT = 3142
WHEELHOUSE_PORT = 8081

ACNG_CONF = """\
# Written by mcpctl sandbox. No Remap rules: requests go to the mirror the node asked for
# (the stock Debian mirror list answers 503 for bookworm here).
CacheDir: {cache}
LogDir: {logs}
Port: {port}
BindAddress: 127.0.0.1
PidFile: {pidfile}
ExThreshold: 4
ReportPage: acng-report.html
"""


SERVICE_NAMES = ("apt-cacher-ng", "gateway")


def pidfile(layout: SandboxLayout, name: str) -> Path:
    return layout.services_dir / f"{name}.pid"


def logfile(layout: SandboxLayout, name: str) -> Path:
    return layout.services_dir / f"{name}.log"


def _free_loopback_port() -> int:
    # apt-cacher-ng 3.7 cannot bind ports above 32767 ("Error resolving address for binding"),
    # so the kernel's ephemeral range (32768 up) is no use here.
    for port in range(31420, 32768):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise McpError("no free loopback port below 32768 for apt-cacher-ng")


def _apt_cacher_port(layout: SandboxLayout) -> int:
    """apt-cacher-ng's loopback port: picked once per sandbox so several sandboxes coexist."""
    port_file = layout.services_dir / "apt-cacher-ng.port"
    if not port_file.exists():
        port_file.write_text(f"{_free_loopback_port()}\n")
    return int(port_file.read_text())


def _commands(layout: SandboxLayout) -> dict[str, tuple[str, ...]]:
    acng_dir = layout.services_dir / "apt-cacher-ng"
    return {
        "apt-cacher-ng": ("apt-cacher-ng", "-c", str(acng_dir), "ForeGround=1"),
        "gateway": (
            sys.executable,
            "-m",
            "mcpctl.sandbox.gateway",
            "--bind",
            layout.gateway,
            "--wheelhouse",
            str(layout.wheelhouse),
            "--wheelhouse-port",
            str(WHEELHOUSE_PORT),
            "--apt-port",
            str(APT_PROXY_PORT),
            "--apt-upstream-port",
            str(_apt_cacher_port(layout)),
        ),
    }


def apt_proxy_url(layout: SandboxLayout) -> str:
    return f"http://{layout.gateway}:{APT_PROXY_PORT}"


def wheelhouse_url(layout: SandboxLayout) -> str:
    return f"http://{layout.gateway}:{WHEELHOUSE_PORT}/"


def _write_acng_config(layout: SandboxLayout) -> None:
    if shutil.which("apt-cacher-ng") is None:
        raise McpError("apt-cacher-ng is not installed: run `make system-deps`")
    conf_dir = layout.services_dir / "apt-cacher-ng"
    logs = layout.services_dir / "apt-cacher-ng-logs"
    for directory in (conf_dir, logs, layout.apt_cache):
        directory.mkdir(parents=True, exist_ok=True)
    (conf_dir / "acng.conf").write_text(
        ACNG_CONF.format(
            cache=layout.apt_cache,
            logs=logs,
            port=_apt_cacher_port(layout),
            pidfile=layout.services_dir / "apt-cacher-ng.internal.pid",
        )
    )


def running_pid(layout: SandboxLayout, name: str) -> int | None:
    try:
        pid_text, started = pidfile(layout, name).read_text().split()
    except (OSError, ValueError):
        return None
    process = read_process(int(pid_text))
    return process.pid if process is not None and f"{process.started:.2f}" == started else None


def start_all(layout: SandboxLayout) -> None:
    layout.services_dir.mkdir(parents=True, exist_ok=True)
    layout.wheelhouse.mkdir(parents=True, exist_ok=True)
    _write_acng_config(layout)
    for name, argv in _commands(layout).items():
        if running_pid(layout, name) is None:
            _start(layout, name, argv)


def _start(layout: SandboxLayout, name: str, argv: tuple[str, ...]) -> None:
    with logfile(layout, name).open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=layout.services_dir,
        )
    time.sleep(0.3)
    if process.poll() is not None:
        raise McpError(
            f"sandbox service {name} exited at start (code {process.returncode}); "
            f"see {logfile(layout, name)}"
        )
    started = read_process(process.pid)
    if started is None:
        raise McpError(f"sandbox service {name} vanished at start; see {logfile(layout, name)}")
    pidfile(layout, name).write_text(f"{process.pid} {started.started:.2f}\n")


def stop_all(layout: SandboxLayout) -> None:
    for name in SERVICE_NAMES:
        pid = running_pid(layout, name)
        process = read_process(pid) if pid is not None else None
        if process is not None:
            terminate_with_group(process)
        pidfile(layout, name).unlink(missing_ok=True)
