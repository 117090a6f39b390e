"""Which server library for the ingress gateway: echo servers side by side, same load.

    .venv/bin/python -m bench.ingress_servers [--servers aiohttp,picows] [--rounds 2]

For each library in bench/echo_servers.py, one server process (no Ray) and one client
process of bench/loadgen.py on the same cores, in turn, interleaved over rounds (the best
round is kept; the spread between rounds is printed as the noise):

- WebSocket msgs/s: 64 connections, 16 messages in flight on each (closed loop)
- HTTP keep-alive msgs/s: 64 connections, one request in flight on each (no pipelining)
- p50/p99 ms at 2,000 msg/s open loop over WebSocket
- KiB per idle WebSocket connection: server RSS delta / connections, 5,000 held
- server CPU: the share of one core the server used during the throughput runs (near 100 %
  means the server, not the client, was the bottleneck)
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import psutil

from bench.echo_servers import ECHO_SERVERS
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.targets import Target, TargetOptions, faults, measured, rss_bytes, start_echo


def start(library: str) -> Target:
    return start_echo(TargetOptions(processes=1, library=library))


def held_kib_per_connection(target: Target, connections: int) -> tuple[float, LoadResult]:
    baseline: list[int] = []

    def on_ready(_connections: int) -> None:
        time.sleep(1.0)  # let the last handshakes' buffers settle
        baseline.append(rss_bytes(target.pids()))

    # A first few connections load what the library imports lazily: not a per-connection cost.
    run_load(LoadSpec(mode="hold", port=target.port, connections=50), 1)
    before = rss_bytes(target.pids())
    spec = LoadSpec(mode="hold", port=target.port, connections=connections, sample_every=50)
    result = run_load(spec, 1, on_ready)
    return (baseline[0] - before) / 1024 / max(1, result.connections), result


@dataclasses.dataclass
class Figures:
    ws: list[float] = dataclasses.field(default_factory=list)
    http: list[float] = dataclasses.field(default_factory=list)
    ws_per_cpu_s: list[float] = dataclasses.field(default_factory=list)
    http_per_cpu_s: list[float] = dataclasses.field(default_factory=list)
    ws_cpu: float = 0.0
    http_cpu: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    kib_per_connection: float | None = None
    held: int = 0
    errors: int = 0  # lost + duplicated + unexpected + error answers + failed connections


def throughput_round(library: str, figures: Figures, args) -> None:
    target = start(library)
    try:
        ws = measured(
            target,
            LoadSpec(
                mode="ws", port=target.port, connections=64, window=16, duration_s=args.seconds
            ),
        )
        figures.ws.append(ws.result.msgs_per_s)
        figures.ws_per_cpu_s.append(ws.per_cpu_s)
        figures.ws_cpu = max(figures.ws_cpu, ws.server_cpu_share)
        figures.errors += faults(ws.result)
        if ECHO_SERVERS[library][1]:
            http = measured(
                target,
                LoadSpec(
                    mode="http", port=target.port, connections=64, window=1, duration_s=args.seconds
                ),
            )
            figures.http.append(http.result.msgs_per_s)
            figures.http_per_cpu_s.append(http.per_cpu_s)
            figures.http_cpu = max(figures.http_cpu, http.server_cpu_share)
            figures.errors += faults(http.result)
    finally:
        target.stop()


def latency_and_memory(library: str, figures: Figures, args) -> None:
    target = start(library)
    try:
        latency = run_load(
            LoadSpec(
                mode="open_loop",
                port=target.port,
                connections=64,
                rate=2000,
                duration_s=args.seconds,
            )
        )
        figures.p50_ms, figures.p99_ms = latency.percentile(50), latency.percentile(99)
        figures.errors += faults(latency)
    finally:
        target.stop()
    target = start(library)
    try:
        figures.kib_per_connection, held = held_kib_per_connection(target, args.idle_connections)
        figures.held = held.connections
        figures.errors += faults(held)
    finally:
        target.stop()


def spread(values: list[float]) -> str:
    if not values:
        return f"{'-':>9} {'':>6}"
    best = max(values)
    return f"{best:9,.0f} {(best - min(values)) / best * 100:5.0f}%"


def best(values: list[float]) -> str:
    return f"{max(values):9,.0f}" if values else f"{'-':>9}"


def number(value: float | None, width: int, decimals: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width},.{decimals}f}"


def print_table(results: dict[str, Figures], args) -> None:
    print(
        f"\n{'library':19} {'WS msg/s':>9} {'noise':>6} {'per CPU-s':>9} {'cpu':>5} "
        f"{'HTTP msg/s':>10} {'noise':>6} {'per CPU-s':>9} {'cpu':>5} {'p50 ms':>6} "
        f"{'p99 ms':>6} {'KiB/conn':>8} {'held':>5} {'faults':>6}  one port"
    )
    for library, f in results.items():
        one_port = "HTTP+WS" if ECHO_SERVERS[library][1] else "WS only"
        http_cpu = f"{f.http_cpu * 100:4.0f}%" if f.http else f"{'-':>5}"
        print(
            f"{library:19} {spread(f.ws)} {best(f.ws_per_cpu_s)} {f.ws_cpu * 100:4.0f}% "
            f"{spread(f.http):>17} {best(f.http_per_cpu_s)} {http_cpu} "
            f"{number(f.p50_ms, 6, 2)} {number(f.p99_ms, 6, 2)} "
            f"{number(f.kib_per_connection, 8, 1)} {f.held:5} {f.errors:6}  {one_port}"
        )
    print(
        f"(best of {args.rounds} rounds of {args.seconds:g} s; noise = (best - worst) / best; "
        f"per CPU-s = answers per second of server CPU;\n cpu = the server's share of one "
        f"core (highest round); faults = lost (unanswered samples too) + duplicated + unexpected "
        f"+ failed connections; {args.idle_connections:,} idle connections held)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(ECHO_SERVERS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--idle-connections", type=int, default=5000)
    args = parser.parse_args()
    libraries = args.servers.split(",")
    print(
        f"ingress server libraries: Python {platform.python_version()}, "
        f"{psutil.cpu_count()} cores, load average {psutil.getloadavg()[0]:.1f}"
    )
    results = {library: Figures() for library in libraries}
    for round_index in range(args.rounds):
        for library in libraries:
            throughput_round(library, results[library], args)
            ws = results[library].ws[-1]
            print(f"  round {round_index + 1} {library:20} WS {ws:9,.0f} msg/s", flush=True)
    for library in libraries:
        latency_and_memory(library, results[library], args)
    print_table(results, args)


if __name__ == "__main__":
    main()
