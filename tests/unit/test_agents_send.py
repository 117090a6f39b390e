"""`mcpctl agents send`: its input is checked before anything is sent, and the agent is found
among the running deployments' gateways (fakes of the Jobs API; tests/agent_runtime/
test_ingress.py sends through a real gateway)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from agent_runtime.constants import INGRESS_MARKER
from mcpctl.commands import agents


def job(deployment: str, agent_names: list[str], port: int, status: str = "RUNNING") -> Any:
    ingress = {
        "deployment": deployment,
        "agents": agent_names,
        "gateways": [{"url": f"http://10.0.0.{port % 250}:{port}", "port": port}],
    }
    return SimpleNamespace(
        submission_id=f"mcp-agents-{deployment}",
        status=status,
        metadata={agents.DEPLOYMENT_METADATA_KEY: deployment},
        start_time=port,
        logs=f"MCP-READY {deployment}\n{INGRESS_MARKER}{json.dumps(ingress)}\n",
    )


class FakeJobs:
    def __init__(self, jobs: list[Any]) -> None:
        self.jobs = jobs

    def list_jobs(self) -> list[Any]:
        return self.jobs

    def get_job_logs(self, submission_id: str) -> str:
        return next(j.logs for j in self.jobs if j.submission_id == submission_id)


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch):
    def install(*jobs: Any) -> None:
        monkeypatch.setattr(agents, "_connect", lambda args: (None, FakeJobs(list(jobs))))

    return install


@pytest.fixture
def token(tmp_path):
    path = tmp_path / "client.token"
    path.write_text("t0ken\n")
    return str(path)


def test_a_bad_line_names_the_file_and_line_and_nothing_is_sent(run_cli, in_tmp, token):
    (in_tmp / "msgs.jsonl").write_text('{"host": "a"}\n{"host": \n')

    # Port 1 on loopback refuses: had anything been sent, the error would be a gateway's.
    result = run_cli(
        "agents", "send", "ops/detector", "-i", "msgs.jsonl",
        "--gateway", "http://127.0.0.1:1", "--ingress-token-file", token,
    )  # fmt: skip

    assert result.code == 2
    assert result.error_lines[-1].endswith("msgs.jsonl:2: not JSON: Expecting value at column 10")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["ops/detector"], "give one message as an argument, or -i FILE"),
        (["ops/detector", "{}", "-i", "-"], "give one message as an argument, or -i FILE"),
        (["ops/detector", "{}", "--batch", "0"], "--batch must be at least 1, not 0"),
        (["detector", "{}", "--gateway", "http://127.0.0.1:1"], "name the agent as DEPLOYMENT/"),
        (["ops/", "{}"], "'ops/': name an agent"),
    ],
)
def test_usage_errors_exit_2(run_cli, argv, problem):
    result = run_cli("agents", "send", *argv)

    assert result.code == 2 and problem in result.err


def test_an_agent_in_two_deployments_must_be_named_with_its_deployment(run_cli, running, token):
    running(job("ops", ["detector"], 8300), job("ops2", ["detector"], 8301))

    result = run_cli("agents", "send", "detector", "{}", "--ingress-token-file", token)

    assert result.code == 2
    assert "2 deployments have an agent 'detector': say which (ops/detector, ops2/detector)" in (
        result.err
    )


def test_an_agent_behind_no_ingress_is_refused_with_the_fix(run_cli, running, token):
    running(job("ops", ["detector"], 8300), job("old", ["scorer"], 8301, status="STOPPED"))

    result = run_cli("agents", "send", "scorer", "{}", "--ingress-token-file", token)

    assert result.code == 2
    assert "no agent 'scorer' behind an ingress in any running deployment" in result.err
    assert "'ingress:' section" in result.err


def test_the_target_resolves_to_the_deployments_gateways(running):
    running(job("ops", ["detector", "decider"], 8300), job("risk", ["rules"], 8301))
    args = SimpleNamespace(target="decider", gateway=None)

    assert agents._send_target(args) == ("ops", "decider", ["http://10.0.0.50:8300"])


def test_the_last_ingress_line_of_a_driver_log_wins():
    first, later = job("ops", ["a"], 8300), job("ops", ["a", "b"], 8302)
    client = SimpleNamespace(get_job_logs=lambda _id: first.logs + "status...\n" + later.logs)

    assert agents.ingress_of(client, "any")["agents"] == ["a", "b"]
    assert agents.ingress_of(SimpleNamespace(get_job_logs=lambda _id: "MCP-READY x\n"), "x") is None


def test_deploy_refuses_a_port_another_deployment_serves(run_cli, running, in_tmp):
    running(job("ops", ["detector"], 8300))
    (in_tmp / "other.yaml").write_text(
        "name: other\ningress: {port: 8300}\nagents:\n"
        "  - {name: scorer, import: agent_runtime.examples.risk:RuleScorer}\n"
    )

    result = run_cli("agents", "deploy", "other.yaml", "--address", "http://x")

    assert result.code == 2
    assert "other.yaml: ingress.port 8300 is taken by the running deployment 'ops'" in result.err


def test_a_deployment_still_starting_says_so_rather_than_asking_for_an_ingress(
    run_cli, running, token
):
    starting = job("ops", ["detector"], 8300)
    starting.logs = "Running entrypoint for job mcp-agents-ops: python -m agent_runtime.jobs\n"
    running(starting)

    result = run_cli("agents", "send", "ops/detector", "{}", "--ingress-token-file", token)

    assert result.code == 1
    assert "ops: starting" in result.err and "try again in a few seconds" in result.err
    assert "'ingress:' section" not in result.err
