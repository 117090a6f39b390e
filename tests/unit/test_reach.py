"""mcpctl reaches the Jobs API from the spec: a tunnel to the head's dashboard and the head's
token over SSH, both reused by the next command. The head is this machine behind a fake ssh
(tests/unit/fakes/ssh.py: strict host keys, real port forwarding, ssh's own messages) and the
dashboard a small HTTP server that checks the bearer token as Ray's does (401 none, 403 wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mcpctl import openssh
from mcpctl.errors import HeadUnreachable, NoToken, TunnelFailed, UsageError, WrongToken
from mcpctl.jobsapi import reach
from mcpctl.raytoken import HEAD_TOKEN_PATH
from mcpctl.specsource import find_spec
from mcpctl.tunnel import close_tunnel, tunnel_alive

FAKE_SSH = Path(__file__).parent / "fakes" / "ssh.py"
REPO = Path(__file__).resolve().parents[2]
HEAD_TOKEN = "head-token-5f1c0e"


class FakeDashboard:
    """GET /api/version as Ray's dashboard answers it, behind its token check."""

    def __init__(self, token: str) -> None:
        self.token = token
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sent = self.headers.get("Authorization")
                status = 200 if sent == f"Bearer {dashboard.token}" else 403 if sent else 401
                body = json.dumps({"ray_version": "2.60.0"} if status == 200 else {}).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Head:
    spec: Path
    root: Path
    log: Path
    state: Path
    dashboard: FakeDashboard

    def ssh_calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def set_token(self, token: str) -> None:
        path = self.root / HEAD_TOKEN_PATH.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token + "\n")

    def args(self, **overrides: object) -> argparse.Namespace:
        return argparse.Namespace(
            **{"spec": str(self.spec), "address": None, "token_file": None, **overrides}
        )


@pytest.fixture
def head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Head]:
    monkeypatch.setattr(openssh, "SSH_PROGRAM", [sys.executable, str(FAKE_SSH)])
    for variable in ("MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE", "MCP_SPEC"):
        monkeypatch.delenv(variable, raising=False)
    state_home = tmp_path / "xdg-state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    root, log = tmp_path / "head-root", tmp_path / "ssh-calls.jsonl"
    log.touch()
    monkeypatch.setenv("FAKE_SSH_ROOT", str(root))
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    (tmp_path / "id_ed25519").write_text("not a real key\n")
    (tmp_path / "known_hosts").write_text("127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n")
    dashboard = FakeDashboard(HEAD_TOKEN)
    spec = tmp_path / "cluster.yaml"
    spec.write_text(
        "name: reach\n"
        f"ssh: {{user: ansible, key: {tmp_path}/id_ed25519, known_hosts: {tmp_path}/known_hosts}}\n"
        "nodes:\n  - {name: node1, address: 127.0.0.1, role: head}\n"
        f"ray: {{dashboard_port: {dashboard.port}}}\n"
    )
    head = Head(spec, root, log, state_home / "mcp-cluster" / "reach", dashboard)
    head.set_token(HEAD_TOKEN)
    yield head
    if head.state.is_dir():
        close_tunnel(head.state)
    dashboard.stop()


def test_the_head_is_reached_from_the_spec_alone(head: Head):
    api = reach(head.args())

    assert api.token == HEAD_TOKEN
    assert api.address.startswith("http://127.0.0.1:")
    assert api.tunnel is not None and api.address == api.tunnel.url
    tunnel_call, token_call = head.ssh_calls()
    forward = tunnel_call[tunnel_call.index("-L") + 1]
    assert "-N" in tunnel_call
    assert forward == f"127.0.0.1:{api.tunnel.local_port}:127.0.0.1:{head.dashboard.port}"
    assert token_call[-5:] == ["ansible@127.0.0.1", "sudo", "-n", "cat", HEAD_TOKEN_PATH]


