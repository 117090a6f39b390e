"""mcpctl reaches a real cluster from the sandbox's spec alone: no token copied and no tunnel
opened by hand. A sandbox of its own is deployed, then `agents deploy`, `status` and
`agents logs` run from the repository (no ./cluster.yaml, no -f) as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from agent_runtime.ingress.httpclient import GatewayClient
from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.spec import load_spec
from tests.integration.conftest import REPO, run

pytestmark = pytest.mark.integration

SANDBOX_ENV = {"MCP_SANDBOX_NAME": "mcp-reach", "MCP_SANDBOX_SUBNET": "10.71.0.0/24"}
EXAMPLE = "agent_runtime/examples/operations.yaml"
AGENTS = ["ops/decider.0", "ops/decider.1", "ops/detector.0", "ops/detector.1", "ops/executor.0"]


def mcpctl(*args: str) -> subprocess.CompletedProcess[str]:
    return run("mcpctl", *args, check=False, timeout=300)


@pytest.fixture(scope="module")
def layout() -> Iterator[SandboxLayout]:
    saved = {name: os.environ.get(name) for name in SANDBOX_ENV}
    os.environ.update(SANDBOX_ENV)
    for name in ("MCP_SPEC", "MCP_RAY_ADDRESS", "MCP_RAY_TOKEN", "MCP_RAY_TOKEN_FILE"):
        os.environ.pop(name, None)
    try:
        run("mcpctl", "sandbox", "up", "--nodes", "3")
        layout = SandboxLayout.default()
        deploy = run("mcpctl", "deploy", "-f", str(layout.spec_file), check=False, timeout=1800)
        assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
        yield layout
    finally:
        mcpctl("agents", "stop", "ops")
        run("mcpctl", "sandbox", "down", check=False)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def state_dir(layout: SandboxLayout) -> Path:
    # The cluster's state dir: for a sandbox with default paths, the sandbox's own.
    return layout.state_dir


def test_agents_deploy_from_the_sandboxs_spec_alone(layout: SandboxLayout) -> None:
    assert not (REPO / "cluster.yaml").exists()
    assert not (state_dir(layout) / "ray_token").exists()

    deployed = mcpctl("agents", "deploy", EXAMPLE)

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "placing replicas" in deployed.stdout or "setting up agents" in deployed.stdout
    assert re.search(r"^ready: ops, 5 replicas set up in \d", deployed.stdout, re.M)
    assert "\x1b" not in deployed.stdout
    token_file = state_dir(layout) / "ingress/ops.token"
    assert f"client token (Authorization: Bearer ...): {token_file}" in deployed.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_the_token_is_cached_private_and_never_in_the_working_tree(layout: SandboxLayout) -> None:
    token_file = state_dir(layout) / "ray_token"
    token = token_file.read_text().strip()

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (
        token
        == run(
            "mcpctl", "sandbox", "ssh", "node1", "--", "sudo cat /etc/mcp/ray_auth_token"
        ).stdout.strip()
    )
    tracked = run("git", "grep", "-l", "-F", token, check=False)
    untracked = run("git", "status", "--porcelain", "--untracked-files=all").stdout
    assert tracked.stdout == "" and "ray_token" not in untracked
    assert token not in (state_dir(layout) / "tunnel.log").read_text()


def test_status_names_the_nodes_and_their_agents(layout: SandboxLayout) -> None:
    as_json = mcpctl("status", "-o", "json")
    text = mcpctl("status")

    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert sorted(agent for node in report["nodes"] for agent in node["agents"]) == AGENTS
    assert text.returncode == 0, text.stderr
    header, *rows = text.stdout.splitlines()
    assert header.split()[:3] == ["NODE", "ADDRESS", "STATUS"]
    assert sorted(row.split()[0] for row in rows[:3]) == ["node1", "node2", "node3"]


def test_the_next_commands_reuse_the_tunnel(layout: SandboxLayout) -> None:
    before = json.loads((state_dir(layout) / "tunnel.json").read_text())

    assert mcpctl("agents", "list").returncode == 0
    assert json.loads((state_dir(layout) / "tunnel.json").read_text()) == before


def test_logs_name_nodes_by_hostname_without_colour_codes(layout: SandboxLayout) -> None:
    logs = mcpctl("agents", "logs", "ops")

    assert logs.returncode == 0, logs.stderr
    assert "MCP-READY ops: 5 replicas" in logs.stdout
    assert "\x1b" not in logs.stdout
    node_ids = [
        node["node_id"] for node in json.loads(mcpctl("status", "-o", "json").stdout)["nodes"]
    ]
    assert not any(node_id[:12] in logs.stdout for node_id in node_ids)


def test_a_stale_cached_token_is_read_again(layout: SandboxLayout) -> None:
    token_file = state_dir(layout) / "ray_token"
    right = token_file.read_text()
    token_file.write_text("stale-token\n")

    listed = mcpctl("agents", "list", "-o", "json")

    assert listed.returncode == 0, listed.stderr
    assert token_file.read_text() == right


def test_an_unknown_host_key_is_head_unreachable(layout: SandboxLayout, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    spec = tmp_path / "cluster.yaml"
    text = layout.spec_file.read_text()
    spec.write_text(re.sub(r"known_hosts: .*", f"known_hosts: {empty}", text))

    # A state dir of its own: this cluster's token and tunnel must not be touched.
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    result = run("mcpctl", "status", "-f", str(spec), check=False, timeout=120, env=env)

    assert result.returncode == 1
    assert "head unreachable" in result.stderr and "Host key verification failed" in result.stderr


def test_dashboard_close_ends_the_tunnel(layout: SandboxLayout) -> None:
    pid = json.loads((state_dir(layout) / "tunnel.json").read_text())["pid"]

    closed = mcpctl("dashboard", "--close")

    assert closed.returncode == 0 and f"(pid {pid})" in closed.stdout
    assert (
        not Path(f"/proc/{pid}").exists() or "ssh" not in Path(f"/proc/{pid}/cmdline").read_text()
    )


# The ingress: this machine plays a client outside the cluster (the sandbox's spec admits its
# address on the network, and nothing else, to ingress.port).
METRIC = {"host": "web-1", "seq": 1, "features": [0.5, 0.4, 0.4, 0.5, 0.05, 0.3, 0.4, 0.45]}


def gateways() -> list[dict[str, Any]]:
    logs = mcpctl("agents", "logs", "ops").stdout
    (line,) = [line for line in logs.splitlines() if line.startswith("MCP-INGRESS ")][-1:]
    return json.loads(line.removeprefix("MCP-INGRESS "))["gateways"]


def client_token(layout: SandboxLayout) -> str:
    return (state_dir(layout) / "ingress/ops.token").read_text().strip()


def test_every_gateway_answers_http_and_websocket_with_the_token(layout: SandboxLayout) -> None:
    token, found = client_token(layout), gateways()
    nodes = {node.address: node.name for node in load_spec(layout.spec_file).nodes}

    assert found and {gateway["host"] for gateway in found} <= set(nodes)
    for gateway in found:
        client = GatewayClient([gateway["url"]], token, retry_for_s=30)
        (reply,) = client.post("ops", "detector", [METRIC])
        client.close()
        assert reply["result"]["host"] == "web-1", reply
        frames = asyncio.run(websocket_round_trip(gateway["url"], token))
        assert [frame["id"] for frame in frames] == ["ws-json", "ws-msgpack"], frames
        assert all(frame["result"]["host"] == "web-1" for frame in frames)


async def websocket_round_trip(url: str, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/v1/ops/detector/stream", headers=headers) as stream,
    ):
        await stream.send_str(json.dumps({"id": "ws-json", "payload": METRIC}))
        text = json.loads((await stream.receive(timeout=30)).data)
        await stream.send_bytes(msgspec.msgpack.encode({"id": "ws-msgpack", "payload": METRIC}))
        binary = msgspec.msgpack.decode((await stream.receive(timeout=30)).data)
        return [text, binary]


def test_agents_send_reaches_the_detector_from_the_spec_alone(layout: SandboxLayout) -> None:
    metrics = run(
        "python", "-m", "agent_runtime.examples.produce", "metrics", "--messages", "300"
    ).stdout

    sent = run("mcpctl", "agents", "send", "detector", "-i", "-", input=metrics, timeout=300)

    replies = [json.loads(line) for line in sent.stdout.splitlines()]
    assert [reply["result"]["seq"] for reply in replies] == list(range(300))


def test_without_the_token_every_gateway_refuses(layout: SandboxLayout) -> None:
    for gateway in gateways():
        request = urllib.request.Request(
            f"{gateway['url']}/v1/ops/detector", data=json.dumps(METRIC).encode(), method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401

        async def upgrade(url: str = gateway["url"]) -> None:
            async with aiohttp.ClientSession() as session:
                await session.ws_connect(f"{url}/v1/ops/detector/stream")

        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            asyncio.run(upgrade())
        assert handshake.value.status == 401


def test_the_ingress_port_is_closed_to_sources_outside_allowed_networks(
    layout: SandboxLayout,
) -> None:
    gateway = gateways()[0]
    nodes = load_spec(layout.spec_file).nodes
    # Another node: on the cluster's network, but not in ingress.allowed_networks.
    outsider = next(node.name for node in nodes if node.address != gateway["host"])
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({gateway['host']!r}, {gateway['port']}), timeout=3)\n"
        "    print('connected')\n"
        "except OSError as error:\n"
        "    print(type(error).__name__)\n"
    )

    answer = run("mcpctl", "sandbox", "ssh", outsider, "--", f"python3 -c {shlex.quote(probe)}")

    # Dropped, not refused: the port shows nothing to an outsider. This machine, allowed,
    # connects (the tests above).
    assert answer.stdout.strip() == "TimeoutError", answer.stdout + answer.stderr
