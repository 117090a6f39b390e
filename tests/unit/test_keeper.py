"""The keeper's decisions: which deployments to bring back, which to forget, how often."""

from __future__ import annotations

from types import SimpleNamespace

from agent_runtime.constants import RESUBMIT_FIRST_DELAY_S, RESUBMIT_MAX_DELAY_S
from agent_runtime.keeper import Backoff, JobView, job_views, plan


def _job(deployment: str, status: str, start: int, sid: str | None = None) -> JobView:
    return JobView(sid or f"{deployment}-{start}", deployment, status, start)


def test_a_failed_last_job_is_resubmitted_and_an_active_one_left_alone():
    jobs = [_job("ops", "FAILED", 1), _job("risk", "FAILED", 1), _job("risk", "RUNNING", 2)]
    resubmit, drop = plan({"ops", "risk"}, jobs)
    assert [job.submission_id for job in resubmit] == ["ops-1"] and drop == []


def test_the_last_job_decides_not_an_older_one():
    jobs = [_job("ops", "FAILED", 5), _job("ops", "STOPPED", 9), _job("ops", "FAILED", 2)]
    assert plan({"ops"}, jobs) == ([], ["ops"])
    jobs = [_job("ops", "STOPPED", 1), _job("ops", "LOST", 3)]
    assert [job.submission_id for job in plan({"ops"}, jobs)[0]] == ["ops-3"]


def test_stopped_finished_or_deleted_deployments_are_forgotten():
    jobs = [_job("a", "STOPPED", 1), _job("b", "SUCCEEDED", 1)]
    assert plan({"a", "b", "gone"}, jobs) == ([], ["a", "b", "gone"])


def test_unrecorded_deployments_are_never_touched():
    # Refused, or stopped before it was ready: never in the registry.
    assert plan(set(), [_job("ops", "FAILED", 1)]) == ([], [])


def _details(status: str, node: str | None, metadata: dict | None = None) -> SimpleNamespace:
    return SimpleNamespace(submission_id="s1", status=SimpleNamespace(value=status),
                           metadata={"mcp-agents": "ops"} if metadata is None else metadata,
                           driver_node_id=node, start_time=7)  # fmt: skip


def test_a_job_said_to_run_on_a_dead_node_is_lost():
    # After a head restart Ray's job manager marks such jobs FAILED only once a job is
    # submitted; until then they read RUNNING.
    (view,) = job_views([_details("RUNNING", "dead")], alive_nodes={"alive"})
    assert view == JobView("s1", "ops", "LOST", 7)
    (view,) = job_views([_details("RUNNING", "alive")], alive_nodes={"alive"})
    assert view.status == "RUNNING"
    (view,) = job_views([_details("PENDING", None)], alive_nodes=set())
    assert view.status == "PENDING"  # not placed yet: no driver node


def test_jobs_that_are_not_deployments_are_ignored():
    assert job_views([_details("FAILED", None, metadata={})], alive_nodes=set()) == []


def test_backoff_resubmits_at_once_then_doubles_to_the_cap_and_starts_over():
    backoff = Backoff()
    assert backoff.due("ops", 0.0)
    backoff.resubmitted("ops", 0.0)
    assert not backoff.due("ops", RESUBMIT_FIRST_DELAY_S - 0.1)
    assert backoff.due("ops", RESUBMIT_FIRST_DELAY_S) and backoff.due("risk", 0.0)
    now, delays = 0.0, []
    for _ in range(10):
        backoff.resubmitted("ops", now)
        at, delay = backoff._next["ops"]
        delays.append(delay)
        now = at
    assert delays[0] == 2 * RESUBMIT_FIRST_DELAY_S and max(delays) == RESUBMIT_MAX_DELAY_S
    backoff.resubmitted("ops", now + RESUBMIT_MAX_DELAY_S + 1)  # it ran well for a while
    assert backoff._next["ops"][1] == RESUBMIT_FIRST_DELAY_S
