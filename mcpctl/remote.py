"""Run one shell command on many nodes at once over SSH (Fabric on paramiko).

Connections use the spec's user, key, port and jump host, and check host keys strictly: a
node's key must already be in the spec's known_hosts file (or ~/.ssh/known_hosts), and an
unknown or changed key refuses the connection; nothing is ever added to a known-hosts file.
"""

from __future__ import annotations

import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from mcpctl.openssh import DEFAULT_KNOWN_HOSTS, known_hosts_file
from mcpctl.spec import ClusterSpec, NodeSpec, split_jump_host

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
CONNECT_TIMEOUT_SECONDS = 10
MAX_PARALLEL = 32
# After the node's own `timeout` has had this long to end the command, stop waiting for it.
KILL_GRACE_SECONDS = 5
# GNU timeout's exit status when it ended the command (124), or killed it after the grace (137).
_TIMEOUT_EXIT_CODES = (124, 137)

StreamName = Literal["out", "err"]
OutputSink = Callable[[str, StreamName, str], None]  # node, stream, line (without newline)


@dataclass(frozen=True)
class NodeResult:
    """How the command went on one node. `error` says why it could not run at all."""

    node: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and self.exit_code == 0

    def outcome(self, timeout: float | None) -> str:
        if self.error is not None:
            return self.error
        if self.timed_out:
            return f"timed out after {timeout:g}s"
        return f"exit {self.exit_code}"


class UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str) -> None:
        super().__init__(hostname)
        self.hostname = hostname


