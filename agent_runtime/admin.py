"""Operations on the running runtime, for `mcpctl status`, `agents status`, `cordon`, `uncordon`.

    python -m agent_runtime.admin --report          # nodes, health and agents as JSON
    python -m agent_runtime.admin --cordon NODE [--reason R]
    python -m agent_runtime.admin --uncordon NODE

Each runs as a short job: only a driver on the cluster can reach the health monitor and the
supervisors. The answer is one marked line of the job's log, which `mcpctl` reads back.
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


async def report() -> dict[str, Any]:
    """Every node with its health and the replicas on it, and every running deployment."""
    nodes = await health.get_monitor().report.remote(fresh=True)
    deployments = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and actor["name"].endswith(SUPERVISOR_SUFFIX):
            supervisor = ray.get_actor(actor["name"], namespace=NAMESPACE)
            try:
                deployments.append(await asyncio.wait_for(supervisor.status.remote(), 10))
            except Exception as error:  # a deployment going away mid-report
                deployments.append({"deployment": actor["name"], "error": repr(error)})
    for node in nodes.values():
        node["agents"] = [
            f"{d['deployment']}/{r['id']}"
            for d in deployments
            for r in d.get("replicas", [])
            if r["node_id"] == node["node_id"]
        ]
    for deployment in deployments:
        deployment.pop("nodes", None)
    return {"nodes": list(nodes.values()), "deployments": deployments}


def _answer(args: argparse.Namespace) -> dict[str, Any]:
    monitor = health.get_monitor()
    try:
        if args.report:
            return asyncio.run(report())
        if args.cordon:
            return {"cordoned": ray.get(monitor.cordon.remote(args.cordon, args.reason))}
        return {"uncordoned": ray.get(monitor.uncordon.remote(args.uncordon))}
    except ray.exceptions.RayTaskError as error:
        return {"error": str(error.cause)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_runtime.admin")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--report", action="store_true", help="print cluster health as JSON")
    action.add_argument("--cordon", metavar="NODE", help="drain agents off this node")
    action.add_argument("--uncordon", metavar="NODE", help="let it take agents when healthy")
    parser.add_argument("--reason", default="cordoned by operator")
    args = parser.parse_args(argv)
    ray.init(namespace=NAMESPACE, log_to_driver=False)
    answer = _answer(args)
    print(REPORT_MARKER + json.dumps(answer, default=str), flush=True)
    return 2 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(main())
