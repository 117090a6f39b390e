"""Ray Serve 2.60 as a target: the same trivial agent behind Serve's own HTTP proxy.

Set up to be fair to Serve: its actors at nice 0 (Ray starts workers at nice 15 otherwise,
which made Serve about 10x slower here), max_ongoing_requests far above the load's
concurrency, and as many replicas as the gateway's agent has.
"""

from __future__ import annotations

import dataclasses
import os

import psutil
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from bench.echo_servers import echo_reply
from bench.targets import free_port, use_a_private_ray_token, wait_listening

NICE_0 = {"RAY_worker_niceness": "0"}
APPLICATION = "ingress-bench"


@serve.deployment(max_ongoing_requests=1024)
class EchoAgent:
    """The trivial agent: answers each message with its payload, as the echo servers do."""

    async def __call__(self, request: Request) -> Response:
        return Response(echo_reply(await request.body()), media_type="application/json")


@dataclasses.dataclass
class ServeTarget:
    port: int

    def pids(self) -> list[int]:
        """Serve's proxy and replicas: what answers the requests."""
        return [
            process.pid
            for process in psutil.process_iter(["cmdline"])
            if any(
                part in " ".join(process.info["cmdline"] or ())
                for part in ("ray::ProxyActor", "ray::ServeReplica")
            )
        ]

    def niceness(self) -> list[int]:
        return sorted({psutil.Process(pid).nice() for pid in self.pids()})

    def stop(self) -> None:
        serve.shutdown()
        ray.shutdown()


def start_serve(replicas: int, repo_root: str) -> ServeTarget:
    # The replicas import bench.echo_servers: give them the driver's source tree.
    env_vars = {**NICE_0, "PYTHONPATH": repo_root}
    os.environ.update(NICE_0)  # the local raylet reads it too, for the proxy and controller
    use_a_private_ray_token()
    # address="local": always a private cluster, never one that other work on the machine runs.
    ray.init(
        address="local",
        num_cpus=max(2, replicas),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env_vars},
    )
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deployment = EchoAgent.options(
            num_replicas=replicas,
            ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": env_vars}},
        )
        serve.run(deployment.bind(), name=APPLICATION, route_prefix="/v1/bench/echo")
        wait_listening(port)
    except BaseException:
        ray.shutdown()
        raise
    return ServeTarget(port)
