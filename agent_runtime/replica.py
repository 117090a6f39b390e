"""The actor that hosts one replica of an agent.

Ray gives the delivery guarantees (the actor is created with max_restarts and
max_task_retries, so calls in flight when it or its node dies are re-sent to the restarted
actor: at-least-once). This class adds what Ray does not: recognising a redelivered message
by its id, restoring the agent's state from its last checkpoint after a restart, and
handing a keyed agent's keys over to other replicas when autoscaling changes the ring.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from agent_runtime import checkpoint, metrics
from agent_runtime.agent import AgentContext, Message, load_agent_class
from agent_runtime.constants import replica_id
from agent_runtime.routing import HashRing, Moved
from agent_runtime.spec import AgentSpec

# How often a replica handing keys over looks whether their messages in hand are done.
HANDOVER_POLL_S = 0.002


@dataclass
class KeyParcel:
    """Keys on their way from one replica to their new owner: each key's state, and the
    recent answers of its messages (so a retry of one is still recognised there)."""

    states: dict[str, Any] = field(default_factory=dict)
    recent: dict[str, tuple[str, Any]] = field(default_factory=dict)


class Replica:
    def __init__(self, deployment: str, spec: AgentSpec, index: int) -> None:
        runtime = ray.get_runtime_context()
        self._deployment = deployment
        self._spec = spec
        self._index = index
        self._id = replica_id(spec.name, index)
        self._node_id = runtime.get_node_id()
        context = AgentContext(deployment, spec.name, index, self._node_id)
        self._agent = load_agent_class(spec.import_path)(dict(spec.config), context)
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._recent_keys: dict[str, str] = {}  # routing key of each keyed recent id
        self._busy_keys: Counter[str] = Counter()  # keys of the messages in hand
        self._ring_weights: dict[str, float] | None = None
        self._ring: HashRing | None = None  # None: every key is this replica's
        self._pending: dict[str, asyncio.Future] = {}
        self._processed = 0
        self._duplicates = 0
        self._since_checkpoint = 0
        self._unsaved: dict[str, Any] = {}
        self._previously_saved: dict[str, Any] = {}
        self._restored = False
        saved = checkpoint.load(deployment, spec.name, index)
        if saved is not None:
            self._agent.set_state(saved.agent_state)
            self._recent.update(saved.recent)
            self._processed = saved.processed
            # Checkpoints from before keyed handovers lack the field.
            self._recent_keys.update(getattr(saved, "recent_keys", {}))
            if saved.ring is not None:
                self._set_ring(saved.ring)
            self._restored = True
        self._setup: asyncio.Task | None = None
        self._tags = {"deployment": deployment, "agent": spec.name}

    async def _ensure_setup(self) -> None:
        # __init__ is synchronous, so the agent's async setup runs on the first call instead;
        # concurrent first calls share the one task.
        if self._setup is None:
            self._setup = asyncio.ensure_future(self._setup_agent())
        await self._setup

    async def _setup_agent(self) -> None:
        await self._agent.setup()
        # What exists now (Ray, torch, the agent and its model: ~200k objects) lives as long
        # as the process. Unfrozen, every full collection scans it all: 130-230 ms with
        # messages waiting on a 2-core VM, about once in several thousand messages as results
        # pass through the dedup window. The cost: cycles among these are never collected.
        gc.freeze()

    async def ready(self) -> dict[str, Any]:
        await self._ensure_setup()
        return self.info()

    async def handle(self, message: Message) -> Any:
        return (await self._process([message], batch=False))[0]

    async def handle_many(self, messages: list[Message]) -> list[Any]:
        """Several messages in one actor call, given to the agent's `handle_batch` together:
        one call's overhead instead of one per message, and one model pass for all."""
        return await self._process(messages, batch=True)

    async def _process(self, messages: list[Message], batch: bool) -> list[Any]:
        results: list[Any] = [None] * len(messages)
        waiting: list[tuple[int, asyncio.Future]] = []
        fresh: list[int] = []
        moved = 0
        loop = asyncio.get_running_loop()
        for i, message in enumerate(messages):
            if message.id in self._recent:
                results[i] = self._recent[message.id]
            elif message.id in self._pending:
                # Redelivered while the first delivery is still running: share its outcome.
                waiting.append((i, self._pending[message.id]))
            elif (owner := self._owner_elsewhere(message.key)) is not None:
                results[i] = Moved(owner)
                moved += 1
            else:
                fresh.append(i)
                self._pending[message.id] = loop.create_future()
                if message.key is not None:
                    self._busy_keys[message.key] += 1
        duplicates = len(messages) - len(fresh) - moved
        if duplicates:
            self._duplicates += duplicates
            metrics.messages().inc(duplicates, tags={**self._tags, "outcome": "duplicate"})
        if fresh:
            work = [messages[i] for i in fresh]
            try:
                answers = await self._run(work, batch)
            finally:
                self._done_with_keys(work)
            for i, answer in zip(fresh, answers, strict=True):
                results[i] = answer
        for i, future in waiting:
            results[i] = await asyncio.shield(future)
        return results

    async def _run(self, messages: list[Message], batch: bool) -> list[Any]:
        started = time.perf_counter()
        try:
            await self._ensure_setup()
            if batch:
                answers = await self._agent.handle_batch(messages)
            else:
                answers = [await self._agent.handle(messages[0])]
        except BaseException as error:
            for message in messages:
                future = self._pending.pop(message.id)
                future.set_exception(error)
                future.exception()  # mark retrieved: the caller gets the error, not the loop
            metrics.messages().inc(len(messages), tags={**self._tags, "outcome": "error"})
            raise
        for message, answer in zip(messages, answers, strict=True):
            self._pending.pop(message.id).set_result(answer)
            self._remember(message, answer)
        self._checkpoint_if_due()
        metrics.messages().inc(len(messages), tags={**self._tags, "outcome": "ok"})
        metrics.latency_ms().observe((time.perf_counter() - started) * 1000, tags=self._tags)
        return answers

    def _remember(self, message: Message, result: Any) -> None:
        self._processed += 1
        self._since_checkpoint += 1
        if self._spec.dedup_window:
            self._recall(message.id, message.key, result)
            self._forget_oldest()

    def _recall(self, message_id: str, key: str | None, result: Any) -> None:
        self._recent[message_id] = result
        self._unsaved[message_id] = result
        if key is not None:
            self._recent_keys[message_id] = key

    def _forget_oldest(self) -> None:
        while len(self._recent) > self._spec.dedup_window:
            message_id, _ = self._recent.popitem(last=False)
            self._recent_keys.pop(message_id, None)

    def _done_with_keys(self, messages: list[Message]) -> None:
        for message in messages:
            if message.key is not None:
                self._busy_keys[message.key] -= 1
                if not self._busy_keys[message.key]:
                    del self._busy_keys[message.key]

    def _set_ring(self, weights: Mapping[str, float]) -> HashRing:
        self._ring_weights = dict(weights)
        self._ring = HashRing()
        self._ring.set(self._ring_weights)
        return self._ring

    def _owner_elsewhere(self, key: str | None) -> str | None:
        """The replica the current ring gives this key to, if not this one."""
        if key is None or self._ring is None:
            return None
        owner = self._ring.lookup(key)
        return None if owner == self._id else owner

    async def release(self, weights: dict[str, float]) -> dict[str, KeyParcel]:
        """Hand over the keys that the ring of `weights` gives to other replicas: from now
        on their messages are answered Moved; once those in hand are done, their state and
        recent answers leave in one parcel per new owner (for its `adopt`)."""
        ring = self._set_ring(weights)

        def leaving(key: str) -> bool:
            return ring.lookup(key) != self._id

        while any(leaving(key) for key in self._busy_keys):
            await asyncio.sleep(HANDOVER_POLL_S)
        parcels: dict[str, KeyParcel] = {}
        for key, state in self._agent.export_keys(leaving).items():
            parcels.setdefault(ring.lookup(key), KeyParcel()).states[key] = state
        for message_id, key in self._recent_keys.items():
            if leaving(key):
                parcel = parcels.setdefault(ring.lookup(key), KeyParcel())
                parcel.recent[message_id] = (key, self._recent[message_id])
        self.checkpoint()
        return parcels

    async def adopt(self, weights: dict[str, float], parcels: list[KeyParcel]) -> int:
        """Take over keys other replicas released for the ring of `weights`; how many."""
        self._set_ring(weights)
        adopted = 0
        for parcel in parcels:
            self._agent.import_keys(parcel.states)
            adopted += len(parcel.states)
            for message_id, (key, result) in parcel.recent.items():
                self._recall(message_id, key, result)
        self._forget_oldest()
        self.checkpoint()
        return adopted

    def _checkpoint_if_due(self) -> None:
        # Once per call, not mid-batch: a checkpoint is a GCS write (~0.5 ms).
        if self._since_checkpoint >= self._spec.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> int:
        # Only answers whose reply may not have reached the caller can be asked for again
        # after a restart: those from about the last checkpoint interval. Saving the whole
        # dedup window each time would cost more than handling the messages.
        recent = {**self._previously_saved, **self._unsaved}
        state = checkpoint.Checkpoint(
            self._agent.get_state(),
            recent,
            self._processed,
            ring=self._ring_weights,
            recent_keys={i: self._recent_keys[i] for i in recent if i in self._recent_keys},
        )
        checkpoint.save(self._deployment, self._spec.name, self._index, state)
        self._previously_saved, self._unsaved = self._unsaved, {}
        self._since_checkpoint = 0
        return self._processed

    def info(self) -> dict[str, Any]:
        return {
            "agent": self._spec.name,
            "replica": self._index,
            "node_id": self._node_id,
            "pid": os.getpid(),
            "processed": self._processed,
            "duplicates": self._duplicates,
            "in_flight": len(self._pending),
            "restored": self._restored,
        }
