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
from agent_runtime.examples import risk
from agent_runtime.examples.traffic import transaction
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


def _wanted(kafka: MockKafka, topic: str) -> set[str]:
    highs = kafka.high_watermarks(topic)
    return {f"{topic}/{p}/{offset}" for p, high in highs.items() for offset in range(high)}


def _answered(kafka: MockKafka, topic: str, wanted: set[str], timeout_s: float) -> list[str]:
    """Every id in `topic` (duplicates kept), once all of `wanted` are there or time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        ids = _ids(kafka.read(topic, 10**6, timeout_s=1))
        if wanted <= set(ids) or time.monotonic() > deadline:
            return ids


def test_every_message_is_answered_across_a_killed_consumer_and_replica(ray_cluster, kafka):
    topic = "at-least-once"
    kafka.create(topic, f"{topic}.out")
    # Slow enough (about 1,000 msg/s) that both kills land mid-stream.
    spec = _spec(
        "src-alo",
        kafka,
        topic,
        {"replicas": 2, "config": {"sleep_s": 0.05}},
        consumers=2,
        max_batch_size=8,
        calls_per_replica=2,
    )
    deployment = run(Deployment.start(spec))
    try:
        kafka.produce(topic, _values(0, 3000), keys=[str(i).encode() for i in range(3000)])
        assert len(kafka.read(f"{topic}.out", 300, timeout_s=30)) == 300
        # The consumer with the most in hand.
        consumers = ray.get(deployment.supervisor.status.remote())["sources"]
        before = max(consumers, key=lambda consumer: consumer["in_flight"])
        victim = ray.get_actor(f"src-alo.{before['id']}", namespace=NAMESPACE)
        ray.kill(victim, no_restart=False)
        time.sleep(0.3)
        replica = ray.get(deployment.supervisor.replicas.remote("doubler"))[0][1]
        ray.kill(replica, no_restart=False)
        wanted = _wanted(kafka, topic)
        ids = _answered(kafka, f"{topic}.out", wanted, timeout_s=60)
        assert wanted - set(ids) == set()
        assert len(set(ids)) == 3000
        (after,) = [
            consumer
            for consumer in ray.get(deployment.supervisor.status.remote())["sources"]
            if consumer["id"] == before["id"]
        ]
        assert after["pid"] != before["pid"]  # Ray restarted it; it rejoined the group
        assert before["in_flight"] > 0  # it was killed with work in hand
        print(f"at least once: {len(ids) - 3000} duplicates in {len(ids)} results")
    finally:
        run(deployment.stop(purge=True))


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s:g}s: {what}")


def test_partitions_pause_while_the_lanes_are_full_and_resume(ray_cluster, kafka):
    topic = "backpressure"
    kafka.create(topic, f"{topic}.out")
    spec = _spec(
        "src-bp",
        kafka,
        topic,
        {"replicas": 1, "config": {"sleep_s": 0.05}},
        max_pending_per_replica=8,
        max_batch_size=4,
        calls_per_replica=1,
    )
    deployment = run(Deployment.start(spec))
    try:
        kafka.produce(topic, _values(0, 400))
        seen: list[dict] = []

        def consumer_state():
            (state,) = ray.get(deployment.supervisor.status.remote())["sources"]
            seen.append(state)
            return state

        _wait_for(lambda: (s := consumer_state())["paused"] and s["lag"] > 0, 20, "paused, lag")
        assert len(kafka.read(f"{topic}.out", 400, timeout_s=60)) == 400
        state = _wait_for(
            lambda: (s := consumer_state())["lag"] == 0 and not s["paused"] and s, 10, "resumed"
        )
        assert state["pauses"] >= 1 and state["processed"] == 400
        # What the consumer held never grew past the lanes' room (plus results being written).
        assert max(s["in_flight"] for s in seen) <= 8 + 4
    finally:
        run(deployment.stop(purge=True))


def test_bad_messages_go_to_the_dead_letter_topic_and_the_partition_goes_on(ray_cluster, kafka):
    topic = "dead-letters"
    kafka.create(topic, f"{topic}.out", f"{topic}.dead")
    spec = _spec("src-dl", kafka, topic, {"replicas": 1, "routing_key": "k"})
    deployment = run(Deployment.start(spec))
    try:
        good = [json.dumps({"n": i, "k": f"k{i % 3}"}).encode() for i in range(40)]
        bad = [b"not json {", json.dumps({"n": 1}).encode(), b'{"n": 2, "k": "a", "boom": 1}']
        # One key: one partition, the bad messages between good ones.
        kafka.produce(topic, [*good[:20], *bad, *good[20:]], keys=[b"same"] * 43)
        dead = kafka.read(f"{topic}.dead", 3, timeout_s=30)
        reasons = sorted(dict(record.headers())["mcp-error"].decode() for record in dead)
        assert [r.split(":")[0] for r in reasons] == [
            "agent raised RuntimeError",
            "malformed JSON",
            "this agent routes by 'k'",
        ], reasons
        assert {record.value() for record in dead} == set(bad)
        answers = kafka.read(f"{topic}.out", 40, timeout_s=30)
        assert sorted(json.loads(r.value())["result"]["n"] for r in answers) == [
            2 * i for i in range(40)
        ]
        state = _wait_for(
            lambda: (
                (s := ray.get(deployment.supervisor.status.remote())["sources"][0])["dead_lettered"]
                == 3
                and s
            ),
            10,
            "counted",
        )
        assert state["processed"] == 40
    finally:
        run(deployment.stop(purge=True))


def test_the_risk_pipeline_runs_from_a_topic(ray_cluster, kafka):
    kafka.create("transactions", "decisions")
    source = {
        "bootstrap_servers": kafka.bootstrap,
        "topic": "transactions",
        "group": "risk-t",
        "output_topic": "decisions",
    }
    deployment = run(Deployment.start(risk.spec(1, name="src-risk", source=source)))
    try:
        txs = [transaction(i) for i in range(300)]
        keys = [str(tx["account"]).encode() for tx in txs]
        kafka.produce("transactions", [json.dumps(tx).encode() for tx in txs], keys)
        decisions = kafka.read("decisions", 300, timeout_s=60)
        results = [json.loads(record.value())["result"] for record in decisions]
        assert sorted(result["tx"] for result in results) == sorted(tx["tx"] for tx in txs)
        # Every scorer voted in time: decided, not sent to review.
        assert {result["verdict"] for result in results} <= {"approve", "decline"}
        assert all(result["votes"] == 3 for result in results)
    finally:
        run(deployment.stop(purge=True))


def test_a_secret_file_that_cannot_be_read_shows_in_status(ray_cluster, kafka, tmp_path):
    missing = tmp_path / "kafka.password"
    sasl = {"username": "risk", "password_file": str(missing)}
    spec = _spec("src-secret", kafka, "secret", {"replicas": 1}, sasl=sasl)
    deployment = run(Deployment.start(spec))
    try:
        state = _wait_for(
            lambda: (ray.get(deployment.supervisor.status.remote())["sources"][0]).get("error"),
            10,
            "the error reported",
        )
        assert state == f"ValueError: cannot read secret file {missing}: No such file or directory"
    finally:
        run(deployment.stop(purge=True))


def test_a_backlog_scales_an_autoscaled_agent_up(ray_cluster, kafka):
    topic = "autoscaled"
    kafka.create(topic, f"{topic}.out")
    scaling = {"min_replicas": 1, "max_replicas": 3, "target_in_flight": 4, "upscale_after_s": 0.2}
    agent = {"replicas": 1, "autoscaling": scaling, "config": {"sleep_s": 0.05}}
    # Small lanes: the backlog waits in the topic (paused), not in the first replica's lane,
    # so the replicas added take their share of it.
    spec = _spec(
        "src-scale", kafka, topic, agent, max_batch_size=4, calls_per_replica=1,
        max_pending_per_replica=16,
    )  # fmt: skip
    deployment = run(Deployment.start(spec))
    try:
        kafka.produce(topic, _values(0, 800))
        # What the consumer queues for the agent is its load, as a gateway's is.
        _wait_for(
            lambda: ray.get(deployment.supervisor.status.remote())["agents"][0]["replicas"] > 1,
            20,
            "more replicas for the backlog",
        )
        wanted = _wanted(kafka, topic)
        assert wanted - set(_answered(kafka, f"{topic}.out", wanted, timeout_s=60)) == set()
    finally:
        run(deployment.stop(purge=True))
