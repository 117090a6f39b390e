"""The gateway end to end: a real local Ray, real gateways, real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import psutil
import pytest

from agent_runtime.client import Deployment
from agent_runtime.ingress import token_digest
from agent_runtime.ingress.httpclient import GatewayClient, GatewayError
from agent_runtime.spec import DeploymentSpec

pytestmark = pytest.mark.ray

TOKEN = "test-token-not-a-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECORDER = "tests.agent_runtime.ingress_agents:Recorder"
MSGPACK = "application/msgpack"


def run(coro):
    return asyncio.run(coro)


def _spec(name: str, agents: list[dict], **ingress: object) -> DeploymentSpec:
    base = {"import": RECORDER, "resources": {"num_cpus": 0.1}}
    return DeploymentSpec.model_validate(
        {
            "name": name,
            "agents": [{**base, **agent} for agent in agents],
            "health": {"interval_s": 0.5},
            "ingress": {
                "host": "127.0.0.1",
                "port": 0,
                "token_sha256": token_digest(TOKEN),
                **ingress,
            },
        }
    )


@pytest.fixture(scope="module")
def gateway(ray_cluster):
    spec = _spec(
        "ingress-t",
        [
            {"name": "echo", "replicas": 2},
            {"name": "keyed", "replicas": 2, "routing_key": "key"},
        ],
        limits={"max_body_bytes": 4096, "max_messages_per_request": 300, "max_frame_bytes": 4096},
    )
    deployment = run(Deployment.start(spec))
    gateways = run(deployment.gateways())
    yield gateways[0]["url"]
    run(deployment.stop(purge=True))


def _url(base: str, agent: str, stream: bool = False) -> str:
    return f"{base}/v1/ingress-t/{agent}" + ("/stream" if stream else "")


async def _post(session, url, body, *, content_type="application/json", headers=None):
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with session.post(
        url, data=data, headers={**AUTH, "Content-Type": content_type, **(headers or {})}
    ) as response:
        return response.status, response.headers, await response.read()


def test_http_round_trips_in_json_and_msgpack(gateway):
    async def go():
        async with aiohttp.ClientSession() as session:
            single = await _post(session, _url(gateway, "echo"), {"n": 1})
            batch_body = msgspec.msgpack.encode([{"n": i} for i in range(10)])
            batch = await _post(session, _url(gateway, "echo"), batch_body, content_type=MSGPACK)
            health = await session.get(f"{gateway}/healthz")
            return single, batch, health.status

    (status, headers, body), (batch_status, batch_headers, batch_body), health = run(go())
    assert status == 200 and headers["Content-Type"] == "application/json"
    reply = msgspec.json.decode(body)
    assert reply["result"]["payload"] == {"n": 1} and reply["id"]
    assert batch_status == 200 and batch_headers["Content-Type"] == MSGPACK
    replies = msgspec.msgpack.decode(batch_body)
    assert [r["result"]["payload"]["n"] for r in replies] == list(range(10))
    assert health == 200


def test_websocket_round_trips_in_json_and_msgpack(gateway):
    async def go():
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(_url(gateway, "keyed", stream=True), headers=AUTH) as ws,
        ):
            for i in range(20):
                frame = {"id": f"ws-{i}", "payload": {"key": f"k{i % 3}", "n": i}}
                if i % 2:
                    await ws.send_bytes(msgspec.msgpack.encode(frame))
                else:
                    await ws.send_str(msgspec.json.encode(frame).decode())
            replies = {}
            for _ in range(20):
                message = await asyncio.wait_for(ws.receive(), 10)
                if message.type is aiohttp.WSMsgType.TEXT:
                    reply = msgspec.json.decode(message.data)
                else:
                    reply = msgspec.msgpack.decode(message.data)
                replies[reply["id"]] = (message.type, reply["result"])
            return replies

    replies = run(go())
    assert sorted(replies) == sorted(f"ws-{i}" for i in range(20))
    for i in range(20):
        kind, result = replies[f"ws-{i}"]
        assert kind is (aiohttp.WSMsgType.BINARY if i % 2 else aiohttp.WSMsgType.TEXT)
        assert result["payload"]["n"] == i
    # Keyed: every message of one key was handled by one replica.
    owners: dict[str, set[int]] = {}
    for _, result in replies.values():
        owners.setdefault(result["payload"]["key"], set()).add(result["replica"])
    assert all(len(replicas) == 1 for replicas in owners.values())


def test_messages_arriving_together_share_actor_calls(gateway):
    async def go():
        async with aiohttp.ClientSession() as session:
            # A batch: one call per replica involved, not one per message.
            _, _, body = await _post(session, _url(gateway, "echo"), [{"n": i} for i in range(200)])
            batch = msgspec.json.decode(body)
            # Many WebSocket frames at once: the senders take what queued while calls ran.
            async with session.ws_connect(_url(gateway, "echo", stream=True), headers=AUTH) as ws:
                for i in range(400):
                    await ws.send_bytes(msgspec.msgpack.encode({"id": f"c-{i}", "payload": i}))
                frames = [
                    msgspec.msgpack.decode((await asyncio.wait_for(ws.receive(), 10)).data)
                    for _ in range(400)
                ]
            return batch, frames

    batch, frames = run(go())
    assert len({reply["result"]["call"] for reply in batch}) <= 2
    streamed_calls = {reply["result"]["call"] for reply in frames}
    assert len(frames) / len(streamed_calls) >= 4, f"{len(streamed_calls)} calls for 400 frames"


def test_without_the_token_nothing_gets_through(gateway):
    async def go():
        async with aiohttp.ClientSession() as session:
            statuses = []
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                async with session.post(_url(gateway, "echo"), json={}, headers=headers) as r:
                    statuses.append((r.status, r.headers.get("WWW-Authenticate")))
            async with session.get(f"{gateway}/metrics") as r:
                statuses.append((r.status, r.headers.get("WWW-Authenticate")))
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(_url(gateway, "echo", stream=True))
            return statuses, refused.value.status

    statuses, ws_status = run(go())
    assert statuses == [(401, "Bearer")] * 4
    assert ws_status == 401


BAD_REQUESTS = [
    # (what, method, path suffix, body, content type, extra headers, expected status)
    ("malformed JSON", "POST", "echo", b'{"n": ', "application/json", {}, 400),
    ("malformed MessagePack", "POST", "echo", b"\xc1", MSGPACK, {}, 400),
    ("unknown encoding", "POST", "echo", b"n=1", "text/plain", {}, 415),
    ("empty batch", "POST", "echo", b"[]", "application/json", {}, 400),
    (
        "bad idempotency key",
        "POST",
        "echo",
        b"{}",
        "application/json",
        {"Idempotency-Key": ""},
        400,
    ),
    ("too large", "POST", "echo", b'"' + b"x" * 5000 + b'"', "application/json", {}, 413),
    ("too many messages", "POST", "echo", b"[" + b"1," * 300 + b"1]", "application/json", {}, 413),
    ("keyed without key", "POST", "keyed", b'{"n": 1}', "application/json", {}, 422),
    ("keyed, not a mapping", "POST", "keyed", b"[1]", "application/json", {}, 422),
    ("unknown agent", "POST", "nobody", b"{}", "application/json", {}, 404),
    ("bad method", "GET", "echo", b"", "application/json", {}, 405),
    ("stream path without upgrade", "GET", "echo/stream", b"", "application/json", {}, 400),
]


def test_bad_input_gets_its_4xx_and_others_are_still_served(gateway):
    async def go():
        async with (
            aiohttp.ClientSession() as bystander,
            aiohttp.ClientSession() as session,
            bystander.ws_connect(_url(gateway, "echo", stream=True), headers=AUTH) as ws,
        ):
            outcomes = []
            for what, method, suffix, body, content_type, headers, _ in BAD_REQUESTS:
                url = f"{gateway}/v1/ingress-t/{suffix}"
                all_headers = {**AUTH, "Content-Type": content_type, **headers}
                async with session.request(method, url, data=body, headers=all_headers) as r:
                    error = (await r.json())["error"]
                    outcomes.append((what, r.status, error))
                # The bystander's connections keep working between bad requests.
                status, _, _ = await _post(bystander, _url(gateway, "echo"), {"ok": what})
                await ws.send_str(msgspec.json.encode({"id": what, "payload": 1}).decode())
                reply = msgspec.json.decode((await asyncio.wait_for(ws.receive(), 10)).data)
                outcomes.append((what, status, reply.get("result", {}).get("payload")))
            async with session.post(f"{gateway}/v1/other/echo", json={}, headers=AUTH) as r:
                outcomes.append(("unknown deployment", r.status, (await r.json())["error"]))
            huge = {**AUTH, "X-Filler": "x" * 10_000}
            async with session.post(_url(gateway, "echo"), json={}, headers=huge) as r:
                outcomes.append(("header too large", r.status, ""))
            # Bad frames get error replies on the same stream, which stays open.
            await ws.send_str("{nope")
            await ws.send_bytes(msgspec.msgpack.encode({"payload": 1}))
            await ws.send_str('{"id": "x", "payload": 1}')
            frames = [
                msgspec.json.decode((await ws.receive()).data),
                msgspec.msgpack.decode((await ws.receive()).data),
                msgspec.json.decode((await ws.receive()).data),
            ]
            async with session.ws_connect(_url(gateway, "echo", stream=True), headers=AUTH) as big:
                await big.send_str('{"id": "big", "payload": "' + "x" * 5000 + '"}')
                closed = await asyncio.wait_for(big.receive(), 10)
            return outcomes, frames, closed, ws.closed

    outcomes, frames, closed, bystander_closed = run(go())
    expected = {what: status for what, *_, status in BAD_REQUESTS}
    for what, status, detail in outcomes:
        if isinstance(detail, str):
            assert status == expected.get(what, status), (what, status, detail)
        else:
            assert (status, detail) == (200, 1), what  # the bystander's replies
    assert ("unknown deployment", 404) in [(w, s) for w, s, _ in outcomes]
    assert next(s for w, s, _ in outcomes if w == "header too large") in (400, 431)
    assert [frame.get("status") for frame in frames] == [400, 400, None]
    assert frames[0]["id"] is None and "malformed JSON" in frames[0]["error"]
    assert frames[2]["result"]["payload"] == 1
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1009
    assert not bystander_closed


def test_metrics_count_messages_and_batch_sizes(gateway):
    async def go():
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gateway}/metrics", headers=AUTH) as response,
        ):
            return response.status, await response.text()

    status, text = run(go())
    assert status == 200
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    ok = 'mcp_ingress_messages_total{deployment="ingress-t",agent="echo",outcome="ok"}'
    assert int(samples[ok]) > 600  # the earlier tests' messages through this gateway
    calls = int(samples['mcp_ingress_batch_size_count{deployment="ingress-t",agent="echo"}'])
    assert 0 < calls < int(samples[ok])  # fewer actor calls than messages
    assert 'mcp_ingress_queued{deployment="ingress-t",agent="echo"}' in samples


def test_an_idempotency_key_is_answered_once(gateway):
    async def go():
        async with aiohttp.ClientSession() as session:
            key = {"Idempotency-Key": f"idem-{time.time_ns()}"}
            first = await _post(session, _url(gateway, "echo"), {"n": 1}, headers=key)
            again = await _post(session, _url(gateway, "echo"), {"n": 1}, headers=key)
            batch_key = {"Idempotency-Key": f"idem-batch-{time.time_ns()}"}
            batch = await _post(session, _url(gateway, "echo"), [1, 2, 3], headers=batch_key)
            batch_again = await _post(session, _url(gateway, "echo"), [1, 2, 3], headers=batch_key)
            return first[2], again[2], batch[2], batch_again[2]

    first, again, batch, batch_again = (msgspec.json.decode(b) for b in run(go()))
    assert first == again and first["id"].startswith("idem-")
    assert batch == batch_again
    assert [reply["id"].rsplit(".", 1)[1] for reply in batch] == ["0", "1", "2"]


def _refused_url() -> str:
    """A loopback URL with nothing listening (a gateway on a node that went down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_the_shell_client_fails_over_to_the_next_gateway(gateway):
    client = GatewayClient([_refused_url(), gateway], TOKEN, retry_for_s=10)

    replies = client.post("ingress-t", "echo", [{"n": 1}, [2, 3]], key="failover-1")
    again = client.post("ingress-t", "echo", [{"n": 1}, [2, 3]], key="failover-1")
    client.close()

    assert [reply["result"]["payload"] for reply in replies] == [{"n": 1}, [2, 3]]
    assert [reply["id"] for reply in replies] == ["failover-1.0", "failover-1.1"]
    assert again == replies  # the same key is answered from memory, not handled again
    assert client.failovers == 1 and client.url == gateway


def test_the_shell_client_reports_a_refusal_without_retrying(gateway):
    client = GatewayClient([gateway], "wrong-token", retry_for_s=10)

    with pytest.raises(GatewayError) as refused:
        client.post("ingress-t", "echo", [1])

    assert refused.value.status == 401 and "bearer token" in str(refused.value)


def test_mcpctl_agents_send_streams_a_file_through_the_gateway(gateway, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    lines = "".join(json.dumps({"key": f"k{i}", "n": i}) + "\n" for i in range(5))

    sent = subprocess.run(
        [str(Path(sys.executable).parent / "mcpctl"), "agents", "send", "ingress-t/keyed",
         "-i", "-", "--batch", "2", "--gateway", gateway, "--ingress-token-file", str(token_file)],
        input=lines, capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert sent.returncode == 0, sent.stderr
    replies = [json.loads(line) for line in sent.stdout.splitlines()]
    assert [reply["result"]["payload"]["n"] for reply in replies] == list(range(5))
    assert max(reply["result"]["batch"] for reply in replies) <= 2


@pytest.fixture(scope="module")
def flood(ray_cluster):
    """A deployment that fills up fast: one slow replica, small queues."""
    spec = _spec(
        "ingress-f",
        [
            {"name": "slow", "replicas": 1, "config": {"sleep_s": 0.25, "echo": False}},
            {"name": "fast", "replicas": 1},
        ],
        max_batch_size=8,
        calls_per_replica=1,
        limits={
            "max_pending_per_replica": 32,
            "max_in_flight_per_connection": 16,
            "send_timeout_s": 1.0,
        },
    )
    deployment = run(Deployment.start(spec))
    gateway = run(deployment.gateways())[0]  # any gateway reaches every replica
    yield gateway["url"], psutil.Process(gateway["pid"]), deployment
    run(deployment.stop(purge=True))


def _flood_url(base: str, agent: str, stream: bool = False) -> str:
    return f"{base}/v1/ingress-f/{agent}" + ("/stream" if stream else "")


def test_a_flood_gets_429s_and_memory_stays_bounded(flood):
    base, process, _ = flood

    async def one(session, i):
        async with session.post(_flood_url(base, "slow"), json={"n": i}, headers=AUTH) as r:
            await r.read()
            return r.status, r.headers.get("Retry-After")

    async def go():
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await asyncio.gather(*(one(session, i) for i in range(600)))

    before = process.memory_info().rss
    outcomes = run(go())
    grown = process.memory_info().rss - before
    statuses = [status for status, _ in outcomes]
    assert set(statuses) == {200, 429}, set(statuses)
    assert statuses.count(200) >= 32
    assert all(retry == "1" for status, retry in outcomes if status == 429)
    assert grown < 30 * 2**20, f"gateway grew {grown / 2**20:.1f} MiB"


def test_a_websocket_flood_is_flow_controlled_not_buffered(flood):
    base, process, _ = flood
    filler = "x" * 2**18

    async def go():
        before = process.memory_info().rss
        sent = 0
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(_flood_url(base, "slow", stream=True), headers=AUTH)

            async def send_all():
                nonlocal sent
                # 100 MiB: more than loopback's socket buffers take (autotuned up to 32 MiB
                # to receive here, 4 MiB to send).
                for i in range(400):
                    await ws.send_str(f'{{"id": "{i}", "payload": "{filler}"}}')
                    sent += 1

            async def read_all():
                while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass

            sender = asyncio.ensure_future(send_all())
            reader = asyncio.ensure_future(read_all())
            await asyncio.sleep(3)
            grown = process.memory_info().rss - before
            blocked = not sender.done()
            sender.cancel()
            reader.cancel()
            # Drop the connection rather than close it: a close frame would queue behind MiBs.
            await session.close()
        return blocked, sent, grown

    blocked, sent, grown = run(go())
    print(f"sent {sent} of 400 frames of 256 KiB; gateway grew {grown / 2**20:.1f} MiB")
    assert blocked, "the client could send everything: nothing pushed back"
    assert sent < 400
    assert grown < 30 * 2**20, f"gateway grew {grown / 2**20:.1f} MiB"


def test_a_client_that_reads_nothing_is_dropped(flood):
    base, _, _ = flood
    filler = "x" * 60_000

    async def go():
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(_flood_url(base, "fast", stream=True), headers=AUTH)
            try:
                async with asyncio.timeout(10):
                    for i in range(400):  # replies of ~24 MiB that it never reads
                        await ws.send_str(f'{{"id": "{i}", "payload": "{filler}"}}')
            except (TimeoutError, ConnectionError):
                pass
            await asyncio.sleep(2)  # over send_timeout_s without reading a byte
            received = 0
            async with asyncio.timeout(20):
                while (await ws.receive()).type in (aiohttp.WSMsgType.TEXT,):
                    received += 1
            # Others are served meanwhile.
            status, _, _ = await _post(session, _flood_url(base, "fast"), {"n": 1})
            return received, status

    received, status = run(go())
    assert received < 400
    assert status == 200


def test_a_killed_gateway_is_restarted_and_listens_again(flood):
    _, process, deployment = flood
    process.kill()

    async def back() -> dict:
        async with asyncio.timeout(45), aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(0.5)
                gateways = await deployment.gateways()
                revived = [g for g in gateways if g["pid"] != process.pid]
                if len(revived) == len(gateways):
                    url = revived[0]["url"]
                    status, _, body = await _post(session, _flood_url(url, "fast"), {"n": 1})
                    return status, msgspec.json.decode(body)

    status, reply = run(back())
    assert status == 200 and reply["result"]["payload"] == {"n": 1}
