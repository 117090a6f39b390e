"""The deployment's job entrypoint, which `mcpctl agents deploy` submits through Ray's Jobs API.

    python -m agent_runtime.jobs             # run the deployment in $MCP_AGENTS_SPEC
    python -m agent_runtime.jobs agents.yaml

Running as a job puts the driver on the cluster, with the cluster's own Python and Ray (Ray
refuses drivers whose versions differ). The deployment's supervisor is owned by the job's
driver, so stopping the job stops the agents: the job is the deployment's lifetime. Once
ready, the deployment is in the registry, and the keeper (agent_runtime.keeper) submits its
job again if it ends otherwise than stopped, as it does with the head.
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

from agent_runtime import keeper, registry
from agent_runtime.client import Deployment
from agent_runtime.constants import (
    INGRESS_MARKER,
    INGRESS_TOKEN_DIGEST_ENV,
    NAMESPACE,
    READY_MARKER,
    REFUSED_MARKER,
    SPEC_ENV,
    STATUS_EVERY_S,
)
from agent_runtime.spec import DeploymentSpec, parse_spec
from agent_runtime.supervisor import DeploymentRefused


def with_token_digest(spec: DeploymentSpec, digest: str | None) -> DeploymentSpec:
    """The spec with the ingress token digest that `mcpctl agents deploy` passed beside it,
    unless the spec names one itself."""
    if spec.ingress is None or spec.ingress.token_sha256 or not digest:
        return spec
    ingress = spec.ingress.model_copy(update={"token_sha256": digest})
    return spec.model_copy(update={"ingress": ingress})


def ingress_line(spec: DeploymentSpec, status: dict[str, Any]) -> dict[str, Any]:
    """What clients outside the cluster need, bar the token: where each agent is served."""
    return {
        "deployment": spec.name,
        "agents": [agent.name for agent in spec.agents],
        "gateways": status["gateways"],
    }


async def serve(spec_text: str, source: str) -> int:
    spec = with_token_digest(
        parse_spec(spec_text, source), os.environ.get(INGRESS_TOKEN_DIGEST_ENV)
    )
    try:
        deployment = await Deployment.start(spec)
    except DeploymentRefused as error:
        refusal = getattr(error, "cause", None) or error  # Ray wraps the actor's exception
        for problem in refusal.problems:
            print(f"{REFUSED_MARKER}{problem}", flush=True)
        return 2
    status = await deployment.status()
    # From here on the deployment comes back by itself if its job ends with the head.
    registry.record(spec.name)
    await keeper.handle().ready.remote()
    print(f"{READY_MARKER}{spec.name}: {len(status['replicas'])} replicas", flush=True)
    if status["gateways"]:
        print(f"{INGRESS_MARKER}{json.dumps(ingress_line(spec, status))}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), STATUS_EVERY_S)
        except TimeoutError:
            _print_status(await deployment.status())
    registry.forget(spec.name)  # stopped as asked: not to be brought back
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent_runtime.jobs")
    parser.add_argument("spec", nargs="?", help=f"agents.yaml (default: ${SPEC_ENV})")
    args = parser.parse_args(argv)
    if args.spec:
        with open(args.spec) as file:
            text, source = file.read(), args.spec
    elif SPEC_ENV in os.environ:
        text, source = os.environ[SPEC_ENV], "agents.yaml"
    else:
        parser.error(f"give an agents.yaml or set ${SPEC_ENV}")
    ray.init(namespace=NAMESPACE)
    return asyncio.run(serve(text, source))


if __name__ == "__main__":
    sys.exit(main())
