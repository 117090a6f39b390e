"""Node health: a probe actor pinned to every node, and a monitor that judges the samples.

A node is `healthy`, `unhealthy` (a threshold is crossed, or its probe stopped answering),
`cordoned` (an operator said so) or `dead` (Ray's GCS lost it). Supervisors drain every node
that is not healthy. An unhealthy node must pass `recover_after` samples in a row before it
takes agents again, so a node that flaps around a threshold is not refilled every second.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agent_runtime import metrics, placement
from agent_runtime.constants import MONITOR_NAME, NAMESPACE

# The NVML readings live apart from Ray, so a bare GPU machine can take them
# (bench/gpu_check.py).
from agent_runtime.gpu import GpuSample, GpuSampler
from agent_runtime.spec import HealthSpec

HEALTHY, UNHEALTHY, CORDONED, DEAD = "healthy", "unhealthy", "cordoned", "dead"


@dataclass
class NodeSample:
    node_id: str
    hostname: str
    cpu_percent: float
    memory_percent: float
    disk_percent: float
    load_per_cpu: float
    gpus: list[GpuSample] = field(default_factory=list)
    gpu_error: str | None = None
    taken_at: float = field(default_factory=time.time)

    def as_report(self) -> dict[str, Any]:
        """The sample as plain data; a node without GPUs has no GPU fields at all."""
        report = asdict(self)
        if not self.gpus:
            del report["gpus"]
        if self.gpu_error is None:
            del report["gpu_error"]
        return report


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values)


def _memory_percent() -> float:
    info: dict[str, int] = {}
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            name, value = line.split(":", 1)
            info[name] = int(value.split()[0])
    return 100.0 * (1 - info["MemAvailable"] / info["MemTotal"])


def disk_percent(path: str) -> float:
    """Use of the file system at `path` as `df` shows it: blocks reserved for root count as
    neither used nor available, so a full disk reads 100 % (used / total reads about 95 %
    on a stock ext4 and could never reach a 95 % threshold)."""
    stats = os.statvfs(path)
    used = stats.f_blocks - stats.f_bfree
    usable = used + stats.f_bavail
    return 100.0 * used / usable if usable else 0.0


def _disk_percent(paths: tuple[str, ...]) -> float:
    return max(disk_percent(path) for path in paths)


def evaluate(sample: NodeSample, limits: HealthSpec) -> list[str]:
    """Reasons this sample is unhealthy; empty when it passes every threshold."""
    checks = [
        ("cpu_percent", sample.cpu_percent, limits.cpu_percent),
        ("memory_percent", sample.memory_percent, limits.memory_percent),
        ("disk_percent", sample.disk_percent, limits.disk_percent),
        ("load_per_cpu", sample.load_per_cpu, limits.load_per_cpu),
    ]
    for gpu in sample.gpus:
        checks += [
            (f"gpu{gpu.index}.temperature_c", gpu.temperature_c, limits.gpu_temperature_c),
            (f"gpu{gpu.index}.memory_percent", gpu.memory_percent, limits.gpu_memory_percent),
            (f"gpu{gpu.index}.ecc_uncorrected", gpu.ecc_uncorrected, limits.gpu_ecc_errors),
            (f"gpu{gpu.index}.xid_errors", gpu.xid_errors, limits.gpu_xid_errors),
        ]
    return [
        f"{name} {value:g} > {limit:g}"
        for name, value, limit in checks
        if value is not None and value > limit
    ]


@ray.remote(num_cpus=0, max_restarts=0)
class HealthProbe:
    """Lives on one node (hard node affinity) and reads that node's vital signs."""

    def __init__(self, disk_paths: tuple[str, ...] = ("/", "/tmp")) -> None:
        self._node_id = ray.get_runtime_context().get_node_id()
        self._disk_paths = disk_paths
        self._last_cpu = _cpu_times()
        self._gpus = GpuSampler()

    def sample(self) -> NodeSample:
        idle, total = _cpu_times()
        last_idle, last_total = self._last_cpu
        self._last_cpu = (idle, total)
        busy = 1 - (idle - last_idle) / max(1, total - last_total)
        return NodeSample(
            node_id=self._node_id,
            hostname=socket.gethostname(),
            cpu_percent=100.0 * busy,
            memory_percent=_memory_percent(),
            disk_percent=_disk_percent(self._disk_paths),
            load_per_cpu=os.getloadavg()[0] / (os.cpu_count() or 1),
            gpus=self._gpus.sample(),
            gpu_error=self._gpus.error,
        )


@dataclass
class NodeHealth:
    node_id: str
    address: str
    status: str = HEALTHY
    reasons: list[str] = field(default_factory=list)
    good_streak: int = 0
    sample: dict[str, Any] | None = None
    changed_at: float = field(default_factory=time.time)


