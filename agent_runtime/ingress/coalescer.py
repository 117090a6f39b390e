"""Messages to actor calls: one bounded queue and sender per replica, routing across them.

Ray's per-call cost (0.4-1 ms of CPU on each side here) dwarfs a small agent's per-message
work, so a replica's sender takes everything queued for it, up to `max_batch_size`, into one
`handle_many` call whenever one of its `calls_per_replica` slots is free. Nothing waits to
fill a batch: a lone message goes at once; under load, batches grow by themselves while the
slots are busy. Each queue holds at most `max_pending_per_replica` messages (queued or in a
call); a message with no room anywhere it may go is refused, never buffered.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ray.exceptions import ActorDiedError, ActorUnavailableError

from agent_runtime.agent import Message
from agent_runtime.ingress.envelope import error_reply, result_reply
from agent_runtime.ingress.stats import GatewayStats
from agent_runtime.routing import HashRing, Moved, Redelivery
from agent_runtime.spec import AgentSpec, IngressSpec

MAX_ERROR_CHARS = 300


class ReplySink(Protocol):
    """Where the reply to the index-th message of a request goes (no coroutine per message)."""

    def resolve(self, index: int, reply: dict[str, Any]) -> None: ...


def describe_failure(error: BaseException) -> str:
    """A short reason for a client: the agent's exception, without Ray's traceback."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {cause}"[:MAX_ERROR_CHARS]


Entry = tuple[Message, str, ReplySink, int]  # a message, its reply id, where and which reply


class ReplicaLane:
    """The messages bound for one replica and the calls carrying them."""

    def __init__(self, route: AgentRoute, replica_id: str, handle: Any, weight: float) -> None:
        self.route = route
        self.replica_id = replica_id
        self.handle = handle
        self.weight = weight
        self.pending = 0  # queued + in calls: what the capacity bounds
        self.in_calls = 0
        self._queue: deque[Entry] = deque()
        self._calls = 0

    def room(self) -> int:
        return self.route.capacity - self.pending

    def put(self, message: Message, reply_id: str, sink: ReplySink, index: int) -> None:
        self._queue.append((message, reply_id, sink, index))
        self.pending += 1

    def queued(self) -> int:
        return len(self._queue)

    def pump(self) -> None:
        """Start calls for what is queued while slots are free. With a call out already,
        another starts only for a full batch: less than that waits for the call to come
        back and goes with what arrives meanwhile, so a moderate load makes a few large
        calls instead of many small ones (each costs the gateway and the replica about a
        millisecond of CPU), and only a queue beyond a batch pipelines calls."""
        while self._queue and self._calls < self.route.calls_per_replica:
            if self._calls and len(self._queue) < self.route.max_batch_size:
                return
            size = min(len(self._queue), self.route.max_batch_size)
            batch = [self._queue.popleft() for _ in range(size)]
            self._calls += 1
            self.in_calls += size
            self.route.spawn(self._call(batch))

    async def _call(self, batch: list[Entry]) -> None:
        messages = [entry[0] for entry in batch]
        self.route.stats.batch(self.route.agent, len(messages))
        try:
            results = await self._deliver(messages)
        except Exception as error:
            status = 503 if isinstance(error, ActorDiedError | ActorUnavailableError) else 500
            reason = describe_failure(error)
            for _, reply_id, sink, index in batch:
                sink.resolve(index, error_reply(reply_id, status, reason))
            self.route.stats.messages[(self.route.agent, "error")] += len(batch)
        else:
            moved = []
            for entry, result in zip(batch, results, strict=True):
                if isinstance(result, Moved):
                    moved.append(entry)
                else:
                    _, reply_id, sink, index = entry
                    sink.resolve(index, result_reply(reply_id, result))
            self.route.stats.messages[(self.route.agent, "ok")] += len(batch) - len(moved)
            if moved:
                self.route.spawn(self.route.redirect(moved, self))
        finally:
            self._calls -= 1
            self.in_calls -= len(batch)
            self.pending -= len(batch)
            self.pump()
            self.route.wake()

    async def _deliver(self, messages: list[Message]) -> list[Any]:
        # Ray re-sends calls to a replica it restarts; a replica the supervisor replaced
        # (drained off a node) answers ActorDiedError, and its successor comes from the
        # supervisor. The same ids go again, so the replica's dedup recognises them.
        again = Redelivery()
        while True:
            try:
                return await self.handle.handle_many.remote(messages)
            except (ActorDiedError, ActorUnavailableError):
                if again.expired():
                    raise
            await again.pause()
            await self.route.refresh()


Fetch = Callable[[str], Coroutine[Any, Any, list[tuple[str, Any, float]]]]


