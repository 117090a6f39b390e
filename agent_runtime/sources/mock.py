"""A Kafka broker for tests and benchmarks without Java: librdkafka's mock cluster.

The mock lives inside the client that creates it (here, a producer kept for that purpose)
but listens on real TCP ports of 127.0.0.1, so consumers in other processes (Ray actors)
reach it with `bootstrap` as their bootstrap servers, through the same client code as
against a real Kafka. It ends with the process that made it. Topics are created on first
use with the mock's default of 4 partitions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

MOCK_PARTITIONS = 4


class MockKafka:
    def __init__(self, brokers: int = 1) -> None:
        self._owner = Producer(
            {"test.mock.num.brokers": brokers, "bootstrap.servers": "", "log_level": 3}
        )
        metadata = self._owner.list_topics(timeout=10)
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())
        # log_level 3: the mock's brokers closing idle connections is not news.
        self._producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "log_level": 3}
        )

    def create(self, *topics: str) -> None:
        for topic in topics:  # a producer's metadata request creates the topic
            self._producer.list_topics(topic, timeout=10)

    def produce(
        self, topic: str, values: Iterable[bytes], keys: Iterable[bytes | None] | None = None
    ) -> int:
        count = 0
        keys_iter = iter(keys) if keys is not None else None
        for value in values:
            key = next(keys_iter) if keys_iter is not None else None
            while True:
                try:
                    self._producer.produce(topic, value, key)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            count += 1
        self._producer.flush(30)
        return count

    def high_watermarks(self, topic: str) -> dict[int, int]:
        reader = self._reader()
        try:
            return {
                p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(MOCK_PARTITIONS)
            }
        finally:
            reader.close()

    def read(self, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
        """The first `count` records of `topic` (fewer if the timeout passes first)."""
        reader = self._reader()
        reader.assign([TopicPartition(topic, p, 0) for p in range(MOCK_PARTITIONS)])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while len(records) < count and time.monotonic() < deadline:
                for record in reader.consume(1000, timeout=0.2):
                    if record.error() is None:
                        records.append(record)
        finally:
            reader.close()
        return records[:count]

    def _reader(self) -> Any:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "mock-reader",
                "enable.auto.commit": False,
                "log_level": 3,
            }
        )
