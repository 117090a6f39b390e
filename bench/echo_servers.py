"""Echo servers: the ingress gateway's protocol answered by each candidate server library.

Every server speaks the same contract as the gateway (agent_runtime/ingress), with the agent
replaced by an echo, so that the load generator (bench/loadgen.py) can drive any of them:

- ``POST /v1/{deployment}/{agent}``: a JSON message ``{"id": ..., "payload": ...}`` or a
  list of them; the answer is ``{"id": ..., "result": payload}`` (or a list, in order).
- ``GET /v1/{deployment}/{agent}/stream``: WebSocket, one message per frame, one answer
  frame per message carrying its id.
- ``GET /healthz``: 200.

Each ``serve_*`` coroutine runs in the caller's event loop on a listening socket it is given
(SO_REUSEPORT, so several processes share a port), which is how the gateway runs inside a
Ray actor. ``run_echo_server`` is the entry point of one server process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import resource
import socket
from collections.abc import Awaitable, Callable

import msgspec

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

HEALTHZ = "/healthz"


def echo_reply(body: bytes | str) -> bytes:
    """The echo agent: what the gateway would get back from a trivial agent, encoded."""
    message = _decode(body)
    if isinstance(message, list):
        return _encode([{"id": item["id"], "result": item.get("payload")} for item in message])
    return _encode({"id": message["id"], "result": message.get("payload")})


def is_stream_path(path: str) -> bool:
    return path.startswith("/v1/") and path.endswith("/stream")


def reuseport_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """A listening socket that other processes can bind too: the kernel spreads connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


# --- aiohttp -------------------------------------------------------------------------------


