"""The keeper's admin API on a real socket (agent_runtime.adminserver), and mcpctl's side of
it (mcpctl.adminapi): answers, refusals of bad requests, and the one-shot job where nothing
listens."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.adminserver import MAX_BODY_BYTES, MAX_HEADER_BYTES, AdminServer
from agent_runtime.constants import ADMIN_PORT
from mcpctl import adminapi
from mcpctl.errors import UsageError, WrongToken
from mcpctl.jobsapi import JobsApi
from tests.unit.roles import defaults

TOKEN = "s3cret"
REPORT = {"nodes": [], "deployments": []}


async def _answer(request: dict[str, str]) -> dict[str, Any]:
    if request["action"] == "cordon" and request["node"] == "nosuch":
        return {"error": "'nosuch' matches 0 known nodes"}
    return {"report": REPORT} if request["action"] == "report" else {"done": request}


@pytest.fixture
def server() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    admin = AdminServer(_answer, f"Bearer {TOKEN}")
    port = loop.run_until_complete(admin.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    asyncio.run_coroutine_threadsafe(admin.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _raw(port: int, data: bytes) -> tuple[int, dict[str, Any]]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _post(port: int, body: bytes, token: str | None = TOKEN, path: str = "/v1/admin") -> Any:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return _raw(port, f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(body)}"
                      f"\r\n\r\n".encode() + body)  # fmt: skip


def _api(port: int, token: str = TOKEN) -> JobsApi:
    return JobsApi(f"http://127.0.0.1:{port}", token)


def test_a_request_is_answered(server, monkeypatch):
    monkeypatch.setenv("MCP_ADMIN_PORT", str(server))
    assert adminapi.ask(_api(1), {"action": "report"}) == {"report": REPORT}
    reply = adminapi.ask(_api(1), {"action": "cordon", "node": "node2", "reason": "disk"})
    assert reply == {"done": {"action": "cordon", "node": "node2", "reason": "disk"}}


def test_what_the_runtime_refuses_exits_2_with_its_words(server, monkeypatch):
    monkeypatch.setenv("MCP_ADMIN_PORT", str(server))
    with pytest.raises(UsageError, match="matches 0 known nodes"):
        adminapi.ask(_api(1), {"action": "cordon", "node": "nosuch"})


def test_a_wrong_token_is_named(server, monkeypatch):
    monkeypatch.setenv("MCP_ADMIN_PORT", str(server))
    with pytest.raises(WrongToken, match="refused it"):
        adminapi.ask(_api(1, token="guess"), {"action": "report"})
    assert _post(server, b'{"action": "report"}', token=None)[0] == 401


@pytest.mark.parametrize(
    ("body", "status", "said"),
    [
        (b"{not json", 400, "Expecting property name"),
        (b'["report"]', 400, "send a JSON object"),
        (b'{"action": "reboot"}', 400, "must be one of report, cordon, uncordon, checkpoint"),
        (b'{"action": "cordon"}', 400, "cordon needs 'node'"),
        (b'{"action": "cordon", "node": "n", "reason": 5}', 400, "'reason' must be text"),
    ],
)
def test_bad_requests_get_a_4xx_saying_what_is_wrong(server, body, status, said):
    code, reply = _post(server, body)
    assert code == status and said in reply["error"], reply


def test_limits_and_paths(server):
    assert _post(server, b"{}", path="/other")[0] == 404
    assert _raw(server, b"GET /v1/admin HTTP/1.1\r\n\r\n")[0] == 405
    assert _post(server, b"x" * (MAX_BODY_BYTES + 1))[0] == 413
    huge = b"POST /v1/admin HTTP/1.1\r\nX: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"
    assert _raw(server, huge)[0] == 431
    assert _raw(server, b"POST /v1/admin HTTP/1.1\r\n\r\n")[0] == 401  # auth before the body
    code, reply = _raw(server, f"POST /v1/admin HTTP/1.1\r\nAuthorization: Bearer {TOKEN}"
                               "\r\n\r\n".encode())  # fmt: skip
    assert code == 411 and "Content-Length" in reply["error"]
    # After all that, the server still answers.
    assert _post(server, b'{"action": "report"}') == (200, {"report": REPORT})


def test_where_nothing_listens_the_request_runs_as_a_job(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("MCP_ADMIN_PORT", str(closed))
    asked = []
    monkeypatch.setattr(adminapi, "_one_shot_job", lambda api, request: asked.append(request) or
                        {"uncordoned": "abc"})  # fmt: skip
    assert adminapi.ask(_api(1), {"action": "uncordon", "node": "abc"}) == {"uncordoned": "abc"}
    assert asked == [{"action": "uncordon", "node": "abc"}]


def test_upgrade_yml_asks_the_keeper_at_the_runtimes_admin_port():
    assert defaults("agent_runtime")["agent_runtime_admin_port"] == ADMIN_PORT
