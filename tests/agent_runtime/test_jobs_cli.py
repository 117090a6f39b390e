"""`mcpctl agents deploy | list | status | stop | logs` against a real `ray start --head`
with its dashboard (the Jobs API), token authentication on, on ports of its own."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mcpctl import adminapi
from mcpctl.cli import main
from mcpctl.jobsapi import JobsApi

pytestmark = pytest.mark.ray

ROOT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def jobs_cluster():
    token = secrets.token_hex(32)
    dashboard = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="mcpray-")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        # The keeper's admin API on a port of this cluster's own, as mcpctl is told below.
        "MCP_ADMIN_PORT": str(_free_port()),
        # The job's `python` must be this environment's, with agent_runtime installed.
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    env.pop("RAY_ADDRESS", None)
    ports = {
        "--port": _free_port(),
        "--dashboard-port": dashboard,
        "--dashboard-agent-listen-port": _free_port(),
        "--ray-client-server-port": _free_port(),
        "--metrics-export-port": _free_port(),
    }
    command = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--num-cpus=4",
               "--disable-usage-stats", "--include-dashboard=true", f"--temp-dir={temp_dir}",
               *(f"{flag}={port}" for flag, port in ports.items())]  # fmt: skip
    # --block keeps the head in the foreground; ending it stops exactly this cluster (never
    # `ray stop`, which would stop every Ray on the machine).
    head = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, token)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MCP_ADMIN_PORT", env["MCP_ADMIN_PORT"])
            yield address, token, ports["--metrics-export-port"]
    finally:
        # The group holds only what this fixture started (start_new_session above).
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_jobs_api(address: str, token: str) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            reply = requests.get(
                f"{address}/api/version", headers={"Authorization": f"Bearer {token}"}, timeout=2
            )
            if reply.ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise RuntimeError("Ray dashboard did not come up")


def _scrape(port: int, metric: str, timeout_s: float = 30) -> str:
    import requests

    deadline = time.monotonic() + timeout_s
    while True:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        if metric in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def _mcpctl(capsys, address, *argv) -> tuple[int, str]:
    code = main([*argv, "--address", address])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_deploy_list_status_logs_stop(jobs_cluster, capsys, monkeypatch, tmp_path):
    address, token, metrics_port = jobs_cluster
    monkeypatch.setenv("MCP_RAY_TOKEN", token)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # the client token goes here
    spec = str(ROOT / "agent_runtime/examples/operations.yaml")

    code, out = _mcpctl(capsys, address, "agents", "deploy", spec)
    assert code == 0, out
    # What it waited for, as plain lines (not a terminal here), then the verdict.
    assert "submitted: waiting for the job's driver to start" in out or "placing replicas" in out
    assert "ready: ops, 5 replicas set up in " in out and "\x1b" not in out
    assert "ingress: 1 gateways, each serving every agent" in out
    code, out = _mcpctl(capsys, address, "agents", "deploy", spec)
    assert code == 2 and "already running" in out

    # Through the gateway that the deploy started, found from the job and the state dir.
    metric = {"host": "web-1", "seq": 7, "features": [0.5, 0.4, 0.4, 0.5, 0.05, 0.3, 0.4, 0.45]}
    code, out = _mcpctl(capsys, address, "agents", "send", "detector", json.dumps(metric))
    assert code == 0, out
    (reply,) = [json.loads(line) for line in out.splitlines()]
    assert reply["result"]["host"] == "web-1" and reply["result"]["seq"] == 7
    assert isinstance(reply["result"]["anomaly"], bool)
    code, out = _mcpctl(capsys, address, "agents", "send", "detector", '{"seq": 8}')
    assert code == 1 and "this agent routes by 'host'" in out

    code, out = _mcpctl(capsys, address, "agents", "list", "-o", "json")
    assert code == 0 and [row["name"] for row in json.loads(out)] == ["ops"]

    # A node of a machine this busy can fail a probe (3 s) and be "recovering" for a few
    # rounds: healthy again within half a minute is what is asked of it.
    deadline = time.monotonic() + 30
    while True:
        code, out = _mcpctl(capsys, address, "status", "-o", "json")
        assert code == 0, out
        report = json.loads(out)
        node = report["nodes"][0]
        if node["status"] == "healthy" or time.monotonic() > deadline:
            break
    assert node["status"] == "healthy", node["reasons"]
    assert "gpu_error" not in report["nodes"][0]["sample"]
    agents = sorted(agent for node in report["nodes"] for agent in node["agents"])
    assert agents == [f"ops/{a}" for a in ("decider.0", "decider.1", "detector.0", "detector.1",
                                           "executor.0")]  # fmt: skip

    code, out = _mcpctl(capsys, address, "agents", "status", "ops")
    assert code == 0 and "deployment ops" in out and "detector.1" in out, out

    code, out = _mcpctl(capsys, address, "status")
    hostname = report["nodes"][0]["sample"]["hostname"]
    assert code == 0 and out.splitlines()[0].split()[:3] == ["NODE", "ADDRESS", "STATUS"], out
    assert out.splitlines()[1].split()[0] == hostname, out
    node = report["nodes"][0]["node_id"][:12]
    code, out = _mcpctl(capsys, address, "agents", "cordon", "0000nosuchnode")
    assert code == 2 and "matches 0 known nodes" in out, out
    code, out = _mcpctl(capsys, address, "agents", "cordon", node, "--reason", "disk swap")
    assert code == 0 and "cordoned" in out, out
    code, out = _mcpctl(capsys, address, "status", "-o", "json")
    cordoned = json.loads(out)["nodes"][0]
    assert (cordoned["status"], cordoned["reasons"]) == ("cordoned", ["disk swap"])
    # The only node: nowhere to move to, so the agents stay rather than go pending.
    assert len(cordoned["agents"]) == 5
    code, out = _mcpctl(capsys, address, "agents", "uncordon", node)
    assert code == 0 and "uncordoned" in out, out
    code, out = _mcpctl(capsys, address, "agents", "cordon", hostname)
    assert code == 0 and "cordoned" in out, out
    code, out = _mcpctl(capsys, address, "agents", "uncordon", hostname)
    assert code == 0 and "uncordoned" in out, out

    # Node health reaches Prometheus through Ray's metrics agent (exported every few seconds).
    assert "ray_mcp_node_healthy" in _scrape(metrics_port, "ray_mcp_node_healthy")

    code, out = _mcpctl(capsys, address, "agents", "logs", "ops")
    assert code == 0 and "MCP-READY ops: 5 replicas" in out
    # Ray colours the workers' prefixes, and the runtime names nodes by id: neither here.
    assert "\x1b" not in out and node not in out

    # What upgrade.yml asks the keeper before a whole-cluster restart.
    assert adminapi.ask(JobsApi(address, token), {"action": "checkpoint"}) == {
        "checkpointed": {"ops": 5}
    }

    code, out = _mcpctl(capsys, address, "agents", "stop", "ops")
    assert code == 0, out
    code, out = _mcpctl(capsys, address, "agents", "logs", "ops")
    assert "stopped ops: 5 replicas checkpointed and ended" in out  # SIGTERM handled
    code, out = _mcpctl(capsys, address, "agents", "list", "-o", "json")
    assert json.loads(out) == []
    code, out = _mcpctl(capsys, address, "agents", "stop", "ops")
    assert code == 2 and "no running deployment" in out


def test_wrong_token_is_a_clear_error(jobs_cluster, capsys, monkeypatch):
    address, _, _ = jobs_cluster
    monkeypatch.setenv("MCP_RAY_TOKEN", "not-the-token")
    code, out = _mcpctl(capsys, address, "agents", "list")
    assert code == 1 and "wrong token: the Jobs API at" in out and "HTTP 403" in out, out
    assert "not-the-token" not in out


def test_no_token_is_a_clear_error(jobs_cluster, capsys, monkeypatch, tmp_path):
    address, _, _ = jobs_cluster
    monkeypatch.delenv("MCP_RAY_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token either
    code, out = _mcpctl(capsys, address, "agents", "list")
    assert code == 1 and "no token: the Jobs API at" in out and "HTTP 401" in out, out
