"""A deployment that cannot start is refused in seconds, naming why, with nothing created:
unplaceable replicas (pure check) and failing imports (real local Ray)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime.client import Deployment
from agent_runtime.placement import unplaceable
from agent_runtime.spec import AgentSpec, DeploymentSpec
from agent_runtime.supervisor import DeploymentRefused

NODES = [
    {"Alive": True, "Resources": {"CPU": 4.0, "memory": 8e9}},
    {"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0, "memory": 4e9}},
    {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},  # dead: counts for nothing
]


def agent(name: str, replicas: int = 1, **resources: object) -> AgentSpec:
    return AgentSpec.model_validate(
        {"name": name, "import": "m:A", "replicas": replicas, "resources": resources}
    )


def test_replicas_that_fit_are_not_refused():
    agents = [agent("a", 4, num_cpus=1), agent("g", 1, num_cpus=1, num_gpus=1)]

    assert unplaceable(agents, NODES) == []


def test_a_replica_bigger_than_every_node_is_refused():
    problems = unplaceable([agent("big", 1, num_cpus=3, num_gpus=1)], NODES)

    assert problems == [
        "big: one replica needs num_cpus 3, num_gpus 1; no node has that "
        "(the largest: CPU 4, GPU 1)"
    ]


def test_more_than_the_cluster_has_in_all_is_refused():
    problems = unplaceable([agent("a", 5, num_cpus=1), agent("b", 2, num_cpus=1)], NODES)

    assert problems == ["the replicas need num_cpus 7 in all; the cluster has 6"]


@pytest.mark.ray
def test_an_import_that_fails_is_refused_before_any_replica_starts(ray_cluster):
    spec = DeploymentSpec.model_validate(
        {
            "name": "refused-t",
            "agents": [
                {"name": "ok", "import": "tests.agent_runtime.ingress_agents:Recorder"},
                {"name": "typo", "import": "tests.agent_runtime.ingress_agents:Recrder"},
                {"name": "gone", "import": "no_such_module.anywhere:Agent"},
            ],
        }
    )
    started = time.monotonic()

    with pytest.raises(DeploymentRefused) as refused:
        asyncio.run(Deployment.start(spec))

    assert time.monotonic() - started < 20
    problems = (getattr(refused.value, "cause", None) or refused.value).problems
    assert problems == [
        "typo: import 'tests.agent_runtime.ingress_agents:Recrder': ValueError: module "
        "'tests.agent_runtime.ingress_agents' has no attribute 'Recrder'",
        "gone: import 'no_such_module.anywhere:Agent': ModuleNotFoundError: No module named "
        "'no_such_module'",
    ]
