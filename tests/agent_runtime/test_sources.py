"""Stream sources against a real broker (librdkafka's mock cluster, in this process, over
TCP) and a real local Ray: at least once across failures, backpressure, dead letters."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("confluent_kafka")

import ray

from agent_runtime.client import Deployment
from agent_runtime.constants import NAMESPACE
from agent_runtime.sources.mock import MockKafka
from agent_runtime.spec import DeploymentSpec

pytestmark = pytest.mark.ray

DOUBLER = "tests.agent_runtime.source_agents:Doubler"


def run(coro):
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def kafka():
    return MockKafka()


def _spec(name: str, kafka: MockKafka, topic: str, agent: dict, **source: object) -> DeploymentSpec:
    return DeploymentSpec.model_validate(
        {
            "name": name,
            "agents": [
                {"name": "doubler", "import": DOUBLER, "resources": {"num_cpus": 0.1}, **agent}
            ],
            "health": {"interval_s": 0.5},
            "sources": [
                {
                    "agent": "doubler",
                    "bootstrap_servers": kafka.bootstrap,
                    "topic": topic,
                    "group": f"{name}-group",
                    "output_topic": f"{topic}.out",
                    "session_timeout_s": 3,
                    "commit_every_s": 0.2,
                    **source,
                }
            ],
        }
    )


def _values(start: int, count: int) -> list[bytes]:
    return [json.dumps({"n": i}).encode() for i in range(start, start + count)]


def _ids(records) -> list[str]:
    return [json.loads(record.value())["id"] for record in records]


def test_every_message_is_answered_across_a_killed_consumer_and_replica(ray_cluster, kafka):
    topic = "at-least-once"
    kafka.create(topic, f"{topic}.out")
    spec = _spec("src-alo", kafka, topic, {"replicas": 2}, consumers=2)
    deployment = run(Deployment.start(spec))
    try:
        kafka.produce(topic, _values(0, 1000))
        time.sleep(1.5)
        ray.kill(ray.get_actor("src-alo.source.0.0", namespace=NAMESPACE), no_restart=False)
        kafka.produce(topic, _values(1000, 1000))
        replica = ray.get(deployment.supervisor.replicas.remote("doubler"))[0][1]
        ray.kill(replica, no_restart=False)
        kafka.produce(topic, _values(2000, 1000))
        records = kafka.read(f"{topic}.out", 3000, timeout_s=60)
        ids = set(_ids(records))
        wanted = {
            f"{topic}/{p}/{o}"
            for p, high in kafka.high_watermarks(topic).items()
            for o in range(high)
        }
        assert len(wanted) == 3000
        assert wanted - ids == set()
        status = run(deployment.status())
        print(status["sources"])
    finally:
        run(deployment.stop(purge=True))
