"""What the ingress benches drive: a target is server processes sharing one loopback port.

A target is started by a function ``start(options) -> Target``; the bench only needs its port
and the pids whose memory and CPU count as "the gateway". ``start_echo`` is the stand-in
(bench/echo_servers.py, no Ray); the real gateway plugs in the same way.
"""

from __future__ import annotations

import dataclasses
import importlib
import multiprocessing
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import Protocol

import psutil

from bench.echo_servers import run_echo_server
from bench.loadgen import LoadResult, LoadSpec, run_load


@dataclasses.dataclass
class TargetOptions:
    processes: int = 7  # server processes on the port: 100k connections / 20k files each
    library: str = "raw-httptools"  # echo target only
    replicas: int = 2  # the gateway target's agent replicas
    lifetime_s: float = 600.0  # every server process exits by itself after this


class Target(Protocol):
    port: int

    def pids(self) -> list[int]: ...

    def stop(self) -> None: ...


StartTarget = Callable[[TargetOptions], Target]


def use_a_private_ray_token() -> None:
    """Token auth on for the bench's private Ray, with a token of this run's own: Ray would
    otherwise generate one and write it to ~/.ray/auth_token."""
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port}")


@dataclasses.dataclass
class EchoTarget:
    """Echo server processes of one library sharing a port (SO_REUSEPORT)."""

    port: int
    workers: list

    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
            worker.join(timeout=5)


def start_echo(options: TargetOptions) -> EchoTarget:
    port = free_port()
    context = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(options.processes):
        arguments = (options.library, "127.0.0.1", port, options.lifetime_s)
        worker = context.Process(target=run_echo_server, args=arguments, daemon=True)
        worker.start()
        workers.append(worker)
    wait_listening(port)
    time.sleep(0.3 + 0.1 * options.processes)  # the other processes' listeners
    return EchoTarget(port, workers)


def load_start_function(name: str) -> StartTarget:
    """``echo``, or ``package.module:function`` for a target defined elsewhere."""
    if name == "echo":
        return start_echo
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


def rss_bytes(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


def cpu_s(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


@dataclasses.dataclass
class Measured:
    result: LoadResult
    server_cpu_share: float  # of one core, while the load ran
    per_cpu_s: float  # messages answered per second of server CPU (less noisy than per second)


def measured(target: Target, spec: LoadSpec, processes: int = 1) -> Measured:
    marks: list[float] = []

    def on_ready(_connections: int) -> None:
        marks.extend((cpu_s(target.pids()), time.perf_counter()))

    result = run_load(dataclasses.replace(spec, port=target.port), processes, on_ready)
    cpu_before, started = marks
    cpu = cpu_s(target.pids()) - cpu_before
    share = cpu / (time.perf_counter() - started)
    return Measured(result, share, result.all_answered / cpu if cpu else 0.0)


def faults(result: LoadResult) -> int:
    """Everything a correct server would never cause (an unanswered hold sample is lost)."""
    return (
        result.lost
        + result.duplicated
        + result.unexpected
        + result.errors
        + result.failed_connections
    )
