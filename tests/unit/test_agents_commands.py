"""agents deploy's stages, logs with hostnames, status tables: the commands against fakes of
the Jobs API and the dashboard shaped like Ray 2.60's answers (recorded from a real head).
tests/agent_runtime/test_jobs_cli.py runs them against a real Ray."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import re
import stat
from types import SimpleNamespace
from typing import Any

import pytest

from agent_runtime.ingress import token_digest
from mcpctl import deploywatch
from mcpctl.commands import agents
from mcpctl.deploywatch import ReplicaState, replica_states, stage

NODE_A = "5435652f1cf919f6c208561097ea44f9ce45008cb1c9dc6de310e6d5"
NODE_B = "9e0b7c1d2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b"
NODE_SUMMARY = {
    "data": {
        "summary": [
            {"hostname": "node1", "ip": "10.77.0.129",
             "raylet": {"nodeId": NODE_A, "nodeManagerHostname": "node1", "state": "ALIVE"}},
            {"hostname": "node2", "ip": "10.77.0.130",
             "raylet": {"nodeId": NODE_B, "nodeManagerHostname": "node2", "state": "ALIVE"}},
        ]
    }
}  # fmt: skip


def actor(name: str, state: str, node: str = "", actor_id: str = "") -> dict[str, Any]:
    return {"name": name, "state": state, "node_id": node, "actor_id": actor_id or name,
            "class_name": "Replica"}  # fmt: skip


def listed(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"result": True, "data": {"result": {"total": len(items), "result": items}}}


def test_replica_states_from_the_state_api():
    actors = [
        actor("ops.detector.0.1", "ALIVE", NODE_A, "a1"),
        actor("ops.detector.0.0", "DEAD", NODE_B, "a0"),  # a replaced incarnation
        actor("ops.decider.0.0", "PENDING_CREATION"),
        actor("risk.scorer.0.0", "ALIVE", NODE_A, "r1"),  # another deployment
    ]
    calls = [{"actor_id": "a1", "state": "FINISHED"}, {"actor_id": "r1", "state": "FINISHED"}]

    assert replica_states("ops", actors, calls) == [
        ReplicaState("decider.0", placed=False, node_id="", ready=False),
        ReplicaState("detector.0", placed=True, node_id=NODE_A, ready=True),
    ]


@pytest.mark.parametrize(
    ("status", "replicas", "text"),
    [
        ("PENDING", None, "submitted: waiting for the job's driver to start on the head"),
        ("RUNNING", [], "driver running: starting the supervisor and the node health monitor"),
        ("RUNNING", None, "driver running: waiting for every agent's setup()"),
        (
            "RUNNING",
            [ReplicaState("a.0", True, NODE_A, False), ReplicaState("b.0", False, "", False)],
            "placing replicas: 1 of 3 on a node (waiting: b.0)",
        ),
        (
            "RUNNING",
            [ReplicaState("a.0", True, NODE_A, True), ReplicaState("a.1", True, NODE_B, False),
             ReplicaState("b.0", True, NODE_A, False)],
            "setting up agents on node1, node2: 1 of 3 ready (in setup(): a.1, b.0)",
        ),
    ],
)  # fmt: skip
def test_the_stage_says_what_the_deployment_waits_for(status, replicas, text):
    names = {NODE_A: "node1", NODE_B: "node2"}

    assert stage(status, 3, replicas, names.__getitem__) == text


class FakeDashboard:
    """Answers like the dashboard, one step of the deployment further at each poll."""

    def __init__(self, steps: list[tuple[str, list[dict], list[dict], str]]) -> None:
        self._steps = itertools.chain(steps, itertools.repeat(steps[-1]))
        self.step = steps[0]  # until the first poll, which moves to steps[0] itself

    def advance(self) -> None:
        self.step = next(self._steps)

    def get_json(self, path: str) -> Any:
        if path.startswith("/nodes"):
            return NODE_SUMMARY
        return listed(self.step[1] if "/actors" in path else self.step[2])


class FakeJobs:
    def __init__(self, dashboard: FakeDashboard, jobs: list[Any] = ()) -> None:
        self.dashboard = dashboard
        self.jobs = list(jobs)
        self.submitted: list[dict] = []
        self.stopped: list[str] = []

    def list_jobs(self) -> list[Any]:
        return self.jobs

    def submit_job(self, **kwargs: Any) -> str:
        self.submitted.append(kwargs)
        return kwargs["submission_id"]

    def get_job_status(self, submission_id: str) -> str:
        self.dashboard.advance()
        return self.dashboard.step[0]

    def get_job_logs(self, submission_id: str) -> str:
        return self.dashboard.step[3]

    def stop_job(self, submission_id: str) -> None:
        self.stopped.append(submission_id)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch):
    def connect(steps, jobs=()):
        dashboard = FakeDashboard(steps)
        client = FakeJobs(dashboard, jobs)
        monkeypatch.setattr(agents, "_connect", lambda args: (dashboard, client))
        return client

    monkeypatch.setattr(deploywatch, "POLL_SECONDS", 0)
    return connect


def test_deploy_tells_each_stage_as_plain_lines(cluster, run_cli, tmp_path):
    placed = [actor(f"ops.{r}.0", "ALIVE", NODE_A, r) for r in ("detector.0", "decider.0")]
    both_ready = [{"actor_id": r, "state": "FINISHED"} for r in ("detector.0", "decider.0")]
    cluster(
        [
            ("PENDING", [], [], ""),
            ("RUNNING", [], [], ""),
            ("RUNNING", [actor("ops.detector.0.0", "PENDING_CREATION")], [], ""),
            ("RUNNING", placed, [{"actor_id": "detector.0", "state": "FINISHED"}], ""),
            ("RUNNING", placed, both_ready, "MCP-READY ops: 2 replicas\n"),
        ]
    )
    spec = tmp_path / "agents.yaml"
    spec.write_text(
        "name: ops\nagents:\n"
        "  - {name: detector, import: agent_runtime.examples.operations:Detector}\n"
        "  - {name: decider, import: agent_runtime.examples.operations:Decider}\n"
    )

    result = run_cli("agents", "deploy", str(spec), "--address", "http://x")

    lines = [line.split("] ", 1)[-1] for line in result.out.splitlines()]
    assert lines[0].startswith("submitted ops as job mcp-agents-ops-")
    assert lines[1:] == [
        "submitted: waiting for the job's driver to start on the head",
        "driver running: starting the supervisor and the node health monitor",
        "placing replicas: 0 of 2 on a node (waiting: detector.0)",
        "setting up agents on node1: 1 of 2 ready (in setup(): decider.0)",
        "setting up agents on node1: 2 of 2 ready",
        lines[-1],
    ]
    assert lines[-1].startswith("ready: ops, 2 replicas set up in ")
    assert "\x1b" not in result.out


def test_logs_name_nodes_by_hostname_and_drop_colours_off_a_terminal(cluster, run_cli):
    job = SimpleNamespace(metadata={"mcp-agents": "ops"}, start_time=1, submission_id="s1")
    client = cluster([("RUNNING", [], [], "")], jobs=[job])
    client.get_job_logs = lambda submission_id: (
        "\x1b[36m(HealthMonitor pid=1)\x1b[0m node 5435652f1cf9 healthy -> unhealthy\n"
        f"detector.0 node {NODE_B[:12]} processed 10\n"
    )

    result = run_cli("agents", "logs", "ops", "--address", "http://x")

    assert result.out == (
        "(HealthMonitor pid=1) node node1 healthy -> unhealthy\n"
        "detector.0 node node2 processed 10\n"
    )


def test_status_prints_tables(monkeypatch, capsys):
    report = {
        "nodes": [
            {"node_id": NODE_A, "address": "10.77.0.129", "status": "healthy",
             "reasons": [], "agents": ["ops/detector.0"],
             "sample": {"hostname": "node1", "cpu_percent": 12.4, "memory_percent": 40.0,
                        "disk_percent": 30.2, "gpus": []}},
            {"node_id": NODE_B, "address": "10.77.0.130", "status": "cordoned",
             "reasons": ["disk swap"], "agents": [], "sample": None},
        ],
        "deployments": [
            {"deployment": "ops", "events": ["moved detector.0 off node2"],
             "agents": [{"agent": "detector", "replicas": 1, "load": 3.0, "autoscaling": None},
                        {"agent": "scorer", "replicas": 0, "load": 0.0,
                         "autoscaling": {"min_replicas": 1, "max_replicas": 4,
                                         "target_in_flight": 32.0}}],
             "replicas": [{"id": "detector.0", "node_id": NODE_A, "reachable": True,
                           "processed": 10, "duplicates": 0}]},
        ],
    }  # fmt: skip
    monkeypatch.setattr(agents, "_ask", lambda args, request: report)

    agents.cmd_status(argparse.Namespace(output="text", name=None))

    assert capsys.readouterr().out.splitlines() == [
        "NODE          ADDRESS      STATUS    CPU%  MEM%  DSK%  GPU   AGENTS",
        "node1         10.77.0.129  healthy     12    40    30  none       1",
        "9e0b7c1d2a3f  10.77.0.130  cordoned     -     -     -  none       0",
        "",
        "9e0b7c1d2a3f: disk swap",
        "",
        "deployment ops",
        "AGENT     REPLICAS  LOAD  AUTOSCALING",
        "detector         1     3  -",
        "scorer           0     0  1..4, 32 in flight each",
        "REPLICA     NODE   PROCESSED  DUPLICATES",
        "detector.0  node1         10           0",
        "! moved detector.0 off node2",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_spinner_runs_and_finished_stages_stay(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    reporter = deploywatch._Reporter(out)

    for text in ("submitted: waiting", "placing replicas: 0 of 2", "placing replicas: 1 of 2",
                 "setting up agents on node1: 0 of 2 ready"):  # fmt: skip
        reporter.update(text)
    reporter.close()

    kept = re.findall(r"\[ +\d+s\] [^\n]*", out.getvalue())
    assert kept == ["[   0s] submitted: waiting", "[   0s] placing replicas: 1 of 2"]
    assert "⠋" in out.getvalue()


def test_deploy_with_an_ingress_prints_the_endpoints_and_where_the_token_is(
    cluster, run_cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    gateways = [{"url": "http://10.77.0.129:8300"}, {"url": "http://10.77.0.130:8300"}]
    ingress = {"deployment": "ops", "agents": ["detector", "decider"], "gateways": gateways}
    ready = f"MCP-READY ops: 2 replicas\nMCP-INGRESS {json.dumps(ingress)}\n"
    client = cluster([("RUNNING", [], [], ready)])
    spec = tmp_path / "agents.yaml"
    spec.write_text(
        "name: ops\ningress: {}\nagents:\n"
        "  - {name: detector, import: agent_runtime.examples.operations:Detector}\n"
        "  - {name: decider, import: agent_runtime.examples.operations:Decider}\n"
    )

    result = run_cli("agents", "deploy", str(spec), "--address", "http://x", "-o", "json")

    token_file = tmp_path / "state/mcp-cluster/default/ingress/ops.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "ingress: 2 gateways, each serving every agent" in result.err
    assert "  http://10.77.0.130:8300/v1/ops/{detector,decider}[/stream]" in result.err
    assert f"client token (Authorization: Bearer ...): {token_file}" in result.err
    assert json.loads(result.out)["gateways"] == [gateway["url"] for gateway in gateways]
    # The job gets the token's digest, never the token.
    env_vars = client.submitted[0]["runtime_env"]["env_vars"]
    assert token_file.read_text().strip() not in json.dumps(client.submitted)
    assert env_vars["MCP_INGRESS_TOKEN_SHA256"] == token_digest(token_file.read_text().strip())


def _agents_yaml(tmp_path):
    spec = tmp_path / "agents.yaml"
    spec.write_text("name: ops\nagents:\n  - {name: a, import: m:A}\n")
    return str(spec)


def test_a_deployment_the_cluster_refuses_exits_2_with_its_reasons(cluster, run_cli, tmp_path):
    refused = (
        "MCP-REFUSED a: import 'x:Y': ModuleNotFoundError: No module named 'x'\n"
        "MCP-REFUSED the replicas need num_cpus 9 in all; the cluster has 6\n"
    )
    cluster([("RUNNING", [], [], ""), ("FAILED", [], [], refused)])

    result = run_cli("agents", "deploy", _agents_yaml(tmp_path), "--address", "http://x")

    assert result.code == 2
    assert result.error_lines[-3:] == [
        "mcpctl: error: the cluster refused the deployment (nothing was started):",
        "  a: import 'x:Y': ModuleNotFoundError: No module named 'x'",
        "  the replicas need num_cpus 9 in all; the cluster has 6",
    ]


def test_a_deployment_not_ready_in_time_is_stopped(cluster, run_cli, tmp_path):
    client = cluster([("RUNNING", [actor("ops.a.0.0", "PENDING_CREATION")], [], "")])

    result = run_cli(
        "agents", "deploy", _agents_yaml(tmp_path), "--address", "http://x", "--wait", "0.3"
    )

    assert result.code == 1
    assert client.stopped == [client.submitted[0]["submission_id"]]
    assert f"stopped job {client.stopped[0]}: nothing of it is left running" in result.err


def test_status_of_a_deployment_that_is_not_running_exits_2(monkeypatch, run_cli):
    report = {"nodes": [], "deployments": [{"deployment": "ops", "replicas": []}]}
    monkeypatch.setattr(agents, "_ask", lambda args, request: report)

    result = run_cli("agents", "status", "opps", "--address", "http://x")

    assert result.code == 2
    assert "no running deployment named 'opps'" in result.err


def test_status_lists_nodes_by_name(monkeypatch, capsys):
    def node(name: str, node_id: str) -> dict[str, Any]:
        return {"node_id": node_id, "address": "-", "status": "healthy", "reasons": [],
                "agents": [], "sample": {"hostname": name}}  # fmt: skip

    report = {"nodes": [node("node3", "a" * 56), node("node1", "b" * 56), node("node2", "c" * 56)],
              "deployments": []}  # fmt: skip
    monkeypatch.setattr(agents, "_ask", lambda args, request: report)

    agents.cmd_status(argparse.Namespace(output="text", name=None))

    rows = capsys.readouterr().out.splitlines()[1:4]
    assert [row.split()[0] for row in rows] == ["node1", "node2", "node3"]


def test_a_node_that_came_back_is_shown_once(monkeypatch, capsys):
    def node(node_id: str, status: str) -> dict[str, Any]:
        return {"node_id": node_id, "address": "10.0.0.3", "status": status, "reasons": [],
                "agents": [], "sample": {"hostname": "node3"}}  # fmt: skip

    # Its probe may never have reported under the old id: then only the address is known.
    unsampled = {**node("c" * 56, "dead"), "sample": {}}
    elsewhere = {**node("d" * 56, "dead"), "sample": {}, "address": "10.0.0.9"}
    report = {"nodes": [node("a" * 56, "dead"), node("b" * 56, "healthy"), unsampled, elsewhere],
              "deployments": []}  # fmt: skip
    monkeypatch.setattr(agents, "_ask", lambda args, request: report)

    agents.cmd_status(argparse.Namespace(output="json", name=None))

    shown = json.loads(capsys.readouterr().out)["nodes"]
    assert [(n["node_id"][0], n["status"]) for n in shown] == [("b", "healthy"), ("d", "dead")]
