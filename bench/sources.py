"""Stream source benchmark: transactions from a topic through the risk agents, decisions
back to a topic, with the consumers' lag along the way.

    PYTHONPATH=$PWD .venv/bin/python -m bench.sources [--messages 5000] [--consumers 2]

The broker is librdkafka's mock cluster in this process (as the tests use: real TCP, real
consumer group protocol, no Java), so the figure is the runtime's and Ray's, not a
production broker's. The topic is filled first and then drained: msgs/s is the backlog's
throughput from the first message taken to the last decision written. Prints a table and,
last, one line of JSON: msgs_per_s, lost (target 0), duplicated_decisions, max_lag, ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from collections import Counter
from typing import Any

import ray
from confluent_kafka import Consumer, TopicPartition

from agent_runtime.client import Deployment
from agent_runtime.examples import risk
from agent_runtime.examples.traffic import transaction
from agent_runtime.sources.mock import MOCK_PARTITIONS, MockKafka
from bench.gateway_target import start_ray

TOPIC, DECISIONS = "transactions", "decisions"
STATUS_EVERY_S = 0.5


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300, help="messages before measuring")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2, help="per scoring agent")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    return parser.parse_args()


def fill(kafka: MockKafka, start: int, count: int) -> None:
    values, keys = [], []
    for i in range(start, start + count):
        tx = transaction(i)
        values.append(json.dumps(tx).encode())
        keys.append(str(tx["account"]).encode())
    kafka.produce(TOPIC, values, keys)


class DecisionReader:
    """Reads `decisions` from the start, keeps every id (duplicates counted)."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-reader", "log_level": 3}
        )
        self.consumer.assign([TopicPartition(DECISIONS, p, 0) for p in range(MOCK_PARTITIONS)])
        self.ids: Counter[str] = Counter()
        self.verdicts: Counter[str] = Counter()

    def poll(self) -> None:
        for record in self.consumer.consume(1000, timeout=0.1):
            if record.error() is None:
                reply = json.loads(record.value())
                self.ids[reply["id"]] += 1
                if self.ids[reply["id"]] == 1:
                    self.verdicts[reply["result"]["verdict"]] += 1


def sources_status(deployment: Deployment) -> list[dict[str, Any]]:
    return ray.get(deployment.supervisor.status.remote())["sources"]


def drain(
    deployment: Deployment, reader: DecisionReader, wanted: int, timeout_s: float
) -> tuple[float, list[int], list[dict[str, Any]]]:
    """Until `wanted` distinct decisions are read: (seconds, lag samples, last status)."""
    started = time.monotonic()
    lags: list[int] = []
    last: list[dict[str, Any]] = []
    next_status = started
    while len(reader.ids) < wanted and time.monotonic() - started < timeout_s:
        reader.poll()
        if time.monotonic() >= next_status:
            last = sources_status(deployment)
            lags.append(sum(consumer.get("lag", 0) for consumer in last))
            next_status += STATUS_EVERY_S
    return time.monotonic() - started, lags, last


def main() -> None:
    args = parse_args()
    print(f"stream source benchmark: Ray {ray.__version__}, Python {platform.python_version()}")
    kafka = MockKafka()
    kafka.create(TOPIC, DECISIONS, f"{TOPIC}.dead")
    start_ray(num_cpus=4)
    source = {
        "bootstrap_servers": kafka.bootstrap,
        "topic": TOPIC,
        "group": "risk-bench",
        "consumers": args.consumers,
        "output_topic": DECISIONS,
    }
    spec = risk.spec(args.replicas, name="risk-bench", source=source)
    deployment = asyncio.run(Deployment.start(spec))
    reader = DecisionReader(kafka.bootstrap)
    try:
        fill(kafka, 0, args.warmup)
        drain(deployment, reader, args.warmup, args.timeout)
        fill(kafka, args.warmup, args.messages)
        total = args.warmup + args.messages
        seconds, lags, last = drain(deployment, reader, total, args.timeout)
        # Late duplicates (redeliveries) arrive after the last first decision: a moment more.
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            reader.poll()
        last = sources_status(deployment)
    finally:
        asyncio.run(deployment.stop(purge=True))
        ray.shutdown()
    measured = len(reader.ids) - args.warmup
    figures = {
        "messages": args.messages,
        "seconds": round(seconds, 2),
        "msgs_per_s": round(measured / seconds, 1),
        "lost": total - len(reader.ids),
        "duplicated_decisions": sum(reader.ids.values()) - len(reader.ids),
        "max_lag": max(lags, default=0),
        "final_lag": sum(consumer.get("lag", 0) for consumer in last),
        "pauses": sum(consumer.get("pauses", 0) for consumer in last),
        "dead_lettered": sum(consumer.get("dead_lettered", 0) for consumer in last),
        "consumers": args.consumers,
        "replicas_per_scorer": args.replicas,
        "declined": reader.verdicts["decline"],
        "review": reader.verdicts["review"],
    }
    print(f"{'measure':24} value")
    for name, value in figures.items():
        print(f"{name:24} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
