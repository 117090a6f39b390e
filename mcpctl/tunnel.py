"""An SSH tunnel from local ports to the dashboard (Jobs API) and the keeper's admin
API, both on the head's loopback.

`ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:DASHBOARD -L 127.0.0.1:LOCAL2:127.0.0.1:ADMIN head` runs
in the background, in a session of its own, and is written down in the cluster's state dir
(pid, ports, head), so the next command reuses it while it lives; `close_tunnel` ends it. A
lock keeps two commands from starting two.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mcpctl.errors import HeadUnreachable, TunnelFailed
from mcpctl.openssh import CONNECT_TIMEOUT_SECONDS, ssh_argv, ssh_complaint
from mcpctl.spec import ClusterSpec
from mcpctl.state import write_private

RECORD_NAME = "tunnel.json"
LOCK_NAME = "tunnel.lock"
LOG_NAME = "tunnel.log"
LOCALHOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + 5
STOP_TIMEOUT_SECONDS = 3.0
_POLL_SECONDS = 0.05
# ssh's words when the forward itself failed, rather than the connection.
_FORWARD_FAILURES = ("forwarding", "cannot listen", "bind")
_PORT_TAKEN = "Address already in use"


@dataclass(frozen=True)
class Tunnel:
    pid: int
    local_port: int
    destination: str  # user@head:ssh-port
    remote_port: int
    admin_local_port: int = 0  # 0: recorded by an mcpctl without the admin forward
    admin_remote_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.local_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{LOCALHOST}:{self.admin_local_port}"

    @property
    def forward(self) -> str:
        return f"{LOCALHOST}:{self.local_port}:{LOCALHOST}:{self.remote_port}"


def open_tunnel(spec: ClusterSpec, state_dir: Path, admin_port: int) -> tuple[Tunnel, bool]:
    """The tunnel to `spec`'s dashboard and to the admin API at `admin_port`, and whether it
    was already open."""
    destination = f"{spec.ssh.user}@{spec.head.address}:{spec.ssh.port}"
    with _locked(state_dir):
        recorded = _recorded(state_dir)
        wanted = (destination, spec.ray.dashboard_port, admin_port)
        if (
            recorded
            and (recorded.destination, recorded.remote_port, recorded.admin_remote_port) == wanted
            and (_answers(recorded))
        ):
            return recorded, True
        if recorded:
            _stop(recorded)
        try:
            tunnel = _start(spec, state_dir, destination, admin_port)
        except _PortTaken:  # another program took a free port first: once more
            tunnel = _start(spec, state_dir, destination, admin_port)
        write_private(state_dir / RECORD_NAME, json.dumps(asdict(tunnel)) + "\n")
        return tunnel, False


def close_tunnel(state_dir: Path) -> Tunnel | None:
    """End the recorded tunnel; the one that was open, if any."""
    with _locked(state_dir):
        recorded = _recorded(state_dir)
        if recorded is None:
            return None
        alive = _is_our_ssh(recorded)
        _stop(recorded)
        (state_dir / RECORD_NAME).unlink(missing_ok=True)
        return recorded if alive else None


def _start(spec: ClusterSpec, state_dir: Path, destination: str, admin_port: int) -> Tunnel:
    local_port = _free_port()
    admin_local_port = _free_port()
    while admin_local_port == local_port:
        admin_local_port = _free_port()
    tunnel = Tunnel(0, local_port, destination, spec.ray.dashboard_port, admin_local_port,
                    admin_port)  # fmt: skip
    # The admin forward is not checked here: the keeper may not run yet (mcpctl.adminapi).
    admin_forward = f"{LOCALHOST}:{admin_local_port}:{LOCALHOST}:{admin_port}"
    options = [
        *("-N", "-L", tunnel.forward, "-L", admin_forward),
        # Exit, rather than linger without the forward, if the port cannot be bound.
        *("-o", "ExitOnForwardFailure=yes"),
        # Notice a head that went away, and end, so the next command opens a new tunnel.
        *("-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"),
    ]
    log_path = state_dir / LOG_NAME
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ssh_argv(spec, spec.head, options),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,  # outlives this command, and Ctrl-C in this terminal
        )
    tunnel = dataclasses.replace(tunnel, pid=process.pid)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise _failure(spec, log_path.read_text())
        # ssh listens on the local port only once it is connected and authenticated.
        if _port_answers(local_port):
            return tunnel
        time.sleep(_POLL_SECONDS)
    process.kill()
    process.wait()
    raise HeadUnreachable(
        f"head unreachable: ssh {destination} did not connect within {READY_TIMEOUT_SECONDS}s"
    )


class _PortTaken(TunnelFailed):
    pass


def _failure(spec: ClusterSpec, stderr: str) -> Exception:
    said = ssh_complaint(stderr)
    if _PORT_TAKEN in stderr:
        return _PortTaken(f"tunnel failed: the local port was taken: {said}")
    if any(word in stderr for word in _FORWARD_FAILURES):
        return TunnelFailed(
            f"tunnel failed: ssh reached {spec.head.address} but could not forward to the "
            f"dashboard's port {spec.ray.dashboard_port}: {said}"
        )
    return HeadUnreachable(
        f"head unreachable: ssh {spec.ssh.user}@{spec.head.address} failed: {said}"
    )


def _recorded(state_dir: Path) -> Tunnel | None:
    try:
        return Tunnel(**json.loads((state_dir / RECORD_NAME).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def tunnel_alive(tunnel: Tunnel) -> bool:
    _reap(tunnel.pid)
    return _is_our_ssh(tunnel)


def _answers(tunnel: Tunnel) -> bool:
    return _is_our_ssh(tunnel) and _port_answers(tunnel.local_port)


def _is_our_ssh(tunnel: Tunnel) -> bool:
    """The pid still runs the ssh we started (a pid can be reused by another process)."""
    import psutil  # /proc is Linux's; an operator's machine may be a Mac

    try:
        process = psutil.Process(tunnel.pid)
        return process.status() != psutil.STATUS_ZOMBIE and tunnel.forward in process.cmdline()
    except psutil.Error:
        return False


def _port_answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((LOCALHOST, port)) == 0


def _stop(tunnel: Tunnel) -> None:
    if _is_our_ssh(tunnel):
        with contextlib.suppress(ProcessLookupError):
            os.kill(tunnel.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while _is_our_ssh(tunnel) and time.monotonic() < deadline:
            _reap(tunnel.pid)
            time.sleep(_POLL_SECONDS)


def _reap(pid: int) -> None:
    # Our own child (opened earlier in this process) stays a zombie until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with (state_dir / LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