def test_the_token_is_cached_private_in_the_state_dir_and_nowhere_else(head: Head):
    api = reach(head.args())

    assert api.token_file == head.state / "ray_token"
    assert api.token_file.read_text() == f"{HEAD_TOKEN}\n"
    assert stat.S_IMODE(api.token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(head.state.stat().st_mode) == 0o700
    leaked = [
        path
        for path in [*head.state.iterdir(), head.spec.parent / "cluster.yaml"]
        if path.name != "ray_token" and HEAD_TOKEN in path.read_text()
    ]
    assert leaked == []
    assert not any(HEAD_TOKEN in " ".join(call) for call in head.ssh_calls())


def test_the_next_command_reuses_the_tunnel_and_the_cached_token(head: Head):
    first = reach(head.args())
    calls = len(head.ssh_calls())

    second = reach(head.args())

    assert second.address == first.address and second.tunnel_was_open
    assert len(head.ssh_calls()) == calls  # no SSH at all


def test_a_dead_tunnel_is_replaced(head: Head):
    first = reach(head.args())
    assert first.tunnel is not None
    os.kill(first.tunnel.pid, signal.SIGKILL)
    time.sleep(0.1)

    second = reach(head.args())

    assert second.tunnel is not None and second.tunnel.pid != first.tunnel.pid
    assert not second.tunnel_was_open and second.token == HEAD_TOKEN


def test_a_token_changed_on_the_head_is_read_again(head: Head):
    reach(head.args())
    head.set_token("after-a-reset-and-deploy")
    head.dashboard.token = "after-a-reset-and-deploy"

    api = reach(head.args())

    assert api.token == "after-a-reset-and-deploy"
    assert (head.state / "ray_token").read_text().strip() == "after-a-reset-and-deploy"


def test_a_token_the_dashboard_refuses_is_a_wrong_token(head: Head):
    head.dashboard.token = "the-dashboards-own"

    with pytest.raises(WrongToken) as error:
        reach(head.args())

    message = str(error.value)
    assert [call[-1] for call in head.ssh_calls()].count(HEAD_TOKEN_PATH) == 1  # read once
    assert message.startswith("wrong token: the Jobs API of cluster 'reach'")
    assert "HTTP 403" in message and HEAD_TOKEN_PATH in message
    assert HEAD_TOKEN not in message and "the-dashboards-own" not in message


def test_a_head_without_a_token_says_deploy_first(head: Head):
    (head.root / HEAD_TOKEN_PATH.lstrip("/")).unlink()

    with pytest.raises(NoToken, match=r"^no token: node1 \(127.0.0.1\):/etc/mcp/ray_auth_token "
                       "does not exist — deploy the cluster first"):  # fmt: skip
        reach(head.args())


def test_sudo_that_wants_a_password_is_named(head: Head, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_SSH_SUDO_PASSWORD", "1")

    with pytest.raises(NoToken, match="sudo asks ansible for a password"):
        reach(head.args())


def test_an_unreachable_head_says_what_ssh_said(head: Head, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_SSH_UNREACHABLE", "1")

    with pytest.raises(HeadUnreachable) as error:
        reach(head.args())

    assert str(error.value) == (
        "head unreachable: ssh ansible@127.0.0.1 failed: "
        "ssh: connect to host 127.0.0.1 port 22: No route to host"
    )


def test_an_unknown_host_key_is_refused_never_trusted(head: Head):
    (head.spec.parent / "known_hosts").write_text("10.9.9.9 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n")

    with pytest.raises(HeadUnreachable, match="Host key verification failed"):
        reach(head.args())


def test_nothing_listening_on_the_dashboard_port_is_a_failed_tunnel(head: Head):
    head.dashboard.stop()

    with pytest.raises(TunnelFailed) as error:
        reach(head.args())

    assert str(error.value).startswith("tunnel failed: the tunnel to ansible@127.0.0.1:22 is up")
    assert f"head's {head.dashboard.port}" in str(error.value)


def test_a_token_file_overrides_the_heads_token(head: Head, tmp_path: Path):
    mine = tmp_path / "my-token"
    mine.write_text("not-this-clusters\n")

    with pytest.raises(WrongToken, match=f"refused the token in {mine} "):
        reach(head.args(token_file=str(mine)))
    assert not any("cat" in call for call in head.ssh_calls())


def test_an_address_without_a_token_is_no_token(head: Head, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(head.root))  # no ~/.ray/auth_token
    address = f"http://127.0.0.1:{head.dashboard.port}"

    with pytest.raises(NoToken, match=r"^no token: the Jobs API at .* wants one \(HTTP 401\)"):
        reach(head.args(spec=None, address=address))
    monkeypatch.setenv("MCP_RAY_TOKEN", "wrong")
    with pytest.raises(WrongToken, match=r"in \$MCP_RAY_TOKEN \(HTTP 403\)"):
        reach(head.args(spec=None, address=address))
    monkeypatch.setenv("MCP_RAY_TOKEN", HEAD_TOKEN)
    assert reach(head.args(spec=None, address=address)).address == address
    assert head.ssh_calls() == []


def test_dashboard_close_ends_the_tunnel(head: Head, run_cli):
    api = reach(head.args())
    assert api.tunnel is not None

    result = run_cli("dashboard", "-f", str(head.spec), "--close")

    assert result.code == 0
    assert result.out == f"closed the tunnel to ansible@127.0.0.1:22 (pid {api.tunnel.pid})\n"
    assert not tunnel_alive(api.tunnel)
    again = run_cli("dashboard", "-f", str(head.spec), "--close")
    assert again.out == "no tunnel of cluster 'reach' was open\n"


def test_ssh_is_strict_and_reads_no_user_config(head: Head):
    from mcpctl.spec import load_spec

    spec = load_spec(head.spec)
    argv = openssh.ssh_argv(spec, spec.head)

    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes", "IdentitiesOnly=yes",
                   f"UserKnownHostsFile={head.spec.parent}/known_hosts"):  # fmt: skip
        assert argv[argv.index(option) - 1] == "-o"
    assert argv[argv.index("-F") + 1] == "/dev/null"


def test_the_token_path_is_the_roles(head: Head):
    defaults = yaml.safe_load((REPO / "roles/ray_cluster/defaults/main.yml").read_text())

    assert defaults["ray_cluster_token_file"] == HEAD_TOKEN_PATH


class TestSpecLookup:
    @pytest.fixture(autouse=True)
    def sandbox_state(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MCP_SPEC", raising=False)
        monkeypatch.setenv("MCP_SANDBOX_STATE", str(tmp_path / "sandbox"))
        return tmp_path / "sandbox"

    def test_flag_then_variable_then_the_working_dirs_spec(self, monkeypatch):
        Path("cluster.yaml").touch()
        assert find_spec("other.yaml") == Path("other.yaml")
        monkeypatch.setenv("MCP_SPEC", "from-env.yaml")
        assert find_spec(None) == Path("from-env.yaml")
        monkeypatch.delenv("MCP_SPEC")
        assert find_spec(None) == Path("cluster.yaml")

    def test_then_the_spec_of_the_sandbox_that_is_up(self, sandbox_state: Path):
        with pytest.raises(UsageError, match=r"no \./cluster\.yaml and no sandbox is up"):
            find_spec(None)
        sandbox_state.mkdir()
        (sandbox_state / "cluster.yaml").touch()

        assert find_spec(None) == sandbox_state / "cluster.yaml"


def _ctrl_c(tunnel: object) -> bool:
    raise KeyboardInterrupt


def test_dashboard_prints_the_url_and_closes_its_tunnel_on_ctrl_c(head, run_cli, monkeypatch):
    from mcpctl.commands import dashboard

    monkeypatch.setattr(dashboard, "tunnel_alive", _ctrl_c)

    result = run_cli("dashboard", "-f", str(head.spec))

    assert result.code == 0, result.err
    url, token, ray_cli, hint, closed = result.out.splitlines()
    assert url.startswith("Ray dashboard: http://127.0.0.1:")
    assert token.split()[1] == str(head.state / "ray_token")
    assert "RAY_AUTH_MODE=token" in ray_cli and HEAD_TOKEN not in result.out
    assert hint == "Ctrl-C to close"
    assert closed.startswith("closed the tunnel to ansible@127.0.0.1:22 (pid ")
    assert not (head.state / "tunnel.json").exists()


def test_dashboard_leaves_a_tunnel_it_found_open(head, run_cli, monkeypatch):
    from mcpctl.commands import dashboard

    api = reach(head.args())
    monkeypatch.setattr(dashboard, "tunnel_alive", _ctrl_c)

    result = run_cli("dashboard", "-f", str(head.spec))

    assert (
        result.out.splitlines()[-1] == "Ctrl-C to close (the tunnel was open before: it stays open)"
    )
    assert api.tunnel is not None and tunnel_alive(api.tunnel)


def test_a_head_that_stops_answering_mid_command_is_said_so_not_a_traceback():
    import requests

    from mcpctl.errors import McpError
    from mcpctl.jobsapi import JobsApi, _Answering

    class Gone:
        def list_jobs(self):
            raise requests.ConnectionError("Connection refused")

        def get_job_status(self, submission_id):
            return "RUNNING"

    client = _Answering(Gone(), JobsApi("http://127.0.0.1:8265", "t"))

    assert client.get_job_status("x") == "RUNNING"
    with pytest.raises(McpError, match=r"the cluster stopped answering at http://127\.0\.0\.1"):
        client.list_jobs()
