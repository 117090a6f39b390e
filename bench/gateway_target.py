"""The real gateway as a bench target: a private local Ray, a deployment with a trivial
agent behind `options.processes` gateway processes sharing one loopback port.

    .venv/bin/python -m bench.ingress --target bench.gateway_target:start_gateway

Its pids are the gateways' and the replicas': everything that handles a message. The agent
answers each message with its payload, as the echo servers do, so the difference to the
echo target is what the gateway, Ray and the replica add.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from typing import Any

import ray

from agent_runtime.agent import Agent, Message
from agent_runtime.client import Deployment
from agent_runtime.ingress import token_digest
from agent_runtime.spec import DeploymentSpec
from bench.loadgen import LoadResult, LoadSpec, run_load
from bench.targets import TargetOptions, free_port, use_a_private_ray_token, wait_listening

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NICE_0 = {"RAY_worker_niceness": "0"}
TOKEN = "bench-token"  # bench/loadgen.py's default


class EchoAgent(Agent):
    """Each message's payload back; `config.sleep_s` per call gives it a finite capacity."""

    async def handle_batch(self, messages: list[Message]) -> list[Any]:
        if self.config.get("sleep_s"):
            await asyncio.sleep(self.config["sleep_s"])
        return [message.payload for message in messages]


def bench_spec(
    port: int, options: TargetOptions, ingress: dict[str, Any] | None = None, **agent: Any
) -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {
            "name": "bench",
            "agents": [
                {
                    "name": "echo",
                    "import": "bench.gateway_target:EchoAgent",
                    "replicas": options.replicas,
                    "resources": {"num_cpus": 0},
                    **agent,
                }
            ],
            "ingress": {
                "host": "127.0.0.1",
                "port": port,
                "processes_per_node": options.processes,
                "token_sha256": token_digest(TOKEN),
                # 100k connections over 7 processes; the hold phase idles for minutes.
                "limits": {"max_connections": 16_000, "idle_timeout_s": options.lifetime_s},
                **(ingress or {}),
            },
        }
    )


@dataclasses.dataclass
class GatewayTarget:
    port: int
    deployment: Deployment
    _pids: list[int]

    def pids(self) -> list[int]:
        return self._pids

    def stop(self) -> None:
        asyncio.run(self.deployment.stop(purge=True))
        ray.shutdown()


def start_ray(num_cpus: int) -> None:
    os.environ.update(NICE_0)  # the local raylet reads it for the workers it starts
    use_a_private_ray_token()
    # address="local": a private cluster, never one that other work on the machine runs.
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        namespace="mcp-agents",
        runtime_env={"env_vars": {**NICE_0, "PYTHONPATH": REPO_ROOT}},
    )


def start_deployment(spec: DeploymentSpec) -> tuple[Deployment, list[int]]:
    async def start() -> tuple[Deployment, list[int]]:
        deployment = await Deployment.start(spec)
        status = await deployment.status()
        gateways = [gateway["pid"] for gateway in status["gateways"]]
        return deployment, gateways + [replica["pid"] for replica in status["replicas"]]

    return asyncio.run(start())


def start_gateway(options: TargetOptions) -> GatewayTarget:
    start_ray(num_cpus=max(2, options.replicas))
    try:
        port = free_port()
        deployment, pids = start_deployment(bench_spec(port, options))
        wait_listening(port)
    except BaseException:
        ray.shutdown()
        raise
    return GatewayTarget(port, deployment, pids)


# The scaling phase: each replica takes one 10 ms call at a time (about 100 msg/s), and
# wants a replica per 10 messages queued or in hand. A base load of 4 closed-loop clients
# needs one; the 10x step (40 clients) needs four.
SCALING = {
    "min_replicas": 1,
    "max_replicas": 4,
    "target_in_flight": 10,
    "upscale_after_s": 0.5,
    "downscale_after_s": 2.0,
}
BASE_CLIENTS, STEP_CLIENTS = 4, 36


@dataclasses.dataclass
class Scaling:
    scale_up_s: float | None
    scale_down_s: float | None
    steps: list[str]
    results: list[LoadResult]


def measure_scaling(options: TargetOptions, step_s: float = 8.0) -> Scaling:
    """From a 10x load step to the replicas it needs, and from its end back to one."""
    start_ray(num_cpus=2)
    try:
        port = free_port()
        spec = bench_spec(
            port,
            dataclasses.replace(options, processes=1, replicas=1),
            ingress={"calls_per_replica": 1, "max_batch_size": 1},
            config={"sleep_s": 0.01},
            autoscaling=SCALING,
        )
        deployment, _ = start_deployment(spec)
        wait_listening(port)
        try:
            return _step(deployment, port, step_s)
        finally:
            asyncio.run(deployment.stop(purge=True))
    finally:
        ray.shutdown()


def _replicas(deployment: Deployment) -> int:
    async def count() -> int:
        (agent,) = (await deployment.status())["agents"]
        return agent["replicas"]

    return asyncio.run(count())


def _until(deployment: Deployment, count: int, since: float, limit_s: float) -> float | None:
    while time.monotonic() - since < limit_s:
        if _replicas(deployment) == count:
            return time.monotonic() - since
        time.sleep(0.1)
    return None


def _step(deployment: Deployment, port: int, step_s: float) -> Scaling:
    results: list[LoadResult] = []

    def load(connections: int, seconds: float) -> None:
        spec = LoadSpec(mode="ws", port=port, connections=connections, window=1,
                        warmup_s=0.0, duration_s=seconds)  # fmt: skip
        results.append(run_load(spec))

    base = threading.Thread(target=load, args=(BASE_CLIENTS, step_s + 20.0))
    base.start()
    time.sleep(3.0)  # the base load alone: one replica
    step = threading.Thread(target=load, args=(STEP_CLIENTS, step_s))
    step.start()
    stepped = time.monotonic()  # the step's clients connect within a few ms of this
    up_s = _until(deployment, SCALING["max_replicas"], stepped, limit_s=step_s)
    step.join()
    down_s = _until(deployment, SCALING["min_replicas"], time.monotonic(), limit_s=20.0)
    base.join()
    events = asyncio.run(deployment.status())["events"]
    return Scaling(up_s, down_s, [e for e in events if "replicas" in e], results)
