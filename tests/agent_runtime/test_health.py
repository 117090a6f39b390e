from __future__ import annotations

import asyncio

import pytest
import ray

from agent_runtime.health import (
    DEAD,
    HEALTHY,
    GpuSample,
    HealthMonitor,
    NodeHealth,
    NodeSample,
    evaluate,
    get_monitor,
)
from agent_runtime.spec import HealthSpec


def _sample(**overrides) -> NodeSample:
    values = {"cpu_percent": 20.0, "memory_percent": 40.0, "disk_percent": 50.0,
              "load_per_cpu": 0.5}  # fmt: skip
    return NodeSample(node_id="n", hostname="h", **{**values, **overrides})


def test_thresholds_from_config():
    limits = HealthSpec(memory_percent=90, gpu_temperature_c=80)
    assert evaluate(_sample(), limits) == []
    assert evaluate(_sample(memory_percent=93.5), limits) == ["memory_percent 93.5 > 90"]
    hot = GpuSample(0, "H100", temperature_c=86, memory_percent=50, ecc_uncorrected=2)
    reasons = evaluate(_sample(gpus=[hot]), limits)
    assert reasons == ["gpu0.temperature_c 86 > 80", "gpu0.ecc_uncorrected 2 > 0"]


def test_unknown_gpu_readings_are_not_failures():
    gpu = GpuSample(0, "consumer card")  # ECC, temperature unsupported: all None
    assert evaluate(_sample(gpus=[gpu]), HealthSpec()) == []


@pytest.mark.ray
def test_every_node_is_probed_and_reports_no_gpu_cleanly(ray_cluster):
    report = ray.get(get_monitor().report.remote(fresh=True))
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert alive <= set(report)
    for node_id in alive:
        sample = report[node_id]["sample"]
        # The machine's load average is shared with whatever else runs here; every other
        # reading comes from the sandboxed test cluster and must be within limits.
        reasons = [r for r in report[node_id]["reasons"] if not r.startswith("load_per_cpu")]
        assert reasons == [], report[node_id]
        assert sample["node_id"] == node_id  # the probe ran on that very node
        assert 0 <= sample["memory_percent"] <= 100
        assert "gpus" not in sample and "gpu_error" not in sample  # a CPU node: none at all


class _Probe:
    """A node's probe answering with a fixed sample (the monitor's logic, no Ray)."""

    def __init__(self, hostname: str) -> None:
        self.sample = self
        self._hostname = hostname

    async def remote(self) -> NodeSample:
        return NodeSample("b" * 56, self._hostname, 5.0, 10.0, 10.0, 0.1)


def test_a_node_back_under_a_new_id_is_shown_once_and_stays_cordoned():
    monitor = HealthMonitor(HealthSpec(recover_after=1))
    old = NodeHealth("a" * 56, "10.0.0.3", status=DEAD, sample={"hostname": "node3"})
    other = NodeHealth("c" * 56, "10.0.0.2", status=DEAD, sample={"hostname": "node2"})
    monitor._nodes = {old.node_id: old, other.node_id: other}
    monitor._cordoned[old.node_id] = "maintenance"
    new_id = "b" * 56
    monitor._nodes[new_id] = NodeHealth(new_id, "10.0.0.3")
    monitor._probes[new_id] = _Probe("node3")

    asyncio.run(monitor._probe(new_id))

    assert set(monitor._nodes) == {new_id, other.node_id}  # node2 is still dead, and shown
    assert monitor._nodes[new_id].status == "cordoned" != HEALTHY
    assert monitor._resolve("node3") == new_id
    assert old.node_id in monitor._superseded
