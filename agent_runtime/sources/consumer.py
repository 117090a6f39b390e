"""The consumer actor: one member of a source's consumer group, feeding the agent's replicas
through the ingress's lanes (AgentRoute/ReplicaLane), so a topic's messages are routed,
coalesced into `handle_many` calls and bounded exactly as a gateway's clients' are.

Delivery is at least once: a message's offset is committed only once it and every message
before it in its partition have finished (its result written to the output topic, or it was
dead-lettered; see offsets.py). Its id is `topic/partition/offset`, so a message redelivered
after a failure (of this actor, a replica, a node or the head) is answered from the
replica's memory instead of being applied twice.

Everything Kafka happens on the actor's event loop, with non-blocking polls: rebalance and
delivery callbacks then run between the loop's other work, never beside it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import ray
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from ray.exceptions import ActorDiedError, ActorUnavailableError

from agent_runtime.agent import Message
from agent_runtime.constants import NAMESPACE, supervisor_name
from agent_runtime.ingress import envelope
from agent_runtime.ingress.coalescer import AgentRoute, ReplicaLane, describe_failure
from agent_runtime.ingress.codec import JSON
from agent_runtime.ingress.errors import ClientError
from agent_runtime.ingress.service import ReplicaTable
from agent_runtime.ingress.stats import GatewayStats
from agent_runtime.routing import Moved
from agent_runtime.sources import kafka, metrics
from agent_runtime.sources.offsets import Offsets, PartitionProgress
from agent_runtime.sources.spec import SourceSpec
from agent_runtime.spec import DeploymentSpec, IngressLimits, IngressSpec

# Messages taken from the client per poll; what is held while the lanes are full is at most
# this many (the partitions are paused meanwhile).
POLL_BATCH = 512
# Poll back-off while the topic is quiet: a message waits at most this long to be seen.
IDLE_POLL_S = (0.001, 0.02)
# While paused: how long to wait for room before polling again (the group needs polls).
ROOM_WAIT_S = 0.2
LAG_EVERY_S = 1.0
WATERMARK_TIMEOUT_S = 2.0
ERROR_HEADER = "mcp-error"
SOURCE_HEADER = "mcp-source"


def lane_settings(source: SourceSpec) -> IngressSpec:
    """The lanes' bounds, in the shape the ingress's routing takes them."""
    limits = IngressLimits(max_pending_per_replica=source.max_pending_per_replica)
    return IngressSpec(
        max_batch_size=source.max_batch_size,
        calls_per_replica=source.calls_per_replica,
        limits=limits,
    )


def message_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


@dataclass(slots=True)
class _Entry:
    record: Any  # confluent_kafka.Message
    progress: PartitionProgress
    message: Message | None = None
    lane: ReplicaLane | None = None


class SourceConsumer:
    def __init__(self, spec: DeploymentSpec, source_index: int, index: int) -> None:
        self._deployment = spec.name
        self._source: SourceSpec = spec.sources[source_index]
        self._index = index
        self._agent = spec.agent(self._source.agent)
        self._stats = GatewayStats(spec.name)
        self._route = AgentRoute(
            self._agent, lane_settings(self._source), self._stats, self._fetch_replicas
        )
        self._offsets = Offsets()
        self._entries: dict[int, _Entry] = {}
        self._seq = 0
        self._held: deque[Any] = deque()
        self._retry: deque[int] = deque()
        self._paused = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None
        self._meter: Any = None
        self._producer: Any = None
        self._lag: dict[int, int] = {}
        self._measuring: asyncio.Future[None] | None = None
        self._error: str | None = None  # why the loop last ended, if it did
        self._counts = dict.fromkeys(
            ("consumed", "processed", "dead_lettered", "pauses", "redelivered"), 0
        )
        self._tags = {"deployment": spec.name, "topic": self._source.topic}
        self._name = f"{spec.name}.source.{source_index}.{index}"

    # -- the actor's interface ---------------------------------------------------------

    async def consume(self, replicas: ReplicaTable) -> dict[str, Any]:
        """Start consuming (once; later calls adopt the supervisor's current handles)."""
        self._route.set_replicas(replicas.get(self._agent.name, []))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        elif self._task.done() and not self._closing:
            error = None if self._task.cancelled() else self._task.exception()
            # Shown in status(): e.g. an unreadable secret file (its path, never a secret).
            self._error = describe_failure(error) if error else "consumer loop ended"
            print(f"{self._name}: {self._error}; starting again", flush=True)
            self._task = asyncio.ensure_future(self._run())
        return self.info()

    def info(self) -> dict[str, Any]:
        return {
            "source": self._source.topic,
            "group": self._source.group,
            "agent": self._agent.name,
            "consumer": self._index,
            "node_id": ray.get_runtime_context().get_node_id(),
            "pid": os.getpid(),
            "partitions": self._offsets.partitions(),
            "lag": sum(self._lag.values()),
            "partition_lag": {str(p): lag for p, lag in sorted(self._lag.items())},
            "paused": self._paused,
            "in_flight": len(self._entries),
            "error": self._error,
            **self._counts,
        }

    def load(self) -> dict[str, dict[str, int]]:
        """Messages queued and in actor calls for the agent (what scaling reads), as a
        gateway's."""
        return {self._agent.name: self._route.load()}

    def pending(self, replica_ids: list[str]) -> int:
        """Messages this consumer holds for these replicas (a scale-down waits for 0)."""
        return self._route.pending(replica_ids)

    async def close(self) -> None:
        """Stop taking messages, commit what finished, leave the group."""
        self._closing = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # -- the loop ----------------------------------------------------------------------

    async def _fetch_replicas(self, agent: str) -> list[tuple[str, Any, float]]:
        supervisor = ray.get_actor(supervisor_name(self._deployment), namespace=NAMESPACE)
        return await supervisor.replicas.remote(agent)

    async def _run(self) -> None:
        source = self._source
        # A secret file that cannot be read fails here, before any client exists; `consume`
        # starts the loop again on the next health round.
        producer_config = kafka.producer_config(source, f"{self._name}.out")
        # A new group member: what an earlier run held is read again from the last commit
        # (answers still due to it find no entry and are dropped).
        self._offsets, self._entries = Offsets(), {}
        self._held.clear()
        self._retry.clear()
        consumer_config = kafka.consumer_config(source, self._name)
        self._producer = Producer(producer_config)
        self._consumer = Consumer({**consumer_config, "on_commit": self._on_commit})
        # Never subscribes: it only asks for watermarks and the group's committed offsets.
        self._meter = Consumer({**consumer_config, "client.id": f"{self._name}.lag"})
        self._consumer.subscribe(
            [source.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        idle = IDLE_POLL_S[0]
        last_commit = last_lag = time.monotonic()
        try:
            while not self._closing:
                if not self._held or self._paused:
                    self._held.extend(self._consumer.consume(POLL_BATCH, timeout=0))
                self._producer.poll(0)
                now = time.monotonic()
                if now - last_commit >= source.commit_every_s:
                    self._commit()
                    last_commit = now
                if now - last_lag >= LAG_EVERY_S and self._measuring is None:
                    # Beside the loop: a slow broker must not hold up the messages.
                    self._measuring = asyncio.ensure_future(self._measure_lag())
                    last_lag = now
                if not self._held and not self._retry:
                    await asyncio.sleep(idle)
                    idle = min(idle * 2, IDLE_POLL_S[1])
                    continue
                idle = IDLE_POLL_S[0]
                self._dispatch()
                if self._held or self._retry:
                    self._pause()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._route.wait_for_room(), ROOM_WAIT_S)
                else:
                    self._resume()
                    await asyncio.sleep(0)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        # Results already in hand are written and committed; the rest is redelivered to
        # whoever takes the partitions.
        if self._measuring is not None:
            self._measuring.cancel()
        self._producer.flush(5)
        self._commit()
        self._consumer.close()
        self._meter.close()

    def _dispatch(self) -> None:
        """Put what is held into the lanes while they have room, in order, then start the
        calls (one pump per lane, so what went in together can share a call)."""
        touched: dict[str, ReplicaLane] = {}
        while self._retry:
            message = self._entries[self._retry[0]].message
            assert message is not None
            lane = self._lane_for(message)
            if lane is None:
                break
            self._put(self._retry.popleft(), lane, touched)
        while self._held and not self._retry:
            record = self._held[0]
            if record.error() is not None:
                self._held.popleft()
                if record.error().code() != KafkaError._PARTITION_EOF:
                    print(f"{self._name}: {record.error()}", flush=True)
                continue
            if not self._offsets.owned(record.partition()):
                self._held.popleft()  # revoked meanwhile: its new owner reads it again
                continue
            try:
                message = self._message(record)
            except ClientError as error:
                self._held.popleft()
                self._dead_letter(self._start(record), error.reason)
                continue
            lane = self._lane_for(message)
            if lane is None:
                break
            self._held.popleft()
            self._put(self._start(record, message), lane, touched)
        for lane in touched.values():
            lane.pump()

    def _lane_for(self, message: Message) -> ReplicaLane | None:
        """Its replica's lane, or None if that has no room."""
        lanes = self._route.assign([self._hash_key(message)])
        return None if lanes is None else lanes[0]

    def _put(self, seq: int, lane: ReplicaLane, touched: dict[str, ReplicaLane]) -> None:
        entry = self._entries[seq]
        assert entry.message is not None
        entry.lane = lane
        # The consumer is the lanes' ReplySink, and an entry's number its index.
        lane.put(entry.message, entry.message.id, self, seq)
        touched[lane.replica_id] = lane

    def _start(self, record: Any, message: Message | None = None) -> int:
        self._seq += 1
        progress = self._offsets.started(record.partition(), record.offset())
        self._entries[self._seq] = _Entry(record, progress, message)
        self._counts["consumed"] += 1
        return self._seq

    def _message(self, record: Any) -> Message:
        """The runtime's message for a record; ClientError (why) for one the agent cannot
        take."""
        payload = JSON.decode(record.value() or b"")
        key = envelope.routing_key(payload, self._agent.routing_key)
        return Message(
            message_id(record.topic(), record.partition(), record.offset()), payload, key
        )

    def _hash_key(self, message: Message) -> str:
        # Unkeyed messages hash by id, so a redelivery reaches the replica that remembers it.
        return message.key if self._agent.routing_key is not None and message.key else message.id

    # -- results -----------------------------------------------------------------------

    def resolve(self, seq: int, reply: dict[str, Any]) -> None:
        """The lane's answer for one entry (ReplySink)."""
        entry = self._entries.get(seq)
        if entry is None:
            return
        if "result" in reply:
            self._write_result(seq, reply)
        elif reply["status"] == 503:
            # Its replica is gone for good (not the message's fault): route it again.
            self._counts["redelivered"] += 1
            self._retry.append(seq)
        else:
            # The agent raised for the batch it was in: find out whether for this message.
            self._route.spawn(self._alone(seq))

    def _write_result(self, seq: int, reply: dict[str, Any]) -> None:
        entry = self._entries[seq]
        topic = self._source.output_topic
        if topic is None:
            self._finish(seq, "ok")
            return
        assert entry.message is not None
        try:
            value = JSON.encode(envelope.result_reply(entry.message.id, reply["result"]))
        except (TypeError, ValueError, OverflowError) as error:
            self._dead_letter(seq, f"result cannot be written as JSON: {error}")
            return
        self._produce(topic, seq, value, outcome="ok")

    async def _alone(self, seq: int) -> None:
        entry = self._entries[seq]
        assert entry.message is not None and entry.lane is not None
        try:
            (result,) = await entry.lane.handle.handle_many.remote([entry.message])
        except (ActorDiedError, ActorUnavailableError):
            self._counts["redelivered"] += 1
            self._retry.append(seq)
        except Exception as error:
            self._dead_letter(seq, f"agent raised {describe_failure(error)}")
        else:
            if isinstance(result, Moved):  # its key went to another replica meanwhile
                self._retry.append(seq)
                return
            self._write_result(seq, envelope.result_reply(entry.message.id, result))

    def _dead_letter(self, seq: int, reason: str) -> None:
        record = self._entries[seq].record
        headers = [
            (ERROR_HEADER, reason.encode()),
            (SOURCE_HEADER, message_id(record.topic(), record.partition(), record.offset())),
        ]
        self._produce(self._source.dead_letters, seq, record.value(), "dead_letter", headers)

    def _produce(
        self,
        topic: str,
        seq: int,
        value: bytes | None,
        outcome: str,
        headers: list[tuple[str, Any]] | None = None,
    ) -> None:
        record = self._entries[seq].record

        def delivered(error: Any, _: Any) -> None:
            if error is None:
                self._finish(seq, outcome)
            else:  # not finished, so not committed: write it again
                print(f"{self._name}: writing to {topic} failed ({error}); retrying", flush=True)
                self._produce(topic, seq, value, outcome, headers)

        while True:
            try:
                self._producer.produce(
                    topic, value, record.key(), headers=headers, on_delivery=delivered
                )
                return
            except BufferError:  # the client's queue is full: let it deliver some
                self._producer.poll(0.05)

    def _finish(self, seq: int, outcome: str) -> None:
        entry = self._entries.pop(seq)
        entry.progress.finished(entry.record.offset())
        self._counts["dead_lettered" if outcome == "dead_letter" else "processed"] += 1
        metrics.messages().inc(tags={**self._tags, "outcome": outcome})

    # -- offsets, rebalances, pausing ----------------------------------------------------

    def _commit(self, partitions: list[int] | None = None) -> None:
        due = self._offsets.to_commit()
        if partitions is not None:
            due = {p: point for p, point in due.items() if p in partitions}
        if not due:
            return
        topic = self._source.topic
        offsets = [TopicPartition(topic, p, point) for p, point in due.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=partitions is None)
        except Exception as error:  # e.g. mid-rebalance; the next round commits again
            print(f"{self._name}: commit failed ({error})", flush=True)
            return
        self._offsets.committed(due)

    def _on_commit(self, error: Any, partitions: list[Any]) -> None:
        if error is not None:
            self._offsets.uncommitted([tp.partition for tp in partitions])

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._offsets.assign([tp.partition for tp in partitions])
        if self._paused:
            consumer.pause(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = [tp.partition for tp in partitions]
        self._commit(revoked)  # synchronously: the next owner starts from here
        self._drop(revoked)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self._drop([tp.partition for tp in partitions])  # no longer ours to commit

    def _drop(self, partitions: list[int]) -> None:
        self._offsets.revoke(partitions)
        self._held = deque(r for r in self._held if r.partition() not in partitions)
        for p in partitions:
            self._lag.pop(p, None)
            metrics.lag().set(0, tags={**self._tags, "partition": str(p)})

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self._counts["pauses"] += 1
            self._consumer.pause(self._consumer.assignment())
            metrics.paused().set(1, tags={**self._tags, "consumer": str(self._index)})

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            self._consumer.resume(self._consumer.assignment())
            metrics.paused().set(0, tags={**self._tags, "consumer": str(self._index)})

    async def _measure_lag(self) -> None:
        """Per owned partition: messages after the commit point (to be handled or in hand)."""
        topic = self._source.topic
        partitions = self._offsets.partitions()
        positions = {p: self._offsets.position(p) for p in partitions}
        committed: dict[int, int] = {}
        unknown = [p for p, point in positions.items() if point is None]
        consumer = self._meter

        def query() -> dict[int, int]:
            # Fresh watermarks (a paused partition fetches nothing, so cached ones go stale):
            # a request per partition, off the loop, on a client of its own: a blocking call
            # on the group's consumer from another thread stalls its polls (by seconds).
            if unknown:
                for tp in consumer.committed(
                    [TopicPartition(topic, p) for p in unknown], timeout=WATERMARK_TIMEOUT_S
                ):
                    committed[tp.partition] = tp.offset
            highs = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=WATERMARK_TIMEOUT_S
                )
                highs[p] = high
                if committed.get(p, 0) < 0:
                    committed[p] = low
            return highs

        try:
            highs = await asyncio.to_thread(query)
        except Exception as error:  # a slow broker: keep the last figures
            print(f"{self._name}: lag not measured ({error})", flush=True)
            return
        finally:
            self._measuring = None
        for p, high in highs.items():
            if not self._offsets.owned(p):
                continue
            position = positions[p] if positions[p] is not None else committed.get(p, high)
            self._lag[p] = max(0, high - position)
            metrics.lag().set(self._lag[p], tags={**self._tags, "partition": str(p)})
