"""What both example pipelines share: flags, the Ray connection and the printed summary."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import ray
import torch

from agent_runtime.client import Deployment
from agent_runtime.constants import NAMESPACE
from agent_runtime.spec import DeploymentSpec
from agent_runtime.stream import RunStats, drive


class Pipeline(Protocol):
    def process(self, i: int) -> Awaitable[dict[str, Any]]: ...


def parser(description: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--messages", type=int, default=2000)
    args.add_argument("--concurrency", type=int, default=64, help="messages in flight")
    args.add_argument("--rate", type=float, help="open-loop arrivals per second")
    args.add_argument("--replicas", type=int, default=2, help="replicas per scoring agent")
    args.add_argument("--address", help="Ray address (default: $RAY_ADDRESS or a local Ray)")
    args.add_argument("--json", action="store_true", help="print the summary as JSON")
    return args


def train(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, steps: int = 300
) -> None:
    """A few hundred full-batch Adam steps: enough for these toy models, well under a second."""
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.MSELoss() if targets.dtype.is_floating_point else torch.nn.CrossEntropyLoss()
    for _ in range(steps):
        optimiser.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimiser.step()
    model.eval()


def report(title: str, stats: RunStats, extra: dict[str, Any], as_json: bool) -> None:
    summary = {"pipeline": title, **stats.summary(), **extra}
    if as_json:
        print(json.dumps(summary))
        return
    print(f"{title} pipeline ({time.strftime('%H:%M:%S')})")
    for name, value in summary.items():
        if name != "pipeline":
            print(f"  {name:20} {value}")


def main(
    doc: str,
    title: str,
    make_spec: Callable[[int], DeploymentSpec],
    make_pipeline: Callable[[Deployment], Pipeline],
    summarise: Callable[[list[dict[str, Any]]], dict[str, Any]],
) -> None:
    """Deploy the example's agents, drive the stream through them, print the summary."""
    args = parser(doc.splitlines()[0]).parse_args()
    # No address: $RAY_ADDRESS if set, else a local Ray just for this run.
    ray.init(address=args.address, namespace=NAMESPACE)

    async def run() -> RunStats:
        deployment = await Deployment.start(make_spec(args.replicas))
        try:
            pipeline = make_pipeline(deployment)
            # Start-up objects (Ray, torch: ~240k) would make each full collection a
            # 55-120 ms pause in the measured latencies.
            gc.freeze()
            return await drive(
                pipeline.process, args.messages, concurrency=args.concurrency, rate=args.rate
            )
        finally:
            await deployment.stop(purge=True)

    stats = asyncio.run(run())
    report(title, stats, summarise(stats.results), args.json)
