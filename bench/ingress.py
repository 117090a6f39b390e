"""Ingress gateway benchmark: one node's gateway under loopback load, with baselines.

    .venv/bin/python -m bench.ingress [--target echo | package.module:start] [--connections 100000]
    .venv/bin/python -m bench.ingress --target bench.gateway_target:start_gateway

The target under test is started by a pluggable function (bench/targets.py): ``echo`` is the
chosen server library answering by itself (no Ray); the gateway of agent_runtime/ingress
plugs in as ``bench.gateway_target:start_gateway`` (a private local Ray, a trivial agent
with --replicas replicas), which also measures scaling (scale_up_s, scale_down_s). Load comes from
bench/loadgen.py: client processes on 127.0.1.N, every answer checked by message id.

Phases 1-3 and 5 run --server-processes (1) server processes, as a node of two cores would;
phase 4 runs --hold-processes (7), since a process here can hold at most 20,000 files.

1. msgs_per_s: WebSocket, 2 client processes x 128 connections, 16 messages in flight each
2. http_msgs_per_s: HTTP/1.1 keep-alive POSTs, 2 x 64 connections, one request in flight each
3. p50_ms, p99_ms: WebSocket, 2,000 msg/s open loop
4. connections_held: idle WebSocket connections held at once by the target's processes
   (SO_REUSEPORT on one port), with every 100th still answering; kib_per_connection is the
   target's RSS delta over them (the gateway's: connection, parser and its two tasks)
5. echo_msgs_per_s: the echo target under the load of 1 (the same figure when it is the target)
6. serve_msgs_per_s: the same trivial agent behind Ray Serve 2.60 (nice 0, max_ongoing_requests
   1024, as many replicas), under the load of 2

It prints a table, then LAST one line of JSON with the figures (null: not measured).

Server library (bench/ingress_servers.py, echo servers side by side, one server process and
one client process on 2 shared cores; msg per server CPU-second, the steadier figure here):

    library                          WS msg/CPU-s  HTTP msg/CPU-s  KiB/idle WS  HTTP+WS one port
    raw-httptools (uvloop+httptools)    221-290k        65-71k          2.2     yes
    picows 2.3                          117-122k          -            27.6     WS only
    aiohttp 3.14                         44-70k          7-11k         14.0     yes
    uvicorn 0.55 + websockets 17.4       47-49k         19-24k         19.5     yes
    uvicorn 0.55 + wsproto 1.3           25-28k         19-25k         18.0     yes
    websockets 17.4                      36-45k           -            12.9     WS only
    granian 2.8 (embedded, RSGI)         31-32k         23-26k        157.7     yes

Chosen: a plain asyncio Protocol on uvloop with httptools for HTTP/1.1 and a small RFC 6455
framing of our own: 2-9x the others per CPU (partly because it writes all the answers of one
read in one call, which the gateway keeps by writing each batch of agent answers at once), a
sixth or less of their memory per connection, HTTP and WS on one port, and it runs in any
asyncio loop (Ray 2.60 makes async actors' loops uvloop when uvloop is installed). The price:
the gateway owns fragmentation, size limits, close/ping handling and backpressure, and tests
them against real client libraries. granian's usual mode spawns its own worker processes,
outside Ray; its embedded mode runs in the loop but is marked experimental.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import psutil

from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.targets import (
    Measured,
    Target,
    TargetOptions,
    faults,
    load_start_function,
    measured,
    rss_bytes,
    start_echo,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JSON_KEYS = (
    "connections_held",
    "kib_per_connection",
    "msgs_per_s",
    "http_msgs_per_s",
    "serve_msgs_per_s",
    "echo_msgs_per_s",
    "p50_ms",
    "p99_ms",
    "scale_up_s",
    "scale_down_s",
    "lost",
    "duplicated",
)


@dataclasses.dataclass
class Tallies:
    """Lost and duplicated answers over every phase run against the target under test."""

    lost: int = 0
    duplicated: int = 0
    other_faults: int = 0

    def add(self, result: LoadResult) -> None:
        self.lost += result.lost
        self.duplicated += result.duplicated
        self.other_faults += faults(result) - result.lost - result.duplicated


def ws_throughput(target: Target, args) -> Measured:
    spec = LoadSpec(
        mode="ws", port=target.port, connections=256, window=16, duration_s=args.seconds
    )
    return measured(target, spec, processes=2)


def http_throughput(target: Target, args) -> Measured:
    spec = LoadSpec(
        mode="http", port=target.port, connections=128, window=1, duration_s=args.seconds
    )
    return measured(target, spec, processes=2)


def open_loop_latency(target: Target, args) -> LoadResult:
    spec = LoadSpec(
        mode="open_loop", port=target.port, connections=64, rate=args.rate, duration_s=args.seconds
    )
    return run_load(spec, processes=2)


@dataclasses.dataclass
class Held:
    result: LoadResult
    kib_per_connection: float
    seconds_to_open: float


def hold_connections(target: Target, args) -> Held:
    """Open args.connections, measure the target's RSS while they are held, then sample."""
    run_load(LoadSpec(mode="hold", port=target.port, connections=50))  # lazy imports, buffers
    before = rss_bytes(target.pids())
    started = time.perf_counter()
    marks: list[float] = []

    def on_ready(_connections: int) -> None:
        marks.append(time.perf_counter() - started)
        time.sleep(1.0)  # the last handshakes' buffers settle
        marks.append(rss_bytes(target.pids()))

    # Each client process stays under the 20,000 open-file limit, on its own source address.
    processes = max(1, -(-args.connections // 15_000))
    spec = LoadSpec(
        mode="hold",
        port=target.port,
        connections=args.connections,
        sample_every=100,
        connect_timeout_s=args.connect_timeout,
    )
    result = run_load(spec, processes, on_ready)
    seconds, during = marks
    kib = (during - before) / 1024 / max(1, result.connections)
    return Held(result, kib, seconds)


def serve_throughput(args) -> tuple[Measured, list[int]]:
    from bench.serve_target import start_serve

    target = start_serve(args.replicas, REPO_ROOT)
    try:
        run_load(LoadSpec(mode="http", port=target.port, connections=16, duration_s=1))
        return http_throughput(target, args), target.niceness()
    finally:
        target.stop()


def row(name: str, value: float | int | str | None, unit: str, note: str = "") -> None:
    if value is None:
        shown = "-"
    elif isinstance(value, float):
        shown = f"{value:,.2f}"
    else:
        shown = f"{value:,}" if isinstance(value, int) else value
    print(f"  {name:22} {shown:>14} {unit:10} {note}")


def cpu_note(run: Measured) -> str:
    """Who had the CPU: a server well under 100 % was starved or waiting on the clients."""
    return (
        f"server CPU {run.server_cpu_share * 100:.0f}% of a core "
        f"({run.per_cpu_s:,.0f} msg per CPU-s), clients {run.result.client_cpu_s:.1f} CPU-s"
    )


def measure_target(start, options: TargetOptions, args, figures: dict, tallies: Tallies) -> None:
    """Throughput and latency with `options.processes` server processes on the port (what a
    node of this size runs), then the connections held by `args.hold_processes` of them (the
    open-files limit is 20,000 per process here)."""
    target = start(options)
    try:
        ws = ws_throughput(target, args)
        http = http_throughput(target, args)
        latency = open_loop_latency(target, args)
    finally:
        target.stop()
    held = None
    if args.connections:
        target = start(dataclasses.replace(options, processes=args.hold_processes))
        try:
            held = hold_connections(target, args)
        finally:
            target.stop()
    for result in (ws.result, http.result, latency):
        tallies.add(result)
    figures.update(
        msgs_per_s=ws.result.msgs_per_s,
        http_msgs_per_s=http.result.msgs_per_s,
        p50_ms=latency.percentile(50),
        p99_ms=latency.percentile(99),
    )
    print(f"target {args.target} ({options.processes} processes on one port)")
    row("msgs_per_s (WS)", ws.result.msgs_per_s, "msg/s", cpu_note(ws))
    row("http_msgs_per_s", http.result.msgs_per_s, "msg/s", cpu_note(http))
    row("p50_ms", figures["p50_ms"], "ms", f"at {args.rate:,.0f} msg/s open loop")
    row("p99_ms", figures["p99_ms"], "ms")
    if held is not None:
        tallies.add(held.result)
        figures.update(
            connections_held=held.result.connections, kib_per_connection=held.kib_per_connection
        )
        row(
            "connections_held",
            held.result.connections,
            "conns",
            f"of {args.connections:,} on {args.hold_processes} processes, opened in "
            f"{held.seconds_to_open:.0f} s; "
            f"{held.result.sample_answered:,}/{held.result.sampled:,} sampled answered",
        )
        row("kib_per_connection", held.kib_per_connection, "KiB", "target RSS delta / held")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="echo", help="echo, or package.module:function")
    parser.add_argument("--library", default="raw-httptools", help="echo target's library")
    parser.add_argument(
        "--server-processes", type=int, default=1, help="for throughput and latency"
    )
    parser.add_argument("--hold-processes", type=int, default=7, help="for holding --connections")
    parser.add_argument("--connections", type=int, default=100_000, help="0: skip holding")
    parser.add_argument("--connect-timeout", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput phase")
    parser.add_argument("--rate", type=float, default=2000.0, help="open-loop msg/s")
    parser.add_argument("--replicas", type=int, default=2, help="agent replicas (Serve too)")
    parser.add_argument("--no-serve", action="store_true", help="skip the Ray Serve baseline")
    args = parser.parse_args()
    print(
        f"ingress benchmark: Python {platform.python_version()}, {psutil.cpu_count()} cores, "
        f"load average {psutil.getloadavg()[0]:.1f}"
    )
    figures: dict = dict.fromkeys(JSON_KEYS)
    tallies = Tallies()
    options = TargetOptions(
        processes=args.server_processes, library=args.library, replicas=args.replicas
    )
    measure_target(load_start_function(args.target), options, args, figures, tallies)
    if args.target == "echo":
        figures["echo_msgs_per_s"] = figures["msgs_per_s"]
    else:
        echo = start_echo(options)
        try:
            figures["echo_msgs_per_s"] = ws_throughput(echo, args).result.msgs_per_s
        finally:
            echo.stop()
    row("echo_msgs_per_s", figures["echo_msgs_per_s"], "msg/s", f"{args.library}, same load")
    # A target that can scale says how fast (bench/gateway_target.py).
    target_module = sys.modules.get(args.target.partition(":")[0])
    measure_scaling = getattr(target_module, "measure_scaling", None)
    if measure_scaling is not None:
        scaling = measure_scaling(options)
        for result in scaling.results:
            tallies.add(result)
        figures.update(scale_up_s=scaling.scale_up_s, scale_down_s=scaling.scale_down_s)
        row("scale_up_s", scaling.scale_up_s, "s", "a 10x load step to the 4 replicas it needs")
        row("scale_down_s", scaling.scale_down_s, "s", "its end to 1 replica (2 s quiet spell)")
        for step in scaling.steps:
            print(f"    {step}")
    if not args.no_serve:
        try:
            serve, niceness = serve_throughput(args)
        except Exception as error:  # Serve's start-up times out on a busy machine: say so
            print(f"  Ray Serve baseline failed: {error!r}"[:300])
        else:
            figures["serve_msgs_per_s"] = serve.result.msgs_per_s
            row(
                "serve_msgs_per_s",
                serve.result.msgs_per_s,
                "msg/s",
                f"Ray Serve, {args.replicas} replicas, nice {niceness}; {cpu_note(serve)}",
            )
    figures.update(lost=tallies.lost, duplicated=tallies.duplicated)
    row(
        "lost / duplicated",
        f"{tallies.lost} / {tallies.duplicated}",
        "answers",
        f"other faults {tallies.other_faults} (unexpected ids, errors, failed connections)",
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
