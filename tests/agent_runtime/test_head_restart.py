"""A deployment outlives its head: a real `ray start --head` with GCS fault tolerance (RocksDB
on disk, as the ray_cluster role sets it up) is killed whole, every process of it, as a
machine failure would, and started again. The keeper brings the deployment back by itself
from its checkpoints; one stopped by the operator stays stopped. Status and cordon go to the
keeper, leaving no job behind."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.ray

ROOT = Path(__file__).parents[2]
VENV_BIN = Path(sys.executable).parent
RECOVERY_TIMEOUT_S = 120


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Head:
    """One head node, all of whose processes carry a marker in their environment, so that
    killing it kills exactly them (Ray's workers leave the process group of `ray start`)."""

    def __init__(self, token: str, admin_port: int) -> None:
        self.marker = f"mcp-test-head-{secrets.token_hex(6)}"
        self.temp_dir = tempfile.mkdtemp(prefix="mcphead-")
        self.dashboard = _free_port()
        ports = {"--port": _free_port(), "--dashboard-port": self.dashboard,
                 "--dashboard-agent-listen-port": _free_port(),
                 "--dashboard-agent-grpc-port": _free_port(),
                 "--runtime-env-agent-port": _free_port(), "--node-manager-port": _free_port(),
                 "--object-manager-port": _free_port(), "--metrics-export-port": _free_port(),
                 "--ray-client-server-port": _free_port()}  # fmt: skip
        # Fixed: a restarted head must come back on the same ports, as a unit's would.
        self.command = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--num-cpus=4",
                        "--disable-usage-stats", "--include-dashboard=true",
                        f"--temp-dir={self.temp_dir}/ray",
                        *(f"{flag}={port}" for flag, port in ports.items())]  # fmt: skip
        self.env = {
            **os.environ,
            "MCP_TEST_HEAD": self.marker,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": token,
            "RAY_gcs_storage": "rocksdb",
            "RAY_gcs_storage_path": f"{self.temp_dir}/gcs",
            "MCP_ADMIN_PORT": str(admin_port),
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),  # the test agents, for the job's driver and workers
        }
        self.env.pop("RAY_ADDRESS", None)
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT,
                                        start_new_session=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)  # fmt: skip

    def kill(self) -> int:
        """SIGKILL to every process of this head at once; how many there were."""
        found: dict[int, psutil.Process] = {}
        for process in psutil.process_iter():
            try:
                if process.environ().get("MCP_TEST_HEAD") == self.marker:
                    found[process.pid] = process
                    # The raylet's agents retitle themselves (setproctitle), which hides
                    # their environment; left alive, they hold the head's ports past a restart.
                    found.update((child.pid, child) for child in process.children(recursive=True))
            except psutil.Error:
                continue
        mine = list(found.values())
        for process in mine:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(mine, timeout=10)
        if self.process is not None:
            self.process.wait(timeout=10)
        return len(mine)


@pytest.fixture
def head(monkeypatch, tmp_path) -> Iterator[Head]:
    token = secrets.token_hex(32)
    admin_port = _free_port()
    monkeypatch.setenv("MCP_RAY_TOKEN", token)
    monkeypatch.setenv("MCP_ADMIN_PORT", str(admin_port))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the client token
    head = Head(token, admin_port)
    head.start()
    try:
        yield head
    finally:
        head.kill()
        shutil.rmtree(head.temp_dir, ignore_errors=True)


def _mcpctl(head: Head, *argv: str) -> tuple[int, str]:
    # A process of its own, as an operator runs it: mcpctl sets Ray's client settings in its
    # environment, which would leak into the tests sharing this process's Ray.
    done = subprocess.run([str(VENV_BIN / "mcpctl"), *argv, "--address", head.address],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _until(check, what: str, timeout_s: float = RECOVERY_TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(1)


def _jobs(head: Head) -> list[dict]:
    code, out = _mcpctl(head, "agents", "list", "--all", "-o", "json")
    return json.loads(out) if code == 0 else []


def _counts(head: Head, messages: int, path: Path) -> list[int] | None:
    """The counts in the replies to this many messages; None if they were not answered."""
    path.write_text('{"key": "k"}\n' * messages)
    code, out = _mcpctl(head, "agents", "send", "phoenix/counter", "-i", str(path))
    if code != 0:
        return None
    return [json.loads(line)["result"]["count"] for line in out.splitlines()]


def test_a_deployment_comes_back_after_its_head_and_a_stopped_one_does_not(head: Head, tmp_path):
    _until(lambda: _mcpctl(head, "agents", "list")[0] == 0, "the Jobs API answers", 60)
    spec = tmp_path / "phoenix.yaml"
    spec.write_text(f"""
name: phoenix
ingress: {{port: {_free_port()}}}
agents:
  - name: counter
    import: tests.agent_runtime.agents:Counter
    routing_key: key
    checkpoint_every: 1
    resources: {{num_cpus: 0.5}}
""")

    def deployed() -> str | None:
        code, out = _mcpctl(head, "agents", "deploy", str(spec))
        assert code == 0 or "try again later" in out, out  # its job agent still starting
        return out if code == 0 else None

    assert "ready: phoenix" in _until(deployed, "deployed", 60)
    assert _counts(head, 30, tmp_path / "m1") == list(range(1, 31))

    # Answered by the keeper the deploy started: no job for it.
    code, out = _mcpctl(head, "status", "-o", "json")
    assert code == 0 and json.loads(out)["deployments"][0]["deployment"] == "phoenix", out
    code, out = _mcpctl(head, "agents", "cordon", "0000nosuchnode")
    assert code == 2 and "matches 0 known nodes" in out, out
    assert [job["name"] for job in _jobs(head)] == ["phoenix"]

    assert head.kill() > 5  # GCS, raylet, dashboard, agents, driver, supervisor, replica...
    head.start()

    def back() -> bool:
        running = [job for job in _jobs(head) if job["status"] == "RUNNING"]
        code, _ = _mcpctl(head, "agents", "status", "phoenix")
        return len(running) == 1 and code == 0

    _until(back, "phoenix running again by itself")
    # Every acknowledged message is in the restored state, and none counted twice.
    counts = _until(lambda: _counts(head, 1, tmp_path / "m2"), "an answer", 30)
    assert counts == [31]
    code, out = _mcpctl(head, "agents", "logs", "phoenix")
    assert "MCP-READY phoenix: 1 replicas" in out, out

    code, out = _mcpctl(head, "agents", "stop", "phoenix")
    assert code == 0, out
    head.kill()
    head.start()
    _until(lambda: _mcpctl(head, "status", "-o", "json")[0] == 0, "the keeper is back")
    time.sleep(8)  # a few of the keeper's rounds
    statuses = [job["status"] for job in _jobs(head)]
    assert "RUNNING" not in statuses and "PENDING" not in statuses, statuses
