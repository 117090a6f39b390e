"""The gateway's transport on real sockets, with an in-process stand-in for the replicas (no
Ray): HTTP/1.1 details and WebSocket framing that a client library would not exercise."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import ssl
import subprocess
from typing import Any

import msgspec
import pytest

from agent_runtime.ingress import token_digest
from agent_runtime.ingress.gateway import tls_context
from agent_runtime.ingress.httpclient import GatewayError
from agent_runtime.ingress.server import HttpServer
from agent_runtime.ingress.service import IngressService
from agent_runtime.ingress.streamclient import StreamClient
from agent_runtime.ingress.websocket import FrameError, FrameParser, unmask
from agent_runtime.spec import DeploymentSpec, IngressTls

AUTH = b"Authorization: Bearer t\r\n"


class _Replica:
    """Answers handle_many.remote(messages) like a replica actor handle, in-process."""

    def __init__(self) -> None:
        self.handle_many = self
        self.calls: list[int] = []

    def remote(self, messages: list[Any]) -> Any:
        self.calls.append(len(messages))

        async def answer() -> list[Any]:
            await asyncio.sleep(0)
            return [message.payload for message in messages]

        return answer()


class _StalledReplica(_Replica):
    """Takes calls and never answers them: the messages a dying gateway leaves unanswered."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[asyncio.Future[Any]] = []

    def remote(self, messages: list[Any]) -> Any:
        self.calls.append(len(messages))
        self.held.append(asyncio.get_running_loop().create_future())
        return self.held[-1]


async def _serve(
    tls: ssl.SSLContext | None = None, replica: _Replica | None = None, **limits: Any
) -> tuple[HttpServer, int, _Replica]:
    spec = DeploymentSpec.model_validate(
        {
            "name": "d",
            "agents": [{"name": "echo", "import": "m:A"}],
            "ingress": {"token_sha256": token_digest("t"), "limits": limits},
        }
    )
    replica = replica or _Replica()

    async def fetch(_agent: str) -> list:
        return [("echo.0", replica, 1.0)]

    service = IngressService(spec, fetch)
    service.set_replicas({"echo": await fetch("echo")})
    server = HttpServer(service)
    return server, await server.start("127.0.0.1", 0, tls), replica


