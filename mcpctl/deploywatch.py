"""What `mcpctl agents deploy` waits for, told as it happens: the job's start, each replica's
placement on a node, each agent's setup(), with the time so far. Read from outside, through
the dashboard: the job's status and log (Jobs API), the replicas' actors and their `ready`
calls (Ray's state API). A spinner on a terminal, a line per change elsewhere."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from agent_runtime.constants import ACTIVE_JOB_STATUSES, READY_MARKER, REFUSED_MARKER
from mcpctl.errors import McpError, UsageError
from mcpctl.jobsapi import JobsApi
from mcpctl.progress import elapsed_text
from mcpctl.tables import console_for

POLL_SECONDS = 0.5
# The runtime's names (agent_runtime/supervisor.py): actor `<deployment>.<agent>.<index>.<n>`
# of class Replica, and the call the supervisor waits on, which runs the agent's setup().
REPLICA_CLASS = "Replica"
READY_CALL = "Replica.ready"
_PLACED = "ALIVE"
_GONE = "DEAD"


@dataclass(frozen=True)
class ReplicaState:
    replica: str  # detector.0
    placed: bool
    node_id: str
    ready: bool


def replica_states(
    deployment: str, actors: Sequence[Mapping[str, Any]], ready_calls: Sequence[Mapping[str, Any]]
) -> list[ReplicaState]:
    """The deployment's live replicas, from the state API's actors and their ready() calls."""
    done = {call.get("actor_id") for call in ready_calls if call.get("state") == "FINISHED"}
    prefix = f"{deployment}."
    states = []
    for actor in actors:
        name = actor.get("name") or ""
        if not name.startswith(prefix) or actor.get("state") == _GONE:
            continue
        replica = name[len(prefix) :].rsplit(".", 1)[0]  # without the incarnation
        placed = actor.get("state") == _PLACED
        states.append(
            ReplicaState(replica, placed, actor.get("node_id") or "", actor.get("actor_id") in done)
        )
    return sorted(states, key=lambda state: state.replica)


def stage(
    job_status: str,
    wanted: int,
    replicas: Sequence[ReplicaState] | None,
    node_names: Callable[[str], str],
) -> str:
    """One line saying what the deployment is waiting for."""
    if job_status == "PENDING":
        return "submitted: waiting for the job's driver to start on the head"
    if replicas is None:
        return "driver running: waiting for every agent's setup()"
    placed = [state for state in replicas if state.placed]
    if not replicas:
        return "driver running: starting the supervisor and the node health monitor"
    if len(placed) < wanted:
        waiting = [state.replica for state in replicas if not state.placed]
        return f"placing replicas: {len(placed)} of {wanted} on a node" + (
            f" (waiting: {_some(waiting)})" if waiting else ""
        )
    ready = [state for state in replicas if state.ready]
    nodes = sorted({node_names(state.node_id) for state in placed})
    waiting = [state.replica for state in replicas if not state.ready]
    return f"setting up agents on {', '.join(nodes)}: {len(ready)} of {wanted} ready" + (
        f" (in setup(): {_some(waiting)})" if waiting else ""
    )


def _stage_name(text: str) -> str:
    return text.split(":", 1)[0]


def _some(names: Sequence[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )


class _Reporter:
    """A spinner with the stage and the time so far on a terminal; else a line per stage."""

    def __init__(self, stream: TextIO | None) -> None:
        self._console = console_for(stream)
        self._started = time.monotonic()
        self._last = ""
        self._status = self._console.status("submitting") if self._console.is_terminal else None
        if self._status is not None:
            self._status.start()

    def elapsed(self) -> str:
        return elapsed_text(time.monotonic() - self._started)

    def update(self, text: str) -> None:
        if self._status is not None:
            # A stage that is over stays on the screen, above the spinner.
            if self._last and _stage_name(text) != _stage_name(self._last):
                self._console.print(f"[{self.elapsed():>5}] {self._last}")
            self._status.update(f"{text} · {self.elapsed()}")
        elif text != self._last:
            self._console.file.write(f"[{self.elapsed():>5}] {text}\n")
            self._console.file.flush()
        self._last = text

    @property
    def last(self) -> str:
        return self._last

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def wait_until_ready(
    api: JobsApi,
    client: Any,
    submission_id: str,
    deployment: str,
    wanted: int,
    timeout_s: float,
    node_names: Callable[[str], str],
    stream: TextIO | None = None,
) -> str:
    """Report each stage until every replica is set up; the time it took."""
    reporter = _Reporter(stream)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if READY_MARKER in client.get_job_logs(submission_id):
                return reporter.elapsed()
            job_status = client.get_job_status(submission_id)
            status = str(getattr(job_status, "value", job_status))
            if status not in ACTIVE_JOB_STATUSES:
                raise _ended(client.get_job_logs(submission_id), submission_id, status)
            replicas = _replicas(api, deployment) if status == "RUNNING" else None
            reporter.update(stage(status, wanted, replicas, node_names))
            time.sleep(POLL_SECONDS)
    finally:
        reporter.close()
    raise McpError(
        f"deployment job {submission_id} not ready after {timeout_s:g}s: {reporter.last}"
    )


def _ended(logs: str, submission_id: str, status: str) -> McpError:
    """Why the job ended: the cluster's reasons for refusing it, else the log's end."""
    refused = [line[len(REFUSED_MARKER) :] for line in logs.splitlines()
               if line.startswith(REFUSED_MARKER)]  # fmt: skip
    if refused:
        reasons = "".join(f"\n  {reason}" for reason in refused)
        return UsageError(f"the cluster refused the deployment (nothing was started):{reasons}")
    return McpError(f"deployment job {submission_id} ended ({status}):\n{logs[-2000:]}")


def _replicas(api: JobsApi, deployment: str) -> list[ReplicaState] | None:
    """None when the state API does not answer: the wait goes on, with less to tell."""
    try:
        actors = _listed(api, "actors", "class_name", REPLICA_CLASS)
        calls = _listed(api, "tasks", "name", READY_CALL)
    except McpError:
        return None
    return replica_states(deployment, actors, calls)


def _listed(api: JobsApi, resource: str, key: str, value: str) -> list[Mapping[str, Any]]:
    query = urllib.parse.urlencode(
        {"limit": 10_000, "filter_keys": key, "filter_predicates": "=", "filter_values": value}
    )
    answer = api.get_json(f"/api/v0/{resource}?{query}")
    try:
        return list(answer["data"]["result"]["result"])
    except (KeyError, TypeError):
        raise McpError(f"unexpected answer from the state API's {resource}") from None
