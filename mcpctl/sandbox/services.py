"""Gateway services of the sandbox: apt-cacher-ng and the gateway relay/wheelhouse server.

Each runs as a detached process whose pid (with its start time, so a recycled pid is never
signalled) is kept in the state dir; `stop` ends exactly the processes `start` made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mcpctl.errors import McpError
from mcpctl.sandbox.paths import SandboxLayout

APT_PROXY_PORT = 3142
APT_CACHER_LOOPBACK_PORT = 31420
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


@dataclass(frozen=True)
class Service:
    name: str
    argv: tuple[str, ...]

    def pidfile(self, layout: SandboxLayout) -> Path:
        return layout.services_dir / f"{self.name}.pid"

    def logfile(self, layout: SandboxLayout) -> Path:
        return layout.services_dir / f"{self.name}.log"


def services(layout: SandboxLayout) -> list[Service]:
    acng_dir = layout.services_dir / "apt-cacher-ng"
    return [
        Service("apt-cacher-ng", ("apt-cacher-ng", "-c", str(acng_dir), "ForeGround=1")),
        Service(
            "gateway",
            (
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
                str(APT_CACHER_LOOPBACK_PORT),
            ),
        ),
    ]


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
            port=APT_CACHER_LOOPBACK_PORT,
            pidfile=layout.services_dir / "apt-cacher-ng.internal.pid",
        )
    )


def _process_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may contain spaces): state first, starttime 20th.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def running_pid(service: Service, layout: SandboxLayout) -> int | None:
    try:
        pid_text, started = service.pidfile(layout).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if _process_start_time(pid) == started else None


def start_all(layout: SandboxLayout) -> None:
    layout.services_dir.mkdir(parents=True, exist_ok=True)
    layout.wheelhouse.mkdir(parents=True, exist_ok=True)
    _write_acng_config(layout)
    for service in services(layout):
        if running_pid(service, layout) is None:
            _start(service, layout)


def _start(service: Service, layout: SandboxLayout) -> None:
    with service.logfile(layout).open("ab") as log:
        process = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=layout.services_dir,
        )
    time.sleep(0.3)
    if process.poll() is not None:
        raise McpError(
            f"sandbox service {service.name} exited at start (code {process.returncode}); "
            f"see {service.logfile(layout)}"
        )
    service.pidfile(layout).write_text(f"{process.pid} {_process_start_time(process.pid)}\n")


def stop_all(layout: SandboxLayout) -> None:
    for service in services(layout):
        pid = running_pid(service, layout)
        if pid is not None:
            _terminate(pid)
        service.pidfile(layout).unlink(missing_ok=True)


def _terminate(pid: int, grace_seconds: float = 5.0) -> None:
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if _process_start_time(pid) is None:
            return
        _reap(pid)
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
