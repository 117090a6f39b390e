"""The actor that hosts one replica of an agent.

Ray gives the delivery guarantees (the actor is created with max_restarts and
max_task_retries, so calls in flight when it or its node dies are re-sent to the restarted
actor: at-least-once). This class adds what Ray does not: recognising a redelivered message
by its id, and restoring the agent's state from its last checkpoint after a restart.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from typing import Any

import ray

from agent_runtime import checkpoint, metrics
from agent_runtime.agent import AgentContext, Message, load_agent_class
from agent_runtime.spec import AgentSpec


class Replica:
    def __init__(self, deployment: str, spec: AgentSpec, index: int) -> None:
        runtime = ray.get_runtime_context()
        self._deployment = deployment
        self._spec = spec
        self._index = index
        self._node_id = runtime.get_node_id()
        context = AgentContext(deployment, spec.name, index, self._node_id)
        self._agent = load_agent_class(spec.import_path)(dict(spec.config), context)
        self._recent: OrderedDict[str, Any] = OrderedDict()
        self._pending: dict[str, asyncio.Future] = {}
        self._processed = 0
        self._duplicates = 0
        self._since_checkpoint = 0
        self._restored = False
        saved = checkpoint.load(deployment, spec.name, index)
        if saved is not None:
            self._agent.set_state(saved.agent_state)
            self._recent.update(saved.recent)
            self._processed = saved.processed
            self._restored = True
        self._setup: asyncio.Task | None = None
        self._tags = {"deployment": deployment, "agent": spec.name}

    async def _ensure_setup(self) -> None:
        # __init__ is synchronous, so the agent's async setup runs on the first call instead;
        # concurrent first calls share the one task.
        if self._setup is None:
            self._setup = asyncio.ensure_future(self._agent.setup())
        await self._setup

    async def ready(self) -> dict[str, Any]:
        await self._ensure_setup()
        return self.info()

    async def handle(self, message: Message) -> Any:
        if message.id in self._recent:
            return self._duplicate(self._recent[message.id])
        pending = self._pending.get(message.id)
        if pending is not None:
            return self._duplicate(await asyncio.shield(pending))
        await self._ensure_setup()
        future = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        started = time.perf_counter()
        try:
            result = await self._agent.handle(message)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: the caller gets the error, not the loop
            metrics.messages().inc(tags={**self._tags, "outcome": "error"})
            raise
        finally:
            del self._pending[message.id]
        future.set_result(result)
        self._remember(message.id, result)
        metrics.messages().inc(tags={**self._tags, "outcome": "ok"})
        metrics.latency_ms().observe((time.perf_counter() - started) * 1000, tags=self._tags)
        return result

    def _duplicate(self, result: Any) -> Any:
        self._duplicates += 1
        metrics.messages().inc(tags={**self._tags, "outcome": "duplicate"})
        return result

    def _remember(self, message_id: str, result: Any) -> None:
        self._processed += 1
        if self._spec.dedup_window:
            self._recent[message_id] = result
            while len(self._recent) > self._spec.dedup_window:
                self._recent.popitem(last=False)
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._spec.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> int:
        state = checkpoint.Checkpoint(self._agent.get_state(), dict(self._recent), self._processed)
        checkpoint.save(self._deployment, self._spec.name, self._index, state)
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
