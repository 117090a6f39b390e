"""The gateway actor: one asyncio process on a node serving a deployment's clients.

It is part of the deployment (the supervisor creates, pins, pokes and stops it) rather than a
node service: it holds the replicas' actor handles directly, lives exactly as long as the
deployment, and Ray restarts it when its process dies. After a restart it listens again on
the supervisor's next health round, which calls `serve` on every gateway.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import ssl
from typing import Any

import ray

from agent_runtime.constants import NAMESPACE, supervisor_name
from agent_runtime.ingress.server import HttpServer
from agent_runtime.ingress.service import IngressService, ReplicaTable
from agent_runtime.spec import DeploymentSpec, IngressTls


def tls_context(tls: IngressTls | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _raise_open_files_limit() -> int:
    """Every connection is a file: take the hard limit (Ray workers start with a soft one,
    often 1024) and return what it now is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


class Gateway:
    def __init__(self, spec: DeploymentSpec, index: int) -> None:
        if spec.ingress is None:
            raise ValueError(f"deployment {spec.name!r} has no ingress section")
        self._spec = spec
        self._ingress = spec.ingress
        self._index = index
        self._service = IngressService(spec, self._fetch_replicas)
        self._server: HttpServer | None = None
        self._starting: asyncio.Task[dict[str, Any]] | None = None

    async def serve(self, replicas: ReplicaTable) -> dict[str, Any]:
        """Listen (once; later calls only adopt the supervisor's current replica handles)
        and return where."""
        self._service.set_replicas(replicas)
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._listen())
        return await self._starting

    async def _listen(self) -> dict[str, Any]:
        open_files = _raise_open_files_limit()
        if open_files < self._ingress.limits.max_connections:
            print(
                f"gateway {self._index}: the open-files limit ({open_files}) is below "
                f"max_connections ({self._ingress.limits.max_connections}): connections "
                "beyond it fail at accept (raise LimitNOFILE for Ray)",
                flush=True,
            )
        host = self._ingress.host or ray.util.get_node_ip_address()
        self._server = HttpServer(self._service)
        port = await self._server.start(host, self._ingress.port, tls_context(self._ingress.tls))
        # As in replicas: a full collection would scan Ray's ~200k long-lived objects with
        # clients waiting.
        gc.freeze()
        scheme = "https" if self._ingress.tls else "http"
        shown_host = f"[{host}]" if ":" in host else host
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "index": self._index,
            "pid": os.getpid(),
            "host": host,
            "port": port,
            "url": f"{scheme}://{shown_host}:{port}",
        }

    async def _fetch_replicas(self, agent: str) -> list[tuple[str, Any, float]]:
        supervisor = ray.get_actor(supervisor_name(self._spec.name), namespace=NAMESPACE)
        return await supervisor.replicas.remote(agent)

    def load(self) -> dict[str, dict[str, int]]:
        """Messages queued and in actor calls, per agent (what scaling would read)."""
        return self._service.load()

    def pending(self, replica_ids: list[str]) -> int:
        """Messages this gateway holds for these replicas (a scale-down waits for 0)."""
        return self._service.pending(replica_ids)

    async def close(self) -> None:
        """Stop listening and end open connections (before the replicas are stopped)."""
        if self._server is not None:
            await self._server.stop()
