"""Autoscaling through a real gateway on a real local Ray: a load step adds replicas within
seconds, a quiet spell takes them away after draining, and no message is lost or handled
twice on the way; a keyed agent's keys move between replicas with their state."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field

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


def _spec(agent: dict) -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {
            "name": "scale-t",
            "health": {"interval_s": 0.5},
            "agents": [
                {
                    "name": "work",
                    "resources": {"num_cpus": 0.1},
                    **agent,
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


@dataclass
class Sent:
    """Per message id (the Idempotency-Key): its client, its HTTP status and its answer."""

    client: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    answer: dict[str, dict] = field(default_factory=dict)


async def _load(url: str, burst_over: asyncio.Event, done: asyncio.Event, sent: Sent) -> None:
    """CLIENTS clients, each posting one message after another (client n's payload names
    key n) until the burst is over; TRICKLE of them go on until done."""
    numbers = itertools.count()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    async def client(session: aiohttp.ClientSession, name: int) -> None:
        stop = done if name < TRICKLE else burst_over
        body = json.dumps({"key": f"key-{name}"}).encode()
        while not stop.is_set():
            message_id = f"load-{name}-{next(numbers)}"
            sent.client[message_id] = name
            async with session.post(
                url, data=body, headers={**headers, "Idempotency-Key": message_id}
            ) as response:
                sent.status[message_id] = response.status
                sent.answer[message_id] = (await response.json()).get("result")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, n) for n in range(CLIENTS)))


async def _drive(
    deployment: Deployment,
    burst_over: asyncio.Event,
    done: asyncio.Event,
    answers: dict[str, list],
) -> None:
    """Drivers inside the cluster as well (AgentGroup.call, whose ring is up to
    GROUP_REFRESH_S old): one message after another per key of `answers` until the burst is
    over; the first key's driver goes on until done."""
    group = deployment.group("work")

    async def driver(key: str, stop: asyncio.Event) -> None:
        while not stop.is_set():
            answers[key].append(await group.call({"key": key}))

    await asyncio.gather(
        *(driver(key, done if n == 0 else burst_over) for n, key in enumerate(answers))
    )


async def _step_up_and_down(
    spec: DeploymentSpec, driven: dict[str, list] | None = None
) -> tuple[float, float, Sent, dict]:
    """A burst until the agent has 3 replicas and a second after, then a trickle until it is
    back to 1: (seconds up, seconds down after the burst, what was sent, the final status).
    `driven`'s keys are sent by drivers too (their answers go there)."""
    deployment = await Deployment.start(spec)
    try:
        (gateway,) = await deployment.gateways()
        url = f"{gateway['url']}/v1/scale-t/work"
        burst_over, done, sent = asyncio.Event(), asyncio.Event(), Sent()
        load = asyncio.gather(
            _load(url, burst_over, done, sent), _drive(deployment, burst_over, done, driven or {})
        )
        up_s = await _until(deployment, 3, limit_s=15)
        await asyncio.sleep(1.0)  # served by three for a while
        burst_over.set()
        # A trickle goes on while replicas drain and leave: none of it may be lost.
        down_s = await _until(deployment, 1, limit_s=20)
        await asyncio.sleep(0.5)
        done.set()
        await load
        return up_s, down_s, sent, await deployment.status()
    finally:
        await deployment.stop(purge=True)


def test_a_load_step_scales_up_then_a_quiet_spell_down_with_nothing_lost_or_doubled(
    ray_cluster,
):
    ledger = ray.remote(Ledger).options(name=LEDGER, namespace=NAMESPACE).remote()
    # 2 calls of at most 4 messages, 20 ms each: about 400 messages/s and 8 in hand per
    # replica; 48 clients keep queues at the gateway as well.
    recorder = {"sleep_s": 0.02, "echo": False, "ledger": LEDGER}
    spec = _spec({"import": "tests.agent_runtime.ingress_agents:Recorder", "config": recorder})
    up_s, down_s, sent, status = asyncio.run(_step_up_and_down(spec))
    handled = ray.get(ledger.all.remote())
    ray.kill(ledger)

    assert len(sent.status) > 500 and set(sent.status.values()) == {200}
    expected = {f"c:{key}" for key in sent.status}  # client ids live in their own namespace
    doubled = len(handled) - len(set(handled))
    assert doubled == 0 and set(handled) == expected
    events = "\n".join(status["events"])
    assert "work: 1 -> " in events and " -> 1 replicas" in events, events
    print(f"scale up {up_s:.2f}s, down {down_s:.2f}s after the burst, {len(sent.status)} msgs")


def test_a_keyed_agents_keys_move_with_their_state_both_ways(ray_cluster):
    spec = _spec(
        {
            "import": "tests.agent_runtime.ingress_agents:KeyCounter",
            "routing_key": "key",
            "config": {"sleep_s": 0.02},
        }
    )
    driven: dict[str, list] = {f"drv-{n}": [] for n in range(4)}
    up_s, down_s, sent, status = asyncio.run(_step_up_and_down(spec, driven))

    assert len(sent.status) > 500 and set(sent.status.values()) == {200}
    counts: dict[str | int, list[int]] = {}
    replicas: dict[str | int, set[int]] = {}
    answers = [(client, sent.answer[message_id]) for message_id, client in sent.client.items()]
    answers += [(key, answer) for key, key_answers in driven.items() for answer in key_answers]
    for client, answer in answers:  # in the order each client sent them
        counts.setdefault(client, []).append(answer["count"])
        replicas.setdefault(client, set()).add(answer["replica"])
    # Each key's count went on where it was, wherever the key was: nothing lost or doubled.
    broken = {c: n for c, n in counts.items() if n != list(range(1, len(n) + 1))}
    assert not broken, broken
    moved = [client for client, seen in replicas.items() if len(seen) > 1]
    assert len(moved) >= CLIENTS // 3, replicas
    # drv-0, 2 and 3 hash to work.2 on the ring of three: drivers' stale rings met Moved.
    assert all(len(key_answers) > 20 for key_answers in driven.values()), driven
    assert {"drv-0", "drv-2", "drv-3"} <= set(moved), replicas
    events = "\n".join(status["events"])
    assert "keys handed over to the ring of 3 replicas" in events, events
    assert "keys handed over to the ring of 1 replicas" in events, events
    print(f"keyed: up {up_s:.2f}s, down {down_s:.2f}s, {len(moved)} of {len(counts)} keys moved")
