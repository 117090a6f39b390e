from __future__ import annotations

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


def test_a_hostname_names_the_live_node_when_a_dead_one_had_it_too():
    monitor = HealthMonitor()
    old = NodeHealth("a" * 56, "10.0.0.3", status=DEAD, sample={"hostname": "node3"})
    new = NodeHealth("b" * 56, "10.0.0.3", status=HEALTHY, sample={"hostname": "node3"})
    gone = NodeHealth("c" * 56, "10.0.0.2", status=DEAD, sample={"hostname": "node2"})
    monitor._nodes = {node.node_id: node for node in (old, new, gone)}

    assert monitor._resolve("node3") == new.node_id
    assert monitor._resolve("node2") == gone.node_id  # dead, but the only one of its name
