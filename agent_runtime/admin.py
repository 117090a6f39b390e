"""The operator's questions to the running runtime: `mcpctl status`, `agents status`, `cordon`
and `uncordon`, and upgrade.yml's `checkpoint` before it restarts the whole cluster, as one
request shape {"action": "report" | "cordon" | "uncordon" | "checkpoint", "node": ...,
"reason": ...}, answered in two ways:

- by the keeper (agent_runtime.keeper), over HTTP on the head's loopback (`ADMIN_PORT`), which
  mcpctl reaches through its SSH tunnel: no job, a fraction of a second;
- by a one-shot job where that port cannot be reached (a cluster given by `--address` from
  another machine) or before the keeper runs (a cluster that never had a deployment):

      python -m agent_runtime.admin '{"action": "report"}'

  The job also starts the keeper, so the next call needs no job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import ray

from agent_runtime import health
from agent_runtime.constants import NAMESPACE, REPORT_MARKER, SUPERVISOR_SUFFIX

ACTIONS = ("report", "cordon", "uncordon", "checkpoint")
# A supervisor busy moving replicas answers within this, or is reported as not answering.
SUPERVISOR_TIMEOUT_S = 10.0
_NAME_LIMIT = 256


class BadRequest(ValueError):
    """A request no action matches; the message says what to send instead."""


def parse_request(request: Any) -> dict[str, str]:
    """The request checked whole: an action, and the node it names where it needs one."""
    if not isinstance(request, dict):
        raise BadRequest('send a JSON object, e.g. {"action": "report"}')
    action = request.get("action")
    if action not in ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}; got {action!r:.40}")
    parsed = {"action": action}
    if action in ("cordon", "uncordon"):
        node = request.get("node")
        if not isinstance(node, str) or not node or len(node) > _NAME_LIMIT:
            raise BadRequest(f"{action} needs 'node': a hostname, node id or its first digits")
        parsed["node"] = node
    if action == "cordon":
        reason = request.get("reason", "cordoned by operator")
        if not isinstance(reason, str) or len(reason) > _NAME_LIMIT:
            raise BadRequest(f"'reason' must be text of at most {_NAME_LIMIT} characters")
        parsed["reason"] = reason
    return parsed


async def answer(request: dict[str, str]) -> dict[str, Any]:
    """A parsed request's answer; {"error": ...} for what the monitor refused (an unknown
    or ambiguous node)."""
    monitor = health.get_monitor()
    try:
        if request["action"] == "report":
            return await report(monitor)
        if request["action"] == "checkpoint":
            return {"checkpointed": await checkpoint_all()}
        if request["action"] == "cordon":
            return {"cordoned": await monitor.cordon.remote(request["node"], request["reason"])}
        return {"uncordoned": await monitor.uncordon.remote(request["node"])}
    except ray.exceptions.RayTaskError as error:
        return {"error": str(error.cause)}


async def report(monitor: Any) -> dict[str, Any]:
    """Every node with its health and the replicas on it, and every running deployment. The
    monitor probes each second, so its last round is at most that old."""
    nodes = await monitor.report.remote()
    names = _supervisor_names()
    deployments = await asyncio.gather(*(_deployment_status(name) for name in names))
    for node in nodes.values():
        node["agents"] = [
            f"{d['deployment']}/{r['id']}"
            for d in deployments
            for r in d.get("replicas", [])
            if r["node_id"] == node["node_id"]
        ]
    for deployment in deployments:
        deployment.pop("nodes", None)
    return {"nodes": list(nodes.values()), "deployments": list(deployments)}


def _supervisor_names() -> list[str]:
    return [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == NAMESPACE and actor["name"].endswith(SUPERVISOR_SUFFIX)
    ]


async def checkpoint_all() -> dict[str, int | str]:
    """Every running deployment's replicas checkpointed: how many per deployment, or why not."""

    async def one(supervisor_name: str) -> int | str:
        try:
            supervisor = ray.get_actor(supervisor_name, namespace=NAMESPACE)
            return await asyncio.wait_for(supervisor.checkpoint.remote(), SUPERVISOR_TIMEOUT_S)
        except Exception as error:  # a deployment going away meanwhile
            return f"{type(error).__name__}: {error}"[:500]

    names = _supervisor_names()
    counts = await asyncio.gather(*(one(name) for name in names))
    return {
        name.removesuffix(SUPERVISOR_SUFFIX): count
        for name, count in zip(names, counts, strict=True)
    }


async def _deployment_status(supervisor_name: str) -> dict[str, Any]:
    try:
        supervisor = ray.get_actor(supervisor_name, namespace=NAMESPACE)
        return await asyncio.wait_for(supervisor.status.remote(), SUPERVISOR_TIMEOUT_S)
    except Exception as error:  # a deployment going away mid-report
        deployment = supervisor_name.removesuffix(SUPERVISOR_SUFFIX)
        return {"deployment": deployment, "error": f"{type(error).__name__}: {error}"[:500]}


def main(argv: list[str] | None = None) -> int:
    from agent_runtime import keeper

    parser = argparse.ArgumentParser(
        prog="python -m agent_runtime.admin",
        description="Answer one admin request as a job (mcpctl does this when it cannot "
        "reach the keeper) and start the keeper.",
    )
    parser.add_argument("request", help='JSON, e.g. {"action": "cordon", "node": "node2"}')
    args = parser.parse_args(argv)
    try:
        request = parse_request(json.loads(args.request))
    except (ValueError, BadRequest) as error:
        parser.error(str(error))
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    ray.get(keeper.handle().ready.remote())
    reply = asyncio.run(answer(request))
    print(REPORT_MARKER + json.dumps(reply, default=str), flush=True)
    return 2 if "error" in reply else 0


if __name__ == "__main__":
    sys.exit(main())
