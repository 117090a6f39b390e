"""The keeper: one detached actor on the head that brings deployments back after the head's
failure, and answers the operator's admin requests (agent_runtime.admin) over HTTP.

Where it lives, and why: a deployment is a Ray job whose driver owns its supervisor, so that
stopping the job stops the agents and the job's log is the deployment's. Drivers run on the
head, so the head's failure ends every deployment, and Ray restarts no job. Ray does restart
a detached actor with max_restarts once a head is back (the GCS keeps its actor table on the
head's disk, in RocksDB), so the keeper lives there. Back, it resubmits each deployment in
the registry whose last job failed, with that job's own entrypoint, runtime_env (the spec,
the ingress token's digest) and metadata; the new supervisor's replicas resume from their
checkpoints in the GCS's KV. A deployment the operator stopped is out of the registry and
stays stopped. One keeper serves every deployment: it holds no deployment's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ray

from agent_runtime import admin, placement, registry
from agent_runtime.adminserver import AdminServer
from agent_runtime.constants import (
    ACTIVE_JOB_STATUSES,
    DEPLOYMENT_METADATA_KEY,
    KEEPER_EVERY_S,
    KEEPER_NAME,
    RESUBMIT_FIRST_DELAY_S,
    RESUBMIT_MAX_DELAY_S,
    admin_port,
    deployment_submission_id,
)

log = logging.getLogger(__name__)
# Ended as asked (stopped by the operator) or by itself without error: not brought back.
ENDED_AS_MEANT = ("STOPPED", "SUCCEEDED")
# Ended with an error, or said to run by a Jobs API that has not looked yet: after a head
# restart, Ray's job manager starts (and marks the jobs that died with the head FAILED) only
# when the next job is submitted, so until then they read RUNNING, on a dead node.
BROUGHT_BACK = ("FAILED", "LOST")


@dataclass(frozen=True)
class JobView:
    """What the keeper needs of a job (ray.job_submission.JobDetails' fields)."""

    submission_id: str
    deployment: str
    status: str  # the Jobs API's, or LOST: "running" on a node that is dead
    start_time: int


def plan(recorded: Iterable[str], jobs: Iterable[JobView]) -> tuple[list[JobView], list[str]]:
    """(the failed last job of each recorded deployment to resubmit, the deployments to drop
    from the registry). A deployment with a pending or running job is left alone; one whose
    jobs are all gone (deleted) or whose last ended as meant is dropped."""
    latest: dict[str, JobView] = {}
    active: set[str] = set()
    for job in jobs:
        if job.status in ACTIVE_JOB_STATUSES:
            active.add(job.deployment)
        if job.start_time >= getattr(latest.get(job.deployment), "start_time", -1):
            latest[job.deployment] = job
    resubmit, drop = [], []
    for deployment in sorted(recorded):
        last = latest.get(deployment)
        if deployment in active:
            continue
        if last is None or last.status in ENDED_AS_MEANT:
            drop.append(deployment)
        elif last.status in BROUGHT_BACK:
            resubmit.append(last)
    return resubmit, drop


class Backoff:
    """When each deployment may be resubmitted again: at once the first time, then after a
    delay doubling to a cap, reset once it has run for that cap."""

    def __init__(self) -> None:
        self._next: dict[str, tuple[float, float]] = {}

    def due(self, deployment: str, now: float) -> bool:
        return now >= self._next.get(deployment, (0.0, 0.0))[0]

    def resubmitted(self, deployment: str, now: float) -> None:
        at, delay = self._next.get(deployment, (0.0, 0.0))
        if now - at > RESUBMIT_MAX_DELAY_S:
            delay = 0.0  # it ran a good while since the last time: start over
        delay = min(max(delay * 2, RESUBMIT_FIRST_DELAY_S), RESUBMIT_MAX_DELAY_S)
        self._next[deployment] = (now + delay, delay)


def job_views(jobs: Iterable[Any], alive_nodes: set[str]) -> list[JobView]:
    """The deployments' jobs (ray.job_submission.JobDetails), a running one whose driver's
    node is dead as LOST."""
    views = []
    for job in jobs:
        if DEPLOYMENT_METADATA_KEY not in (job.metadata or {}) or not job.submission_id:
            continue
        status = str(getattr(job.status, "value", job.status))
        if (
            status in ACTIVE_JOB_STATUSES
            and job.driver_node_id
            and job.driver_node_id not in alive_nodes
        ):
            status = "LOST"
        deployment = job.metadata[DEPLOYMENT_METADATA_KEY]
        views.append(JobView(job.submission_id, deployment, status, job.start_time or 0))
    return views


def _jobs_client() -> Any:
    """The Jobs API of this cluster's dashboard (on the head, so at its recorded address),
    with the cluster's token when it has one."""
    from ray._private import ray_constants
    from ray.experimental import internal_kv
    from ray.job_submission import JobSubmissionClient

    address = internal_kv._internal_kv_get(
        ray_constants.DASHBOARD_ADDRESS, namespace=ray_constants.KV_NAMESPACE_DASHBOARD
    )
    if not address:
        raise ConnectionError("the dashboard has not registered its address yet")
    return JobSubmissionClient(f"http://{address.decode()}")


def _authorization() -> str | None:
    from ray._private.authentication.http_token_authentication import (
        get_auth_headers_if_auth_enabled,
    )

    headers = get_auth_headers_if_auth_enabled({})
    return next(iter(headers.values()), None)


class Keeper:
    def __init__(self) -> None:
        self._server = AdminServer(admin.answer, _authorization())
        self._listening = asyncio.ensure_future(self._server.start("127.0.0.1", admin_port()))
        self._backoff = Backoff()
        self._events: list[str] = []
        self._client: Any = None
        self._keeping = asyncio.ensure_future(self._keep())

    async def ready(self) -> dict[str, Any]:
        """Where the admin API listens, once it does, and what the keeper brought back."""
        return {"admin_port": await self._listening, "events": self._events[-20:]}

    async def _keep(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._round)
            except Exception as error:  # the dashboard still starting after a head restart
                self._client = None
                log.info("keeper: the Jobs API did not answer (%s); next round", error)
            await asyncio.sleep(KEEPER_EVERY_S)

    def _round(self) -> None:
        recorded = registry.recorded()
        if not recorded:
            return
        if self._client is None:
            self._client = _jobs_client()
        alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
        resubmit, drop = plan(recorded, job_views(self._client.list_jobs(), alive))
        for deployment in drop:
            registry.forget(deployment)
        now = time.monotonic()
        for job in resubmit:
            if self._backoff.due(job.deployment, now):
                self._resubmit(job)
                self._backoff.resubmitted(job.deployment, now)

    def _resubmit(self, failed: JobView) -> None:
        info = self._client.get_job_info(failed.submission_id)
        new_id = self._client.submit_job(
            entrypoint=info.entrypoint,
            submission_id=deployment_submission_id(failed.deployment, time.time()),
            runtime_env=info.runtime_env,
            metadata=info.metadata,
        )
        event = f"{time.strftime('%H:%M:%S')} resubmitted {failed.deployment} as {new_id}"
        said = "its node is dead" if failed.status == "LOST" else (info.message or "")[:200]
        event += f" (job {failed.submission_id}: {failed.status}, {said})"
        self._events.append(event)
        log.warning("keeper: %s", event)


def handle() -> Any:
    """The keeper, created on first use (on the head); `await handle().ready.remote()` waits
    until its admin API listens."""
    return ray.remote(Keeper).options(**placement.head_singleton(KEEPER_NAME, 16)).remote()
