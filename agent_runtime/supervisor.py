"""The supervisor actor: owns a deployment's replicas and keeps them on healthy nodes.

Division of labour with Ray: Ray restarts a replica whose process or node died and re-sends
its in-flight calls (max_restarts / max_task_retries); the supervisor handles what Ray cannot
see, a node that is alive but unhealthy or cordoned. It checkpoints the replicas there, kills
them and creates them again with a label selector that excludes every bad node. The selector
is fixed at creation, so later Ray restarts of that replica avoid those nodes too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agent_runtime import checkpoint, health, placement
from agent_runtime.agent import import_problems
from agent_runtime.constants import (
    DRAIN_TIMEOUT_S,
    INFO_TIMEOUT_S,
    NAMESPACE,
    READY_TIMEOUT_S,
    SCALE_EVERY_S,
    SCALE_READY_TIMEOUT_S,
    replica_id,
)
from agent_runtime.ingress.gateway import Gateway
from agent_runtime.replica import Replica
from agent_runtime.scaling import Scaler
from agent_runtime.sources.pool import SourcePool
from agent_runtime.spec import AgentSpec, DeploymentSpec


@dataclass
class ReplicaSlot:
    agent: AgentSpec
    index: int
    handle: Any = None
    incarnation: int = 0
    node_id: str | None = None  # last node it answered from
    reachable: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def replica_id(self) -> str:
        return replica_id(self.agent.name, self.index)


@dataclass
class GatewaySlot:
    node_id: str
    index: int
    handle: Any = None
    address: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"ingress.{self.node_id[:12]}.{self.index}"


class DeploymentRefused(ValueError):
    """The deployment cannot start as specified; nothing of it was created."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Supervisor:
    def __init__(self, spec: DeploymentSpec) -> None:
        self._spec = spec
        self._slots: dict[str, list[ReplicaSlot]] = {}
        # Slots an autoscaled agent has shed, reused (same index, so same checkpoint) when
        # it grows again.
        self._spare: dict[str, list[ReplicaSlot]] = {agent.name: [] for agent in spec.agents}
        self._scalers = {
            agent.name: Scaler(agent.autoscaling) for agent in spec.agents if agent.autoscaling
        }
        self._load: dict[str, float] = {}
        self._gateways: list[GatewaySlot] = []
        self._sources = SourcePool(spec)
        self._bad_nodes: set[str] = set()
        self._degraded = False
        self._report: dict[str, dict[str, Any]] = {}
        self._events: list[str] = []
        self._monitor: Any = None
        self._started: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self._scaling: asyncio.Task | None = None
        # status() and the watch loop both check; one at a time so a replica moves once.
        self._checking = asyncio.Lock()

    async def _ensure_started(self) -> None:
        # Also the recovery path: if Ray restarts this actor, its replicas died with it and
        # the first call re-creates them (they resume from their checkpoints).
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await self._started

    async def _refuse_what_cannot_start(self) -> None:
        """Imports that fail and replicas no node could hold, found in seconds rather than
        by replicas that Ray restarts forever or that stay pending until a timeout."""
        paths = {agent.name: agent.import_path for agent in self._spec.agents}
        imports = ray.remote(num_cpus=0)(import_problems).remote(paths)
        problems = placement.unplaceable(self._spec.agents, ray.nodes()) + await imports
        if problems:
            raise DeploymentRefused(problems)

    async def _start(self) -> None:
        await self._refuse_what_cannot_start()
        self._monitor = health.get_monitor(self._spec.health)
        await self._monitor.configure.remote(self._spec.health)
        self._update_health(await self._monitor.report.remote())
        for agent in self._spec.agents:
            self._slots[agent.name] = [ReplicaSlot(agent, i) for i in range(agent.replicas)]
            for slot in self._slots[agent.name]:
                self._create(slot)
        await self._wait_ready(self._all_slots())
        if self._spec.ingress is not None:
            await self._start_gateways()
        await self._sources.start(self._replica_table())
        self._watch = asyncio.ensure_future(self._watch_loop())
        if self._scalers:
            self._scaling = asyncio.ensure_future(self._scale_loop())

    async def _wait_ready(
        self, slots: list[ReplicaSlot], timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        calls = {asyncio.ensure_future(slot.handle.ready.remote()): slot for slot in slots}
        done, pending = await asyncio.wait(calls, timeout=timeout_s)
        for call in done:
            # A failed constructor or setup raises here, to the deployer.
            calls[call].node_id = call.result()["node_id"]
        if pending:
            stuck = ", ".join(
                f"{calls[c].replica_id} (needs {calls[c].agent.resources.ray_options()})"
                for c in pending
            )
            raise TimeoutError(
                f"not ready after {timeout_s:g}s: {stuck}; is there a healthy node with "
                "those resources free? ('ray status' shows pending demands)"
            )

    async def _start_gateways(self) -> None:
        ingress = self._spec.ingress
        assert ingress is not None
        if ingress.token_sha256 is None:
            raise ValueError(
                "ingress.token_sha256 is missing: `mcpctl agents deploy` fills it in; from "
                "Python, set it to agent_runtime.ingress.token_digest(token)"
            )
        self._gateways = [
            GatewaySlot(node_id, index)
            for node_id in self._gateway_nodes(ingress.nodes)
            for index in range(ingress.processes_per_node)
        ]
        for gateway in self._gateways:
            self._create_gateway(gateway)
        table = self._replica_table()
        addresses = await asyncio.gather(
            *(gateway.handle.serve.remote(table) for gateway in self._gateways)
        )
        for gateway, address in zip(self._gateways, addresses, strict=True):
            gateway.address = address
        urls = sorted({address["url"] for address in addresses})
        self._log(f"ingress: {len(self._gateways)} gateways at {', '.join(urls)}")

    def _gateway_nodes(self, hostnames: list[str]) -> list[str]:
        """Node ids for the named hostnames, else the nodes that host this deployment."""
        if not hostnames:
            return sorted({slot.node_id for slot in self._all_slots() if slot.node_id})
        alive = [node for node in ray.nodes() if node["Alive"]]
        found = [node["NodeID"] for node in alive if node["NodeManagerHostname"] in hostnames]
        missing = set(hostnames) - {node["NodeManagerHostname"] for node in alive}
        if missing:
            known = ", ".join(sorted({node["NodeManagerHostname"] for node in alive}))
            raise ValueError(
                f"ingress.nodes: no live node named {', '.join(sorted(missing))} (nodes: {known})"
            )
        return sorted(found)

    def _create_gateway(self, gateway: GatewaySlot) -> None:
        options = placement.service_actor(
            f"{self._spec.name}.{gateway.name}",
            NodeAffinitySchedulingStrategy(gateway.node_id, soft=False),
            max_concurrency=10_000,
        )
        gateway.handle = ray.remote(Gateway).options(**options).remote(self._spec, gateway.index)

    def _replica_table(self) -> dict[str, list[tuple[str, Any, float]]]:
        return {
            agent: [(s.replica_id, s.handle, s.agent.weight) for s in slots]
            for agent, slots in self._slots.items()
        }

    async def _poke_gateways(self) -> None:
        """Hand every gateway the current replica handles; a gateway Ray restarted starts
        listening again on this call."""
        if not self._gateways:
            return
        table = self._replica_table()
        answers = await asyncio.gather(
            *(
                asyncio.wait_for(gateway.handle.serve.remote(table), INFO_TIMEOUT_S)
                for gateway in self._gateways
            ),
            return_exceptions=True,
        )
        for gateway, answer in zip(self._gateways, answers, strict=True):
            if isinstance(answer, BaseException):
                self._log(f"{gateway.name}: no answer ({answer!r})")
            else:
                gateway.address = answer

    async def gateways(self) -> list[dict[str, Any]]:
        """Where the deployment's gateways listen: [{node_id, index, pid, host, port, url}]."""
        await self._ensure_started()
        return [gateway.address for gateway in self._gateways]

    def _all_slots(self) -> list[ReplicaSlot]:
        return [slot for slots in self._slots.values() for slot in slots]

    def _update_health(self, report: dict[str, dict[str, Any]]) -> None:
        """Decide which nodes to keep replicas off.

        With no healthy node left, draining would turn degraded replicas into missing ones
        (and a label selector excluding every node keeps new ones pending even after the
        nodes recover), so then nothing is drained until a node is healthy again.
        """
        self._report = report
        bad = {
            node_id
            for node_id, node in report.items()
            if node["status"] in (health.UNHEALTHY, health.CORDONED)
        }
        any_healthy = any(node["status"] == health.HEALTHY for node in report.values())
        if bad and not any_healthy and not self._degraded:
            self._log("no healthy node: replicas stay where they are until one recovers")
        self._degraded = bool(bad) and not any_healthy
        self._bad_nodes = bad if any_healthy else set()

    def _create(self, slot: ReplicaSlot) -> None:
        options: dict[str, Any] = {
            **slot.agent.resources.ray_options(),
            "name": f"{self._spec.name}.{slot.replica_id}.{slot.incarnation}",
            "namespace": NAMESPACE,
            "max_restarts": -1,
            "max_task_retries": -1,
            "max_concurrency": slot.agent.max_concurrency,
            "scheduling_strategy": "SPREAD",
            "runtime_env": placement.LATENCY_BOUND,
            **placement.avoiding(self._bad_nodes),
        }
        slot.handle = (
            ray.remote(Replica).options(**options).remote(self._spec.name, slot.agent, slot.index)
        )
        slot.node_id = None
        slot.reachable = False

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self._spec.health.interval_s)
            try:
                await self._check()
            except Exception as error:  # the watch must outlive one failed round
                self._log(f"health check round failed: {error!r}")

    async def _check(self) -> None:
        async with self._checking:
            await self._check_unlocked()

    async def _check_unlocked(self) -> None:
        self._update_health(await self._monitor.report.remote())
        slots = self._all_slots()
        infos = await asyncio.gather(
            *(asyncio.wait_for(slot.handle.info.remote(), INFO_TIMEOUT_S) for slot in slots),
            return_exceptions=True,
        )
        for slot, info in zip(slots, infos, strict=True):
            # No answer: Ray may be restarting it elsewhere (its node died), or its node is
            # unreachable; only the latter shows up as a bad node to move it from.
            slot.reachable = not isinstance(info, BaseException)
            if slot.reachable:
                slot.info = info
                slot.node_id = info["node_id"]
            if slot.node_id in self._bad_nodes:
                await self._move(slot)
        await self._poke_gateways()
        for problem in await self._sources.poke(self._replica_table()):
            self._log(problem)

    async def _move(self, slot: ReplicaSlot) -> None:
        node = self._report.get(slot.node_id, {})
        self._log(
            f"moving {slot.replica_id} off node {slot.node_id[:12]} "
            f"({node.get('status')}: {'; '.join(node.get('reasons', []))})"
        )
        await self._last_checkpoint(slot, "; resuming from last")
        self._end(slot)
        self._create(slot)

    async def _last_checkpoint(self, slot: ReplicaSlot, then: str = "") -> None:
        try:
            await asyncio.wait_for(slot.handle.checkpoint.remote(), INFO_TIMEOUT_S)
        except Exception as error:
            self._log(f"{slot.replica_id}: no final checkpoint ({error!r}){then}")

    @staticmethod
    def _end(slot: ReplicaSlot) -> None:
        ray.kill(slot.handle, no_restart=True)
        slot.handle = None
        slot.incarnation += 1  # the next actor of this slot needs a name of its own

    async def _scale_loop(self) -> None:
        while True:
            await asyncio.sleep(SCALE_EVERY_S)
            try:
                await self._scale_round()
            except Exception as error:  # as the watch: outlive one failed round
                self._log(f"scaling round failed: {error!r}")

    async def _scale_round(self) -> None:
        self._load = await self._loads(self._scalers)
        now = time.monotonic()
        for name, scaler in self._scalers.items():
            current = len(self._slots[name])
            target = scaler.decide(current, self._load[name], now)
            if target is None:
                continue
            async with self._checking:
                if target > current:
                    await self._scale_up(name, target)
                else:
                    await self._scale_down(name, target)

    async def _loads(self, agents: Iterable[str]) -> dict[str, float]:
        """Per agent: messages queued at the gateways and consumers plus those the replicas
        are handling (from them and from drivers' AgentGroups alike)."""
        load = dict.fromkeys(agents, 0.0)
        slots = [slot for name in load for slot in self._slots[name]]
        gateway_loads, infos = await asyncio.gather(
            asyncio.gather(
                *(
                    asyncio.wait_for(handle.load.remote(), INFO_TIMEOUT_S)
                    for handle in self._feeders()
                ),
                return_exceptions=True,
            ),
            asyncio.gather(
                *(asyncio.wait_for(slot.handle.info.remote(), INFO_TIMEOUT_S) for slot in slots),
                return_exceptions=True,
            ),
        )
        for answer in gateway_loads:
            if not isinstance(answer, BaseException):
                for agent, counts in answer.items():
                    if agent in load:
                        load[agent] += counts["queued"]
        for slot, info in zip(slots, infos, strict=True):
            if not isinstance(info, BaseException):
                load[slot.agent.name] += info["in_flight"]
        return load

    def _feeders(self) -> list[Any]:
        """The actors that queue messages for replicas: gateways and stream consumers."""
        return [gateway.handle for gateway in self._gateways] + self._sources.handles()

    async def _scale_up(self, name: str, target: int) -> None:
        slots, spare = self._slots[name], self._spare[name]
        agent = self._spec.agent(name)
        added = []
        for index in range(len(slots), target):
            slot = spare.pop(0) if spare and spare[0].index == index else ReplicaSlot(agent, index)
            self._create(slot)
            added.append(slot)
        try:
            await self._wait_ready(added, SCALE_READY_TIMEOUT_S)
        except Exception as error:
            for slot in added:
                self._end(slot)
            spare[:0] = added
            self._log(f"{name}: could not add replicas ({error})")
            return
        try:
            if agent.routing_key is not None:
                # The added ones release too: a spare's checkpoint could still hold keys.
                await self._hand_over_keys([*slots, *added], [*slots, *added])
        finally:
            # Even after a failed hand-over some keys are with the added replicas now.
            slots.extend(added)
            await self._poke_gateways()
        self._log(f"{name}: {len(slots) - len(added)} -> {len(slots)} replicas "
                  f"(load {self._load[name]:g}, target {agent.autoscaling.target_in_flight:g} "
                  "each)")  # fmt: skip

    async def _scale_down(self, name: str, target: int) -> None:
        slots = self._slots[name]
        leaving = slots[target:]
        if slots[0].agent.routing_key is not None:
            await self._hand_over_keys(slots, slots[:target])
        del slots[target:]
        # New messages stop going to them; then what they hold drains before they end.
        await self._poke_gateways()
        drained = await self._drain(leaving)
        for slot in leaving:
            await self._last_checkpoint(slot)
            self._end(slot)
        self._spare[name] = sorted([*leaving, *self._spare[name]], key=lambda s: s.index)
        unfinished = "" if drained else f" ({DRAIN_TIMEOUT_S:g}s drain ran out)"
        self._log(f"{name}: {target + len(leaving)} -> {target} replicas "
                  f"(load {self._load[name]:g}){unfinished}")  # fmt: skip

    async def _hand_over_keys(self, holders: list[ReplicaSlot], owners: list[ReplicaSlot]) -> None:
        """Move a keyed agent's keys to the ring of `owners`, state and all, before any
        router learns that ring: each holder answers Moved for the keys it gives away and
        releases them once their messages in hand are done; each owner adopts what it is
        given. Routers with the old ring meanwhile get Moved, wait and ask again, so no
        key is ever handled in two places and none loses its state."""
        weights = {slot.replica_id: slot.agent.weight for slot in owners}
        started = time.monotonic()
        released = await asyncio.gather(*(slot.handle.release.remote(weights) for slot in holders))
        inbox: dict[str, list[Any]] = {slot.replica_id: [] for slot in owners}
        for parcels in released:
            for owner, parcel in parcels.items():
                inbox[owner].append(parcel)
        adopted = await asyncio.gather(
            *(slot.handle.adopt.remote(weights, inbox[slot.replica_id]) for slot in owners)
        )
        self._log(
            f"{owners[0].agent.name}: {sum(adopted)} keys handed over to the ring of "
            f"{len(owners)} replicas in {(time.monotonic() - started) * 1000:.0f} ms"
        )

    async def _drain(self, leaving: list[ReplicaSlot]) -> bool:
        """Until nothing is queued for these replicas at any gateway or consumer or in their
        hands."""
        ids = [slot.replica_id for slot in leaving]
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            held = await asyncio.gather(
                *(handle.pending.remote(ids) for handle in self._feeders()),
                *(slot.handle.info.remote() for slot in leaving),
                return_exceptions=True,
            )
            counts = [
                answer if isinstance(answer, int) else answer["in_flight"]
                for answer in held
                if not isinstance(answer, BaseException)
            ]
            if len(counts) == len(held) and not any(counts):
                return True
            await asyncio.sleep(0.05)
        return False

    def _log(self, text: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {text}"
        print(line, flush=True)
        self._events = [*self._events[-99:], line]

    async def replicas(self, agent: str) -> list[tuple[str, Any, float]]:
        """[(replica id, handle, weight)]: the current actors, after any re-creation."""
        await self._ensure_started()
        return [(s.replica_id, s.handle, s.agent.weight) for s in self._slots[agent]]

    async def spec(self) -> DeploymentSpec:
        return self._spec

    async def status(self) -> dict[str, Any]:
        await self._ensure_started()
        await self._check()
        return {
            "deployment": self._spec.name,
            "replicas": [
                {
                    "id": slot.replica_id,
                    "incarnation": slot.incarnation,
                    "node_id": slot.node_id,
                    "reachable": slot.reachable,
                    **{k: v for k, v in slot.info.items() if k not in ("agent", "node_id")},
                }
                for slot in self._all_slots()
            ],
            "agents": self._agent_report(await self._loads(self._slots)),
            "gateways": [gateway.address for gateway in self._gateways],
            "sources": self._sources.report(),
            "nodes": self._report,
            "events": self._events[-20:],
        }

    def _agent_report(self, loads: dict[str, float]) -> list[dict[str, Any]]:
        return [
            {
                "agent": agent.name,
                "replicas": len(self._slots[agent.name]),
                "load": loads[agent.name],
                "autoscaling": agent.autoscaling.model_dump() if agent.autoscaling else None,
            }
            for agent in self._spec.agents
        ]

    async def checkpoint(self) -> int:
        """Checkpoint every replica now (before a whole-cluster restart); how many did."""
        done = await asyncio.gather(
            *(slot.handle.checkpoint.remote() for slot in self._all_slots()),
            return_exceptions=True,
        )
        return sum(1 for result in done if not isinstance(result, BaseException))

    async def stop(self, purge: bool = False) -> int:
        """Checkpoint and end every replica; `purge` also deletes the checkpoints, so a
        later deployment of the same name starts from fresh state."""
        for task in (self._watch, self._scaling):
            if task is not None:
                task.cancel()
        # Clients first: nothing new arrives while the replicas take their last checkpoints.
        await self._sources.stop()
        await asyncio.gather(
            *(gateway.handle.close.remote() for gateway in self._gateways),
            return_exceptions=True,
        )
        for gateway in self._gateways:
            ray.kill(gateway.handle, no_restart=True)
        slots = self._all_slots()
        await asyncio.gather(
            *(slot.handle.checkpoint.remote() for slot in slots), return_exceptions=True
        )
        for slot in slots:
            ray.kill(slot.handle, no_restart=True)
        if purge:
            checkpoint.delete_deployment(self._spec.name)
        return len(slots)