class HealthMonitor:
    """One per cluster (a named detached actor): probes every alive node each interval."""

    def __init__(self, limits: HealthSpec | None = None) -> None:
        self._limits = limits or HealthSpec()
        self._nodes: dict[str, NodeHealth] = {}
        self._probes: dict[str, Any] = {}
        self._cordoned: dict[str, str] = {}
        self._rounds = 0
        self._loop: asyncio.Task | None = None
        self._round_done: asyncio.Event | None = None

    def _ensure_running(self) -> None:
        if self._loop is None:
            self._round_done = asyncio.Event()
            self._loop = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception as error:  # keep probing: one bad round must not stop the loop
                print(f"health round failed: {error!r}", flush=True)
            self._rounds += 1
            self._round_done.set()
            self._round_done = asyncio.Event()
            await asyncio.sleep(self._limits.interval_s)

    async def _round(self) -> None:
        alive: dict[str, str] = {}
        for node in await asyncio.to_thread(ray.nodes):
            node_id = node["NodeID"]
            if node["Alive"]:
                alive[node_id] = node["NodeManagerAddress"]
            else:
                health = self._nodes.setdefault(
                    node_id, NodeHealth(node_id, node["NodeManagerAddress"])
                )
                self._set(health, DEAD, [node.get("DeathReasonMessage") or "dead"])
                self._probes.pop(node_id, None)
        for node_id, address in alive.items():
            self._nodes.setdefault(node_id, NodeHealth(node_id, address))
            if node_id not in self._probes:
                strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
                self._probes[node_id] = HealthProbe.options(
                    scheduling_strategy=strategy, namespace=NAMESPACE
                ).remote()
        await asyncio.gather(*(self._probe(node_id) for node_id in alive))
        for health in self._nodes.values():
            healthy = 1.0 if health.status == HEALTHY else 0.0
            metrics.node_healthy().set(healthy, tags={"node_id": health.node_id})

    async def _probe(self, node_id: str) -> None:
        health = self._nodes[node_id]
        try:
            sample = await asyncio.wait_for(
                self._probes[node_id].sample.remote(), self._limits.probe_timeout_s
            )
        except Exception as error:
            # A probe that cannot answer says as much about the node as a bad reading; a new
            # probe is made next round in case only the probe process died.
            self._probes.pop(node_id, None)
            reason = "probe timed out" if isinstance(error, TimeoutError) else f"probe: {error}"
            self._judge(health, [reason])
            return
        health.sample = sample.as_report()
        self._judge(health, evaluate(sample, self._limits))
        self._export(node_id, sample)

    def _judge(self, health: NodeHealth, reasons: list[str]) -> None:
        if health.node_id in self._cordoned:
            self._set(health, CORDONED, [self._cordoned[health.node_id]])
            return
        if reasons:
            health.good_streak = 0
            self._set(health, UNHEALTHY, reasons)
            return
        health.good_streak += 1
        if health.status == HEALTHY or health.good_streak >= self._limits.recover_after:
            self._set(health, HEALTHY, [])
        else:
            self._set(
                health,
                UNHEALTHY,
                [f"recovering ({health.good_streak}/{self._limits.recover_after} good samples)"],
            )

    @staticmethod
    def _set(health: NodeHealth, status: str, reasons: list[str]) -> None:
        if status != health.status:
            print(f"node {health.node_id[:12]} {health.status} -> {status}: {reasons}", flush=True)
            health.changed_at = time.time()
        health.status = status
        health.reasons = reasons

    @staticmethod
    def _export(node_id: str, sample: NodeSample) -> None:
        values = {
            "cpu_percent": sample.cpu_percent,
            "memory_percent": sample.memory_percent,
            "disk_percent": sample.disk_percent,
            "load_per_cpu": sample.load_per_cpu,
        }
        for gpu in sample.gpus:
            for name in ("temperature_c", "memory_percent", "utilization_percent"):
                if getattr(gpu, name) is not None:
                    values[f"gpu{gpu.index}_{name}"] = getattr(gpu, name)
        for quantity, value in values.items():
            metrics.node_value().set(float(value), tags={"node_id": node_id, "quantity": quantity})

    async def report(self, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Per node health; `fresh` waits for a round that started after this call."""
        self._ensure_running()
        if fresh or self._rounds == 0:
            target = self._rounds + (2 if fresh else 1)
            while self._rounds < target:
                await self._round_done.wait()
        return {node_id: asdict(health) for node_id, health in self._nodes.items()}

    async def configure(self, limits: HealthSpec) -> None:
        self._limits = limits
        self._ensure_running()

    def _resolve(self, node: str) -> str:
        """A node's hostname (what status shows), its id, or a unique prefix of the id."""
        named = [
            (node_id, health)
            for node_id, health in self._nodes.items()
            if (health.sample or {}).get("hostname") == node
        ]
        # A node that came back (a restart gives it a new Ray id) is the live one of its name.
        matches = [node_id for node_id, health in named if health.status != DEAD] or [
            node_id for node_id, _ in named
        ]
        matches = matches or [node_id for node_id in self._nodes if node_id.startswith(node)]
        if len(matches) != 1:
            raise ValueError(
                f"{node!r} matches {len(matches)} known nodes; give its hostname, "
                "as `mcpctl status` shows it, or more of its id"
            )
        return matches[0]

    async def cordon(self, node: str, reason: str = "cordoned by operator") -> str:
        node_id = self._resolve(node)
        self._cordoned[node_id] = reason
        self._set(self._nodes[node_id], CORDONED, [reason])
        return node_id

    async def uncordon(self, node: str) -> str:
        # Back through the normal path: it must still pass `recover_after` samples.
        node_id = self._resolve(node)
        self._cordoned.pop(node_id, None)
        self._nodes[node_id].good_streak = 0
        self._set(self._nodes[node_id], UNHEALTHY, ["uncordoned; recovering"])
        return node_id


def get_monitor(limits: HealthSpec | None = None) -> Any:
    """The cluster's monitor, created on first use (on the head node)."""
    options = placement.head_singleton(MONITOR_NAME, max_concurrency=64)
    return ray.remote(HealthMonitor).options(**options).remote(limits)
