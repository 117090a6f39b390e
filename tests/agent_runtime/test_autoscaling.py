"""Autoscaling through a real gateway on a real local Ray: a load step adds replicas within
seconds, a quiet spell takes them away after draining, and no message is lost or handled
twice on the way."""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import pytest
import ray

from agent_runtime.client import Deployment
from agent_runtime.constants import NAMESPACE
from agent_runtime.ingress import token_digest
from agent_runtime.spec import DeploymentSpec
from tests.agent_runtime.ingress_agents import Ledger

pytestmark = pytest.mark.ray

TOKEN = "scaling-token-not-a-secret"
LEDGER = "scaling-test-ledger"
CLIENTS = 48
TRICKLE = 2  # clients that keep sending while the others have stopped


def _spec() -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {
            "name": "scale-t",
            "health": {"interval_s": 0.5},
            "agents": [
                {
                    "name": "work",
                    "import": "tests.agent_runtime.ingress_agents:Recorder",
                    "resources": {"num_cpus": 0.1},
                    # 2 calls of at most 4 messages, 20 ms each: about 400 messages/s and
                    # 8 in hand per replica; 48 clients keep queues at the gateway as well.
                    "config": {"sleep_s": 0.02, "echo": False, "ledger": LEDGER},
                    "replicas": 1,
                    "autoscaling": {
                        "min_replicas": 1,
                        "max_replicas": 3,
                        "target_in_flight": 4,
                        "upscale_after_s": 0.3,
                        "downscale_after_s": 1.5,
                    },
                }
            ],
            "ingress": {
                "host": "127.0.0.1",
                "port": 0,
                "token_sha256": token_digest(TOKEN),
                "max_batch_size": 4,
                "calls_per_replica": 2,
            },
        }
    )


async def _replicas(deployment: Deployment) -> int:
    (agent,) = (await deployment.status())["agents"]
    return agent["replicas"]


async def _until(deployment: Deployment, count: int, limit_s: float) -> float:
    started = time.monotonic()
    while await _replicas(deployment) != count:
        assert time.monotonic() - started < limit_s, f"not {count} replicas in {limit_s}s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def _load(
    url: str,
    burst_over: asyncio.Event,
    done: asyncio.Event,
    sent: list[str],
    replies: dict[str, int],
) -> None:
    numbers = itertools.count()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, name: int) -> None:
        stop = done if name < TRICKLE else burst_over
        while not stop.is_set():
            key = f"load-{name}-{next(numbers)}"
            sent.append(key)
            async with session.post(
                url, data=b"{}", headers={**headers, "Idempotency-Key": key}
            ) as response:
                replies[key] = response.status
                await response.read()

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))


def test_a_load_step_scales_up_then_a_quiet_spell_down_with_nothing_lost_or_doubled(
    ray_cluster,
):
    ledger = ray.remote(Ledger).options(name=LEDGER, namespace=NAMESPACE).remote()

    async def go() -> tuple[float, float, list[str], dict[str, int], dict]:
        deployment = await Deployment.start(_spec())
        try:
            (gateway,) = await deployment.gateways()
            url = f"{gateway['url']}/v1/scale-t/work"
            burst_over, done, sent, replies = asyncio.Event(), asyncio.Event(), [], {}
            load = asyncio.ensure_future(_load(url, burst_over, done, sent, replies))
            up_s = await _until(deployment, 3, limit_s=15)
            await asyncio.sleep(1.0)  # served by three for a while
            burst_over.set()
            # A trickle goes on while replicas drain and leave: none of it may be lost.
            down_s = await _until(deployment, 1, limit_s=20)
            await asyncio.sleep(0.5)
            done.set()
            await load
            return up_s, down_s, sent, replies, await deployment.status()
        finally:
            await deployment.stop(purge=True)

    up_s, down_s, sent, replies, status = asyncio.run(go())
    handled = ray.get(ledger.all.remote())
    ray.kill(ledger)

    assert up_s < 5, up_s
    assert len(sent) > 500 and set(replies.values()) == {200}
    expected = {f"c:{key}" for key in sent}  # client ids live in their own namespace
    doubled = len(handled) - len(set(handled))
    assert doubled == 0 and set(handled) == expected
    events = "\n".join(status["events"])
    assert "work: 1 -> " in events and " -> 1 replicas" in events, events
    print(f"scale up {up_s:.2f}s, down {down_s:.2f}s after the burst, {len(sent)} msgs")