def _post(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/d/echo HTTP/1.1\r\nHost: x\r\n"
        + AUTH
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


async def _exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send data, read until the server closes (or the timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


def test_pipelined_requests_are_answered_in_order_and_connection_close_is_honoured():
    async def go():
        server, port, _ = await _serve()
        requests = b"".join(_post(b'{"n": %d}' % i) for i in range(3))
        received = await _exchange(port, requests + _post(b"1", b"Connection: close\r\n"))
        old = await _exchange(port, _post(b"2").replace(b"HTTP/1.1", b"HTTP/1.0"))
        await server.stop()
        return received, old

    received, old = asyncio.run(go())
    assert received.count(b"HTTP/1.1 200 OK") == 4
    positions = [received.index(b'"result":{"n":%d}' % i) for i in range(3)]
    assert positions == sorted(positions)
    assert b"Connection: close" in received  # and the read above ended: the server closed
    assert b'"result":2' in old


def test_chunked_bodies_headers_and_garbage():
    async def go():
        server, port, _ = await _serve(max_body_bytes=64, max_header_bytes=512)
        chunked = b"POST /v1/d/echo HTTP/1.1\r\nHost: x\r\n" + AUTH
        chunked += b"Transfer-Encoding: chunked\r\n\r\n"
        small = await _exchange(port, chunked + b"3\r\n[1]\r\n0\r\n\r\n", timeout=1)
        large = await _exchange(port, chunked + b"50\r\n" + b"1" * 80 + b"\r\n0\r\n\r\n")
        declared = await _exchange(port, _post(b"1" * 100))
        headers = await _exchange(port, _post(b"1", b"X-Filler: " + b"x" * 600 + b"\r\n"))
        garbage = await _exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
        await server.stop()
        return small, large, declared, headers, garbage

    small, large, declared, headers, garbage = asyncio.run(go())
    assert small.startswith(b"HTTP/1.1 200") and b'"result":1' in small
    assert large.startswith(b"HTTP/1.1 413") and declared.startswith(b"HTTP/1.1 413")
    assert headers.startswith(b"HTTP/1.1 431")
    assert garbage.startswith(b"HTTP/1.1 400")


def test_connections_beyond_the_limit_and_idle_ones_are_closed():
    async def go():
        server, port, _ = await _serve(max_connections=2, idle_timeout_s=0.4)
        kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        refused = await _exchange(port, _post(b"1"), timeout=2)
        # The kept ones send nothing: the idle sweep closes them.
        closed = [await asyncio.wait_for(reader.read(), 3) for reader, _ in kept]
        refused_count = server.service.stats.connections_refused
        await server.stop()
        return refused, closed, refused_count

    refused, closed, refused_count = asyncio.run(go())
    assert refused == b"" and refused_count == 1
    assert closed == [b"", b""]


def _client_frame(opcode: int, payload: bytes, *, final: bool = True, mask: bool = True) -> bytes:
    key = os.urandom(4)
    first = (0x80 if final else 0) | opcode
    assert len(payload) < 126
    if not mask:
        return bytes((first, len(payload))) + payload
    return bytes((first, 0x80 | len(payload))) + key + unmask(payload, key)


async def _upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET /v1/d/echo/stream HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def _server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    return first & 0x0F, await reader.readexactly(length)


def test_websocket_fragments_pings_and_protocol_errors():
    async def go():
        server, port, _ = await _serve()
        reader, writer = await _upgrade(port)
        message = msgspec.json.encode({"id": "f", "payload": "abcdef"})
        writer.write(_client_frame(1, message[:5], final=False))
        writer.write(_client_frame(9, b"hi"))  # a ping between the fragments
        writer.write(_client_frame(0, message[5:]))
        pong = await _server_frame(reader)
        reply = await _server_frame(reader)
        writer.write(_client_frame(8, (1000).to_bytes(2, "big")))
        closing = await _server_frame(reader)
        writer.close()
        reader, writer = await _upgrade(port)
        writer.write(_client_frame(2, b"\x80", mask=False))
        refused = await _server_frame(reader)
        writer.close()
        await server.stop()
        return pong, reply, closing, refused

    pong, reply, closing, refused = asyncio.run(go())
    assert pong == (10, b"hi")
    assert reply[0] == 1 and msgspec.json.decode(reply[1]) == {"id": "f", "result": "abcdef"}
    assert closing == (8, (1000).to_bytes(2, "big"))
    assert refused[0] == 8 and int.from_bytes(refused[1][:2], "big") == 1002


def test_frame_parser_checks_sizes_before_buffering():
    parser = FrameParser(max_message_bytes=10)
    assert parser.feed(_client_frame(2, b"0123456789")) == [(2, b"0123456789")]
    frame = _client_frame(1, b"hello")
    assert parser.feed(frame[:3]) == []
    assert parser.feed(frame[3:]) == [(1, b"hello")]
    with pytest.raises(FrameError) as too_big:
        # Only the header of an 11-byte frame: refused before its payload arrives.
        parser.feed(bytes((0x82, 0x80 | 11)))
    assert too_big.value.code == 1009
    for bad in (
        _client_frame(0, b"x"),  # continuation of nothing
        bytes((0xC2, 0x80)) + b"abcd",  # reserved bit set
        _client_frame(9, b"x", final=False),  # fragmented control frame
        _client_frame(3, b"x"),  # unknown opcode
    ):
        with pytest.raises(FrameError) as broken:
            FrameParser(10).feed(bad)
        assert broken.value.code == 1002


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_when_the_spec_names_a_certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    server_context = tls_context(IngressTls(cert_file=str(cert), key_file=str(key)))
    client_context = ssl.create_default_context(cafile=str(cert))

    async def go():
        server, port, _ = await _serve(server_context)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context)
        writer.write(_post(b"[1, 2]", b"Connection: close\r\n"))
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        plain = await _exchange(port, _post(b"1"), timeout=2)
        await server.stop()
        return answer, plain

    answer, plain = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 200") and b'"result":2' in answer
    assert not plain.startswith(b"HTTP/1.1 200")  # plain HTTP on a TLS port gets nowhere


def test_the_stream_client_fails_over_and_sends_again_what_was_unanswered():
    async def go():
        dying, dying_port, stalled = await _serve(replica=_StalledReplica())
        other, other_port, _ = await _serve()
        urls = [f"http://127.0.0.1:{dying_port}", f"http://127.0.0.1:{other_port}"]
        async with StreamClient(urls, "t", "d", "echo", window=64, timeout_s=10) as client:
            sends = [asyncio.ensure_future(client.send({"n": i}, f"m{i}")) for i in range(50)]
            # All in the dying gateway's hands (in its calls or queued behind them), none
            # answered.
            async with asyncio.timeout(10):
                while not stalled.calls:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            await dying.stop()
            replies = await asyncio.gather(*sends)
            state = (client.failovers, client.url, urls[1])
        await other.stop()
        for call in stalled.held:
            call.cancel()
        await asyncio.sleep(0)
        return replies, state

    replies, (failovers, url, second) = asyncio.run(go())
    assert [reply["id"] for reply in replies] == [f"m{i}" for i in range(50)]
    assert [reply["result"] for reply in replies] == [{"n": i} for i in range(50)]
    assert failovers == 1 and url == second


def test_the_stream_client_names_a_refusal_and_gives_up_when_no_gateway_answers():
    async def go():
        server, port, replica = await _serve()
        url = f"http://127.0.0.1:{port}"
        async with StreamClient([url], "wrong", "d", "echo") as client:
            with pytest.raises(GatewayError) as refused:
                await client.send({"n": 1})
        async with StreamClient([url], "t", "d", "nope") as client:
            with pytest.raises(GatewayError) as unknown:
                await client.send({"n": 1})
        await server.stop()
        await asyncio.sleep(0.05)
        async with StreamClient([url], "t", "d", "echo", retry_for_s=0.5) as client:
            with pytest.raises(GatewayError, match=r"no gateway took the stream in 0\.5s"):
                await client.send({"n": 1})
        return refused.value, unknown.value, replica.calls

    refused, unknown, calls = asyncio.run(go())
    assert refused.status == 401 and "HTTP 401" in str(refused)
    assert unknown.status == 404 and "nope" in str(unknown)
    assert calls == []
