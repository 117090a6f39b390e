"""A deployment's consumers, as the supervisor sees them: created with the gateways, handed
the replicas' handles on every health round (which also restarts consuming in an actor Ray
restarted), reported in status(), stopped before the replicas."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import ray

from agent_runtime import placement
from agent_runtime.constants import INFO_TIMEOUT_S
from agent_runtime.ingress.service import ReplicaTable
from agent_runtime.spec import DeploymentSpec

# A consumer's close: flush its results, commit, leave the group.
CLOSE_TIMEOUT_S = 10.0


@dataclass
class ConsumerSlot:
    source: int
    index: int
    handle: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    reachable: bool = False

    @property
    def name(self) -> str:
        return f"source.{self.source}.{self.index}"


class SourcePool:
    def __init__(self, spec: DeploymentSpec) -> None:
        self._spec = spec
        self._slots = [
            ConsumerSlot(source, index)
            for source, settings in enumerate(spec.sources)
            for index in range(settings.consumers)
        ]

    async def start(self, replicas: ReplicaTable) -> None:
        if not self._slots:
            return
        # Here, not at the top: a deployment without sources needs no Kafka client.
        from agent_runtime.sources.consumer import SourceConsumer

        for slot in self._slots:
            options = placement.service_actor(
                f"{self._spec.name}.{slot.name}", "SPREAD", max_concurrency=1000
            )
            slot.handle = (
                ray.remote(SourceConsumer)
                .options(**options)
                .remote(self._spec, slot.source, slot.index)
            )
        await self.poke(replicas)

    async def poke(self, replicas: ReplicaTable) -> list[str]:
        """Hand every consumer the current replicas; what went wrong, per consumer."""
        if not self._slots:
            return []
        answers = await asyncio.gather(
            *(
                asyncio.wait_for(slot.handle.consume.remote(replicas), INFO_TIMEOUT_S)
                for slot in self._slots
            ),
            return_exceptions=True,
        )
        problems = []
        for slot, answer in zip(self._slots, answers, strict=True):
            slot.reachable = not isinstance(answer, BaseException)
            if isinstance(answer, BaseException):
                problems.append(f"{slot.name}: no answer ({answer!r})")
            else:
                slot.info = answer
        return problems

    def report(self) -> list[dict[str, Any]]:
        return [{"id": slot.name, "reachable": slot.reachable, **slot.info} for slot in self._slots]

    def handles(self) -> list[Any]:
        return [slot.handle for slot in self._slots if slot.handle is not None]

    async def stop(self) -> None:
        if not self._slots or self._slots[0].handle is None:
            return
        await asyncio.gather(
            *(
                asyncio.wait_for(slot.handle.close.remote(), CLOSE_TIMEOUT_S)
                for slot in self._slots
            ),
            return_exceptions=True,
        )
        for slot in self._slots:
            ray.kill(slot.handle, no_restart=True)
