"""Agent runtime benchmark: prints figures side by side, no assertions on time.

    .venv/bin/python bench/agents.py [--messages 3000] [--rates 50,200]

1. pipeline throughput through the runtime vs raw Ray actor calls doing the same work
   (same agent classes, same routing by host and the same nice 0 priority; no supervisor,
   dedup, checkpoints or backpressure)
2. decision latency (detector + decider) at fixed open-loop arrival rates
3. model inference: one actor call per item vs many items per call, micro-batched
4. consistent-hash keys moved when one replica is added to N
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import platform
import time
import zlib

import ray

from agent_runtime.agent import AgentContext, Message, load_agent_class
from agent_runtime.client import Deployment
from agent_runtime.examples import operations, traffic
from agent_runtime.routing import HashRing
from agent_runtime.spec import AgentSpec
from agent_runtime.stream import RunStats, drive


@ray.remote(max_concurrency=256)
class RawAgent:
    """The same agent in a bare actor: what the runtime is compared against."""

    def __init__(self, spec: AgentSpec) -> None:
        context = AgentContext("raw", spec.name, 0, ray.get_runtime_context().get_node_id())
        self.agent = load_agent_class(spec.import_path)(dict(spec.config), context)
        self.ready = None

    async def handle(self, message: Message):
        if self.ready is None:
            self.ready = asyncio.ensure_future(self.agent.setup())
        await self.ready
        return await self.agent.handle(message)


class RawPipeline:
    def __init__(self, spec) -> None:
        def actors(name):
            agent = spec.agent(name)
            # The runtime's replica priority (nice 0, not Ray's 15), so that the two columns
            # differ by the runtime's own work, not by how the kernel ranks them.
            nice_0 = {"env_vars": {"RAY_worker_niceness": "0"}}
            options = {"num_cpus": agent.resources.num_cpus, "runtime_env": nice_0}
            return [RawAgent.options(**options).remote(agent) for _ in range(agent.replicas)]

        self.detectors = actors("detector")
        self.deciders = actors("decider")
        self.executor = actors("executor")[0]
        self.ids = itertools.count()

    async def warm(self):
        await asyncio.gather(*(self.process(i) for i in range(len(self.detectors) * 50)))

    @staticmethod
    def _pick(actors, host):
        return actors[zlib.crc32(host.encode()) % len(actors)]

    async def process(self, i: int):
        message = traffic.metric_message(i, 50, 0.02)
        host = message["host"]
        scored = await self._pick(self.detectors, host).handle.remote(
            Message(str(next(self.ids)), message, host)
        )
        decision = await self._pick(self.deciders, host).handle.remote(
            Message(str(next(self.ids)), scored, host)
        )
        if decision["action"] != "none":
            await self.executor.handle.remote(Message(str(next(self.ids)), decision))
        return decision


def line(name: str, runtime: float, baseline: float, unit: str, target: str) -> None:
    ratio = runtime / baseline if baseline else float("nan")
    print(f"  {name:38} {runtime:12,.1f} {baseline:12,.1f} {unit:8} ratio {ratio:6.2f}  ({target})")


async def throughput_and_latency(args) -> dict:
    spec = operations.spec(replicas=2, name="bench")
    deployment = await Deployment.start(spec)
    runtime = operations.OperationsPipeline(deployment)
    raw = RawPipeline(spec)
    await raw.warm()
    await drive(runtime.process, 300, concurrency=args.concurrency)  # warm-up
    await drive(raw.process, 300, concurrency=args.concurrency)
    # The load generator's own full collections (55-120 ms over the ~240k objects Ray and
    # torch leave here) would otherwise land in either column at random.
    gc.freeze()
    results: dict[str, RunStats] = {}
    # Interleave the two and keep the better run of each: this 2-core machine is noisy.
    for _ in range(2):
        for name, pipeline in (("runtime", runtime), ("raw", raw)):
            stats = await drive(pipeline.process, args.messages, concurrency=args.concurrency)
            if name not in results or stats.throughput > results[name].throughput:
                results[name] = stats
    print(f"1. pipeline throughput, {args.messages} messages, {args.concurrency} in flight")
    print(f"  {'':38} {'runtime':>12} {'raw Ray':>12}")
    line("messages/s", results["runtime"].throughput, results["raw"].throughput, "msg/s",
         "target ratio >= 0.8")  # fmt: skip
    figures = {
        "throughput_runtime": results["runtime"].throughput,
        "throughput_raw": results["raw"].throughput,
    }
    for rate in args.rates:
        count = int(rate * args.latency_seconds)
        loaded = {
            name: await drive(pipeline.process, count, concurrency=1000, rate=rate)
            for name, pipeline in (("runtime", runtime), ("raw", raw))
        }
        print(f"2. decision latency at {rate:g} msg/s open loop ({count} messages)")
        for q in (50, 99):
            line(f"p{q} ms", loaded["runtime"].percentile(q), loaded["raw"].percentile(q), "ms",
                 "target p99 < 10 ms" if q == 99 else "")  # fmt: skip
        figures[f"latency_{rate:g}"] = {
            f"{name}_p{q}_ms": stats.percentile(q)
            for name, stats in loaded.items()
            for q in (50, 99)
        }
    await deployment.stop(purge=True)
    return figures


async def inference(args) -> dict:
    def detector_spec(name: str, max_batch_size: int):
        return operations.spec(replicas=1, name=name).model_copy(
            update={"agents": [operations.spec(replicas=1).agents[0].model_copy(
                update={"config": {"max_batch_size": max_batch_size, "max_wait_ms": 1.0},
                        "routing_key": None, "max_in_flight": 256})]}
        )  # fmt: skip

    items = [traffic.metric_message(i, 50, 0.0) for i in range(args.items)]
    figures = {}
    for name, batch, chunk in (("unbatched", 1, 1), ("batched", 256, 256)):
        deployment = await Deployment.start(detector_spec(f"infer-{name}", batch))
        group = deployment.group("detector")
        chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]

        async def send(i: int, chunks=chunks, group=group):
            if len(chunks[i]) == 1:
                return await group.call(chunks[i][0])
            return await group.call_many(chunks[i])

        await drive(send, min(len(chunks), 50), concurrency=args.concurrency)  # warm-up
        started = time.perf_counter()
        await drive(send, len(chunks), concurrency=args.concurrency if chunk == 1 else 4)
        figures[name] = len(items) / (time.perf_counter() - started)
        await deployment.stop(purge=True)
    print(f"3. inference through one detector replica, {args.items} items")
    print(f"  {'':38} {'batched':>12} {'unbatched':>12}")
    line("items/s (256 per call vs 1 per call)", figures["batched"], figures["unbatched"],
         "items/s", "target ratio >= 20")  # fmt: skip
    return {"infer_batched": figures["batched"], "infer_unbatched": figures["unbatched"]}


def remap(args) -> dict:
    keys = [f"key-{i}" for i in range(args.keys)]
    print(f"4. keys moved adding one replica to N ({args.keys:,} keys, 512 virtual nodes each)")
    figures = {}
    for n in (4, 8, 16, 32):
        ring = HashRing()
        ring.set({f"r{i}": 1.0 for i in range(n)})
        before = [ring.lookup(key) for key in keys]
        ring.add(f"r{n}")
        moved = sum(ring.lookup(key) != owner for key, owner in zip(keys, before, strict=True))
        fraction = moved / len(keys)
        figures[n] = fraction
        print(f"  N={n:<3} moved {fraction:.4f}  ideal 1/(N+1) {1 / (n + 1):.4f}  "
              f"ratio {fraction * (n + 1):.3f}  (target within 10%)")  # fmt: skip
    return {"remap": figures}


async def main_async(args) -> dict:
    figures = await throughput_and_latency(args)
    figures.update(await inference(args))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rates",
        type=lambda text: [float(rate) for rate in text.split(",")],
        default=[50.0, 200.0],
        help="open-loop msg/s for the latency runs (comma-separated)",
    )
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="also print figures as JSON")
    args = parser.parse_args()
    print(f"agent runtime benchmark: Ray {ray.__version__}, Python {platform.python_version()}, "
          f"{platform.node()}")  # fmt: skip
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, namespace="mcp-agents")
    figures = asyncio.run(main_async(args))
    figures.update(remap(args))
    ray.shutdown()
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
