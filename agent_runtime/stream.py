"""Drive a stream of messages through a pipeline and summarise it (used by the examples and
the benchmark). Closed loop with `concurrency` messages in flight, or open loop at `rate`
messages per second, which is what "latency at a stated load" needs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunStats:
    messages: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def throughput(self) -> float:
        return self.messages / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput, 1),
            "latency_p50_ms": round(self.percentile(50), 3),
            "latency_p99_ms": round(self.percentile(99), 3),
            "latency_mean_ms": round(statistics.fmean(self.latencies_ms), 3)
            if self.latencies_ms
            else float("nan"),
        }


async def drive(
    process: Callable[[int], Awaitable[Any]],
    count: int,
    *,
    concurrency: int = 64,
    rate: float | None = None,
) -> RunStats:
    """Call `process(i)` for i in range(count); `rate` switches to open-loop arrivals."""
    stats = RunStats()
    results: list[Any] = [None] * count
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        started = time.perf_counter()
        try:
            results[i] = await process(i)
        finally:
            limit.release()
        stats.latencies_ms.append((time.perf_counter() - started) * 1000)

    begin = time.perf_counter()
    tasks = []
    for i in range(count):
        if rate is not None:
            # Sleep until this message's arrival time, so a slow pipeline shows up as latency
            # instead of silently lowering the offered load.
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await limit.acquire()
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    stats.elapsed_s = time.perf_counter() - begin
    stats.messages = count
    stats.results = results
    return stats