async def serve_aiohttp(sock: socket.socket) -> None:
    from aiohttp import WSMsgType, web

    async def post(request: web.Request) -> web.Response:
        reply = echo_reply(await request.read())
        return web.Response(body=reply, content_type="application/json")

    async def stream(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=True)
        await ws.prepare(request)
        async for frame in ws:
            if frame.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                await ws.send_bytes(echo_reply(frame.data))
        return ws

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/{deployment}/{agent}", post)
    app.router.add_get("/v1/{deployment}/{agent}/stream", stream)
    app.router.add_get(HEALTHZ, healthz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await asyncio.Event().wait()


# --- uvicorn (httptools for HTTP, a choice of WebSocket implementations) --------------------


async def echo_asgi(scope: dict, receive: Callable, send: Callable) -> None:
    """A bare ASGI app (no framework), so uvicorn's own cost is what is measured."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            data = event.get("bytes") or event.get("text")
            await send({"type": "websocket.send", "bytes": echo_reply(data)})
    if scope["type"] != "http":
        return
    body = b""
    while True:
        event = await receive()
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    reply = b"ok" if scope["path"] == HEALTHZ else echo_reply(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(reply))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": reply})


def uvicorn_server(ws: str) -> Callable[[socket.socket], Awaitable[None]]:
    async def serve(sock: socket.socket) -> None:
        import uvicorn

        config = uvicorn.Config(
            echo_asgi,
            loop="none",
            http="httptools",
            ws=ws,
            ws_per_message_deflate=False,
            lifespan="off",
            access_log=False,
            log_level="warning",
            backlog=4096,
        )
        await uvicorn.Server(config).serve(sockets=[sock])

    return serve


# --- granian (Rust I/O; embedded mode runs the app in this process's asyncio loop) ---------


async def echo_rsgi(scope, protocol) -> None:
    if scope.proto == "ws":
        transport = await protocol.accept()
        while True:
            message = await transport.receive()
            if message.kind == 0:  # close
                return
            await transport.send_bytes(echo_reply(message.data))
    body = await protocol()
    reply = b"ok" if scope.path == HEALTHZ else echo_reply(body)
    protocol.response_bytes(200, [("content-type", "application/json")], reply)


async def serve_granian(sock: socket.socket) -> None:
    from granian.constants import Interfaces
    from granian.server.embed import Server

    # Granian binds its own listener: hand it the address and let the probe socket go.
    host, port = sock.getsockname()
    sock.close()
    server = Server(
        echo_rsgi,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        backlog=4096,
        log_enabled=False,
    )
    await server.serve()


# --- websockets (WebSocket only; HTTP requests other than the upgrade are refused) --------


async def serve_websockets(sock: socket.socket) -> None:
    from websockets.asyncio.server import serve
    from websockets.http11 import Response

    async def handler(connection) -> None:
        async for data in connection:
            await connection.send(echo_reply(data))

    def health(connection, request) -> Response | None:
        if request.path == HEALTHZ:
            return connection.respond(200, "ok\n")
        return None

    async with serve(
        handler,
        sock=sock,
        compression=None,
        process_request=health,
        ping_interval=None,
        max_queue=16,
    ):
        await asyncio.Event().wait()


# --- picows (Cython WebSocket; a GET answer is possible, a POST body is not) ---------------


async def serve_picows(sock: socket.socket) -> None:
    from picows import (
        WSListener,
        WSMsgType,
        WSUpgradeResponse,
        WSUpgradeResponseWithListener,
        ws_create_server,
    )

    class Echo(WSListener):
        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                transport.send(WSMsgType.BINARY, echo_reply(frame.get_payload_as_bytes()))
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    def route(request):
        path = request.path.decode()  # picows hands over the raw bytes
        if path == HEALTHZ:
            return WSUpgradeResponseWithListener(WSUpgradeResponse.create_error_response(200), None)
        return Echo() if is_stream_path(path) else None

    server = await ws_create_server(route, sock=sock)
    await server.serve_forever()


# --- plain asyncio Protocol + httptools + a minimal WebSocket framing -----------------------

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode: int, payload: bytes, mask: bytes = b"") -> bytes:
    """One FIN frame; servers send unmasked, clients pass a 4-byte mask (RFC 6455 5.2)."""
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = bytes((0x80 | opcode, mask_bit | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, mask_bit | 127)) + length.to_bytes(8, "big")
    return header + mask + (unmask(payload, mask) if mask else payload)


def unmask(payload: bytes, mask: bytes) -> bytes:
    # One big-integer XOR instead of a Python loop per byte.
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


def parse_ws_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Complete frames at the front of buffer (consumed from it): (opcode, unmasked payload)."""
    frames = []
    offset = 0
    size = len(buffer)
    while size - offset >= 2:
        opcode = buffer[offset] & 0x0F
        masked = buffer[offset + 1] & 0x80
        length = buffer[offset + 1] & 0x7F
        start = offset + 2
        if length == 126:
            length = int.from_bytes(buffer[start : start + 2], "big")
            start += 2
        elif length == 127:
            length = int.from_bytes(buffer[start : start + 8], "big")
            start += 8
        mask = b""
        if masked:
            mask = bytes(buffer[start : start + 4])
            start += 4
        if size < start + length:
            break
        payload = bytes(buffer[start : start + length])
        frames.append((opcode, unmask(payload, mask) if mask else payload))
        offset = start + length
    del buffer[:offset]
    return frames


class RawHTTPWebSocket(asyncio.Protocol):
    """HTTP/1.1 keep-alive by httptools, then WebSocket frames by hand after an upgrade."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.ws_buffer: bytearray | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.ws_buffer is not None:
            self.ws_buffer += data
            self.on_ws_data()
            return
        import httptools

        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.parser.should_upgrade():
            return  # answered in upgrade(), once the parser has raised
        reply = b"ok" if self.url == HEALTHZ.encode() else echo_reply(b"".join(self.body))
        self.transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(reply), reply)
        )
        self.url, self.headers, self.body = b"", {}, []

    def upgrade(self, rest: bytes) -> None:
        key = self.headers.get(b"sec-websocket-key")
        if key is None or not is_stream_path(self.url.decode()):
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: upgrade\r\nsec-websocket-accept: %s\r\n\r\n" % accept
        )
        self.ws_buffer = bytearray(rest)
        self.headers, self.body = {}, []
        self.on_ws_data()

    def on_ws_data(self) -> None:
        replies = []
        for opcode, payload in parse_ws_frames(self.ws_buffer):
            if opcode in (1, 2):
                replies.append(ws_frame(2, echo_reply(payload)))
            elif opcode == 9:  # ping
                replies.append(ws_frame(10, payload))
            elif opcode == 8:  # close
                replies.append(ws_frame(8, payload[:2]))
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
        if replies:
            self.transport.write(b"".join(replies))


async def serve_raw(sock: socket.socket) -> None:
    server = await asyncio.get_running_loop().create_server(RawHTTPWebSocket, sock=sock)
    await server.serve_forever()


ServeFunction = Callable[[socket.socket], Awaitable[None]]

# name -> (serve coroutine, serves HTTP POST and WebSocket on one port)
ECHO_SERVERS: dict[str, tuple[ServeFunction, bool]] = {
    "aiohttp": (serve_aiohttp, True),
    "uvicorn+websockets": (uvicorn_server("websockets-sansio"), True),
    "uvicorn+wsproto": (uvicorn_server("wsproto"), True),
    "granian": (serve_granian, True),
    "websockets": (serve_websockets, False),
    "picows": (serve_picows, False),
    "raw-httptools": (serve_raw, True),
}


async def _exit_with_parent(parent: int, lifetime_s: float) -> None:
    """Stop by ourselves: when the bench that started us is gone, or after lifetime_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime_s
    while os.getppid() == parent and loop.time() < deadline:
        await asyncio.sleep(0.5)
    os._exit(0)


async def _serve_until_orphaned(library: str, host: str, port: int, lifetime_s: float) -> None:
    serve, _ = ECHO_SERVERS[library]
    watchdog = asyncio.ensure_future(_exit_with_parent(os.getppid(), lifetime_s))
    await serve(reuseport_socket(host, port))
    await watchdog


def raise_open_file_limit() -> int:
    """Soft limit up to the hard one (20,000 here; nothing may go above it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_echo_server(library: str, host: str, port: int, lifetime_s: float = 600.0) -> None:
    """Entry point of one server process (several of them may share the port)."""
    import uvloop

    raise_open_file_limit()
    # Clients here drop connections by reset; the libraries' tracebacks for that are noise.
    logging.disable(logging.CRITICAL)
    uvloop.run(_serve_until_orphaned(library, host, port, lifetime_s))
