"""Scheduling constraints shared by the supervisor, the health monitor and deployments."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent_runtime.constants import NAMESPACE
from agent_runtime.spec import AgentSpec

# Every head node carries this resource (Ray Serve pins its controller the same way). The
# control actors live there: the head also holds the GCS, so if it dies the cluster is gone
# anyway, and a worker's death can never take a supervisor and all its replicas with it.
HEAD_NODE_RESOURCE = "node:__internal_head__"
NODE_ID_LABEL = "ray.io/node-id"


# Ray starts workers at nice 15 so they yield to its GCS and raylet, and so to every other
# process on the node: on a busy node an actor then waits tens of ms for a CPU while holding
# messages. Replicas, gateways and consumers are latency-bound services, so they get the
# default priority, as Ray's job manager gives job drivers.
LATENCY_BOUND = {"env_vars": {"RAY_worker_niceness": "0"}}


def service_actor(name: str, scheduling_strategy: Any, max_concurrency: int) -> dict[str, Any]:
    """Options of the runtime's own serving actors (gateways, stream consumers): no CPU
    reserved, restarted by Ray whenever their process dies, calls re-sent to the new one."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_restarts": -1,
        "max_task_retries": -1,
        "max_concurrency": max_concurrency,
        "scheduling_strategy": scheduling_strategy,
        "runtime_env": LATENCY_BOUND,
    }


def on_head() -> dict[str, Any]:
    return {"num_cpus": 0, "resources": {HEAD_NODE_RESOURCE: 0.001}}


def head_singleton(name: str, max_concurrency: int) -> dict[str, Any]:
    """Options of a one-per-cluster actor (the health monitor, the keeper): found by name or
    created on the head, outliving its creator, restarted by Ray whenever it dies (on the
    next head, after the head's own failure)."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "get_if_exists": True,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_concurrency": max_concurrency,
        **on_head(),
    }


def avoiding(node_ids: Iterable[str]) -> dict[str, Any]:
    """Actor options that keep it (and its later restarts) off these nodes."""
    excluded = sorted(node_ids)
    if not excluded:
        return {}
    return {"label_selector": {NODE_ID_LABEL: f"!in({','.join(excluded)})"}}


def unplaceable(agents: Iterable[AgentSpec], nodes: Iterable[Mapping[str, Any]]) -> list[str]:
    """Why these agents' replicas cannot all be placed on these nodes (`ray.nodes()` shape),
    judged before any is created: a replica bigger than every node, or more of a resource
    than the cluster has in all. Empty: they may fit (what others use is not counted)."""
    alive = [node.get("Resources", {}) for node in nodes if node.get("Alive")]
    problems = []
    totals: dict[str, float] = {}
    for agent in agents:
        wanted = _resources_of(agent)
        for name, amount in wanted.items():
            totals[name] = totals.get(name, 0.0) + amount * agent.replicas
        if not any(all(node.get(k, 0) >= v for k, v in wanted.items()) for node in alive):
            largest = ", ".join(f"{k} {max((n.get(k, 0) for n in alive), default=0):g}"
                                for k in wanted)  # fmt: skip
            problems.append(
                f"{agent.name}: one replica needs {_shown(wanted)}; no node has that "
                f"(the largest: {largest})"
            )
    for name, amount in totals.items():
        have = sum(node.get(name, 0) for node in alive)
        if amount > have:
            problems.append(
                f"the replicas need {_RESOURCE_NAMES.get(name, name)} {amount:g} in all; "
                f"the cluster has {have:g}"
            )
    return problems


_RESOURCE_NAMES = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory (bytes)"}


def _resources_of(agent: AgentSpec) -> dict[str, float]:
    options = agent.resources.ray_options()
    wanted = {"CPU": options["num_cpus"], "GPU": options["num_gpus"]}
    if "memory" in options:
        wanted["memory"] = options["memory"]
    return {name: amount for name, amount in wanted.items() if amount}


def _shown(wanted: Mapping[str, float]) -> str:
    return ", ".join(f"{_RESOURCE_NAMES.get(k, k)} {v:g}" for k, v in wanted.items())
