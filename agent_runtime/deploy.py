"""Job entrypoints that `mcpctl agents ...` submits through Ray's Jobs API.

    python -m agent_runtime.deploy             # run the deployment in $MCP_AGENTS_SPEC
    python -m agent_runtime.deploy --report    # print nodes, health and agents as JSON

Running as a job puts the driver on the cluster, with the cluster's own Python and Ray (Ray
refuses drivers whose versions differ). The deployment's supervisor is owned by the job's
driver, so stopping the job stops the agents: the job is the deployment's lifetime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from typing import Any

import ray

from agent_runtime import health
from agent_runtime.hosting import Deployment
from agent_runtime.spec import parse_spec
from agent_runtime.supervisor import NAMESPACE

SPEC_ENV = "MCP_AGENTS_SPEC"
REPORT_MARKER = "MCP-REPORT "
READY_MARKER = "MCP-READY "
STATUS_EVERY_S = 30.0


async def serve(spec_text: str, source: str) -> int:
    spec = parse_spec(spec_text, source)
    deployment = await Deployment.start(spec)
    status = await deployment.status()
    print(f"{READY_MARKER}{spec.name}: {len(status['replicas'])} replicas", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), STATUS_EVERY_S)
        except TimeoutError:
            _print_status(await deployment.status())
    stopped = await deployment.stop()
    print(f"stopped {spec.name}: {stopped} replicas checkpointed and ended", flush=True)
    return 0


def _print_status(status: dict[str, Any]) -> None:
    for replica in status["replicas"]:
        node = (replica["node_id"] or "restarting")[:12]
        print(
            f"{replica['id']:24} node {node:12} processed {replica.get('processed', '?'):>8}"
            f" duplicates {replica.get('duplicates', '?')}",
            flush=True,
        )


async def report() -> dict[str, Any]:
    """Every node with its health and the replicas on it, and every running deployment."""
    nodes = await health.get_monitor().report.remote(fresh=True)
    deployments = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == NAMESPACE and actor["name"].endswith("-supervisor"):
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


def _one_shot(args: argparse.Namespace) -> int:
    """Answer on one marked line, which `mcpctl` finds in the job's log."""
    monitor = health.get_monitor()
    try:
        if args.report:
            answer: dict[str, Any] = asyncio.run(report())
        elif args.cordon:
            answer = {"cordoned": ray.get(monitor.cordon.remote(args.cordon, args.reason))}
        else:
            answer = {"uncordoned": ray.get(monitor.uncordon.remote(args.uncordon))}
    except ray.exceptions.RayTaskError as error:
        answer = {"error": str(error.cause)}
    print(REPORT_MARKER + json.dumps(answer, default=str), flush=True)
    return 2 if "error" in answer else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_runtime.deploy")
    parser.add_argument("--report", action="store_true", help="print cluster health as JSON")
    parser.add_argument("--cordon", metavar="NODE", help="drain agents off this node")
    parser.add_argument("--uncordon", metavar="NODE", help="let it take agents when healthy")
    parser.add_argument("--reason", default="cordoned by operator")
    parser.add_argument("spec", nargs="?", help=f"agents.yaml (default: ${SPEC_ENV})")
    args = parser.parse_args(argv)
    one_shot = args.report or args.cordon or args.uncordon
    ray.init(namespace=NAMESPACE, log_to_driver=not one_shot)
    if one_shot:
        return _one_shot(args)
    if args.spec:
        with open(args.spec) as file:
            return asyncio.run(serve(file.read(), args.spec))
    if SPEC_ENV not in os.environ:
        parser.error(f"give an agents.yaml or set ${SPEC_ENV}")
    return asyncio.run(serve(os.environ[SPEC_ENV], "agents.yaml"))


if __name__ == "__main__":
    sys.exit(main())