class AgentRoute:
    """One agent's lanes, and which lane each message goes to.

    Keyed messages go to the key's owner on the hash ring (as AgentGroup routes them, so a
    key's state stays on one replica whichever gateway or driver sends it). An unkeyed
    message with a client id is placed by hashing the id, so a retry reaches the replica
    that remembers the answer; other unkeyed messages go to a replica with room, chosen at
    random in proportion to weight.
    """

    def __init__(
        self,
        spec: AgentSpec,
        ingress: IngressSpec,
        stats: GatewayStats,
        fetch: Fetch,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.agent = spec.name
        self.capacity = ingress.limits.max_pending_per_replica
        self.calls_per_replica = ingress.calls_per_replica
        self.max_batch_size = ingress.max_batch_size
        self.stats = stats
        self._fetch = fetch
        self._rng = rng or random.Random()
        self._ring = HashRing()
        self._lanes: dict[str, ReplicaLane] = {}
        self._order: list[ReplicaLane] = []
        self._cumulative: list[float] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None

    def set_replicas(self, replicas: list[tuple[str, Any, float]]) -> None:
        """Adopt the supervisor's current handles; lanes (and their queues) survive by id."""
        for replica_id, handle, weight in replicas:
            lane = self._lanes.get(replica_id)
            if lane is None:
                self._lanes[replica_id] = ReplicaLane(self, replica_id, handle, weight)
            else:
                lane.handle, lane.weight = handle, weight
        current = {replica_id for replica_id, _, _ in replicas}
        # A replica left out (scaled down) keeps its lane until what it holds is answered.
        self._lanes = {
            rid: lane for rid, lane in self._lanes.items() if rid in current or lane.pending
        }
        self._order = [lane for rid, lane in self._lanes.items() if rid in current]
        self._ring.set({lane.replica_id: lane.weight for lane in self._order})
        total = 0.0
        self._cumulative = []
        for lane in self._order:
            total += lane.weight
            self._cumulative.append(total)

    async def refresh(self) -> None:
        # Concurrent failures share one question to the supervisor.
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
        await self._refreshing

    async def _refresh(self) -> None:
        self.set_replicas(await self._fetch(self.agent))

    def assign(self, hash_keys: list[str | None]) -> list[ReplicaLane] | None:
        """A lane per message (hash key: routing key or client id, else None), or None when
        some message has no room: then none of them is sent."""
        taken: dict[str, int] = {}
        lanes: list[ReplicaLane] = []
        for hash_key in hash_keys:
            if hash_key is not None:
                lane = self._lanes[self._ring.lookup(hash_key)]
                if lane.room() <= taken.get(lane.replica_id, 0):
                    return None
            else:
                found = self._pick(taken)
                if found is None:
                    return None
                lane = found
            taken[lane.replica_id] = taken.get(lane.replica_id, 0) + 1
            lanes.append(lane)
        return lanes

    def _pick(self, taken: dict[str, int]) -> ReplicaLane | None:
        if not self._order:
            return None
        # One weighted draw usually lands on a lane with room; scan only when it does not.
        (lane,) = self._rng.choices(self._order, cum_weights=self._cumulative)
        if lane.room() > taken.get(lane.replica_id, 0):
            return lane
        open_lanes = [lane for lane in self._order if lane.room() > taken.get(lane.replica_id, 0)]
        if not open_lanes:
            return None
        return self._rng.choices(open_lanes, [lane.weight for lane in open_lanes])[0]

    def submit(
        self,
        messages: list[Message],
        reply_ids: list[str],
        lanes: list[ReplicaLane],
        sink: ReplySink,
    ) -> None:
        for index, (message, reply_id, lane) in enumerate(
            zip(messages, reply_ids, lanes, strict=True)
        ):
            lane.put(message, reply_id, sink, index)
        for lane in {id(lane): lane for lane in lanes}.values():
            lane.pump()

    async def redirect(self, entries: list[Entry], refused_by: ReplicaLane) -> None:
        """Keyed messages a replica answered Moved (autoscaling is handing their keys to
        another replica): queue each for its key's owner as soon as the ring here says
        who that is, asking the supervisor again while it still names the refuser."""
        again = Redelivery()
        while True:
            stuck: list[Entry] = []
            lanes: dict[str, ReplicaLane] = {}
            for entry in entries:
                lane = self._lanes[self._ring.lookup(entry[0].key or "")]
                if lane is refused_by:
                    stuck.append(entry)
                else:
                    lane.put(*entry)
                    lanes[lane.replica_id] = lane
            for lane in lanes.values():
                lane.pump()
            if not stuck:
                return
            if again.expired():
                for _, reply_id, sink, index in stuck:
                    sink.resolve(index, error_reply(reply_id, 503, "its key is moving"))
                return
            await again.pause()
            await self.refresh()
            entries = stuck

    async def wait_for_room(self) -> None:
        """Until some call of this agent finishes (then try `assign` again)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def spawn(self, call: Coroutine[Any, Any, None]) -> None:
        # The loop keeps only weak references to tasks: hold each call until it ends.
        task = asyncio.ensure_future(call)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def pending(self, replica_ids: list[str]) -> int:
        """Messages queued for or in calls to these replicas."""
        return sum(self._lanes[rid].pending for rid in replica_ids if rid in self._lanes)

    def load(self) -> dict[str, int]:
        queued = sum(lane.queued() for lane in self._lanes.values())
        in_flight = sum(lane.in_calls for lane in self._lanes.values())
        return {"queued": queued, "in_flight": in_flight}