class _RefuseUnknownHosts(paramiko.MissingHostKeyPolicy):
    """paramiko's RejectPolicy, with an exception that says which host was refused."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: object) -> None:
        raise UnknownHostKey(hostname)


def connect(spec: ClusterSpec, node: NodeSpec) -> Connection:
    """An unopened connection to `node` that will only accept the host key it already knows."""
    # An explicit, empty ssh config: the spec alone says how to connect, as it does for ansible.
    config = Config(lazy=True, ssh_config=paramiko.SSHConfig())
    connection = Connection(
        node.address,
        user=spec.ssh.user,
        port=spec.ssh.port,
        config=config,
        gateway=_jump_connection(spec, config) if spec.ssh.jump_host else None,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        connect_kwargs={
            "key_filename": spec.ssh.key,
            "look_for_keys": False,
            "allow_agent": False,
        },
    )
    _check_host_keys(connection.client, [known_hosts_file(spec)])
    return connection


def _jump_connection(spec: ClusterSpec, config: Config) -> Connection:
    jump = split_jump_host(spec.ssh.jump_host or "")
    if jump is None:  # the spec's own check refuses such a value; this is belt and braces
        raise ValueError(f"bad jump host {spec.ssh.jump_host!r}")
    gateway = Connection(
        jump.host,
        user=jump.user,
        port=jump.port or 22,
        config=config,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        # As ssh's ProxyJump: the hop authenticates with your usual keys and agent.
        connect_kwargs={"key_filename": spec.ssh.key},
    )
    # ProxyJump checks the hop against your own known hosts, not the spec's (docs/spec.md).
    _check_host_keys(gateway.client, [os.path.expanduser(DEFAULT_KNOWN_HOSTS), SYSTEM_KNOWN_HOSTS])
    return gateway


def _check_host_keys(client: paramiko.SSHClient, files: Sequence[str]) -> None:
    # Fabric's default is AutoAddPolicy (trust on first use); never that.
    client.set_missing_host_key_policy(_RefuseUnknownHosts())
    for path in files:
        if os.path.isfile(path):
            # As system keys: paramiko only ever writes back keys loaded with load_host_keys.
            client.load_system_host_keys(path)


def run_on_nodes(
    spec: ClusterSpec,
    nodes: Sequence[NodeSpec],
    command: str,
    timeout: float | None,
    sink: OutputSink | None = None,
) -> list[NodeResult]:
    """Run `command` through each node's login shell, all nodes in parallel. With `sink`, each
    line of output goes there as it arrives; results come back in the order of `nodes`.
    Ctrl-C closes every connection before it propagates."""
    connections = [connect(spec, node) for node in nodes]
    known_hosts = known_hosts_file(spec)
    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(nodes))))
    try:
        futures = [
            pool.submit(_run_on_node, connection, node, command, timeout, sink, known_hosts)
            for connection, node in zip(connections, nodes, strict=True)
        ]
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        for connection in connections:
            _close(connection)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_on_node(
    connection: Connection,
    node: NodeSpec,
    command: str,
    timeout: float | None,
    sink: OutputSink | None,
    known_hosts: str,
) -> NodeResult:
    started = time.monotonic()
    out = _LineWriter(node.name, "out", sink) if sink else None
    err = _LineWriter(node.name, "err", sink) if sink else None
    try:
        connection.open()
        result = connection.run(
            _bounded(command, timeout),
            warn=True,
            hide=sink is None,
            out_stream=out,
            err_stream=err,
            in_stream=False,  # several commands at once cannot share this terminal's stdin
            timeout=timeout + KILL_GRACE_SECONDS if timeout else None,
        )
    except CommandTimedOut as timed_out:
        partial = timed_out.result
        return NodeResult(
            node.name,
            stdout=partial.stdout,
            stderr=partial.stderr,
            timed_out=True,
            seconds=time.monotonic() - started,
        )
    except (paramiko.SSHException, OSError, EOFError) as error:
        return NodeResult(
            node.name,
            error=_connection_error(connection, error, known_hosts),
            seconds=time.monotonic() - started,
        )
    finally:
        for writer in (out, err):
            if writer:
                writer.end()
        _close(connection)
    seconds = time.monotonic() - started
    timed_out = bool(timeout) and result.exited in _TIMEOUT_EXIT_CODES and seconds >= timeout
    return NodeResult(
        node.name,
        exit_code=result.exited,
        stdout=result.stdout,
        stderr=result.stderr,
        timed_out=timed_out,
        seconds=seconds,
    )


def _close(connection: Connection) -> None:
    connection.close()
    # Fabric leaves a gateway's own connection open.
    if isinstance(connection.gateway, Connection):
        connection.gateway.close()


def _bounded(command: str, timeout: float | None) -> str:
    """`command` for the login shell, ended on the node itself after `timeout` seconds:
    closing the SSH channel alone would leave it running there."""
    if not timeout:
        return command
    return (
        f"timeout --kill-after={KILL_GRACE_SECONDS} {timeout:g} "
        f'"${{SHELL:-/bin/sh}}" -c {shlex.quote(command)}'
    )


def _connection_error(connection: Connection, error: BaseException, known_hosts: str) -> str:
    gateway = connection.gateway if isinstance(connection.gateway, Connection) else None
    via = f" (via jump host {gateway.host})" if gateway else ""
    if isinstance(error, (UnknownHostKey, paramiko.BadHostKeyException)):
        hop = gateway is not None and error.hostname in (
            gateway.host,
            f"[{gateway.host}]:{gateway.port}",
        )
        host = f"jump host {error.hostname}" if hop else error.hostname
        where = DEFAULT_KNOWN_HOSTS if hop else known_hosts
        if isinstance(error, UnknownHostKey):
            return (
                f"host key of {host} is not in {where} — refusing to connect; add its key "
                "there, checked out of band (a host is never trusted on first use)"
            )
        return (
            f"host key of {host} does not match {where} — refusing to connect; if it was "
            "reinstalled, replace its key there"
        )
    if isinstance(error, paramiko.AuthenticationException):
        return f"authentication as {connection.user} failed{via}: {error}"
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"unreachable: no answer within {CONNECT_TIMEOUT_SECONDS}s{via}"
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
        reasons = {str(reason) for reason in error.errors.values()}
        return f"unreachable: {'; '.join(sorted(reasons))}{via}"
    if isinstance(error, OSError):
        return f"unreachable: {error.strerror or error}{via}"
    return f"ssh: {error or type(error).__name__}{via}"


class _LineWriter:
    """A file-like for invoke's output streams that hands `sink` one complete line at a time."""

    _lock = threading.Lock()

    def __init__(self, node: str, stream: StreamName, sink: OutputSink) -> None:
        self._node = node
        self._stream = stream
        self._sink = sink
        self._partial = ""

    def write(self, data: str) -> int:
        *lines, self._partial = (self._partial + data).split("\n")
        for line in lines:
            self._emit(line)
        return len(data)

    def flush(self) -> None:
        pass

    def end(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = ""

    def _emit(self, line: str) -> None:
        # One lock for all nodes: lines from different nodes never interleave mid-line.
        with self._lock:
            self._sink(self._node, self._stream, line.rstrip("\r"))
