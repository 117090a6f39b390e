"""One local multi-node Ray cluster for the whole session: starting one costs ~6 s on a
2-core machine, so every Ray test shares it (and tests clean up what they deploy)."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from agent_runtime.constants import NAMESPACE  # noqa: E402

# Fast failure detection so the fault test's "within 15 s" measures the runtime, not the
# GCS's default 5 x 3 s grace period.
SYSTEM_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


@pytest.fixture(scope="session")
def ray_cluster():
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 4,
            "include_dashboard": False,
            "_system_config": SYSTEM_CONFIG,
        },
    )
    cluster.add_node(num_cpus=4)
    ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
