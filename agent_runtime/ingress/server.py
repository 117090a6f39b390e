"""The transport: HTTP/1.1 by httptools (Node's llhttp) in a plain asyncio Protocol, and the
WebSocket upgrade into `websocket.WebSocketChannel`, all on one port.

Chosen over aiohttp, uvicorn and granian by measurement (notes of 2026-12-03: 3-10x the
requests per CPU second, a tenth of the memory per connection). It only translates bytes to
`IngressService` requests and `StreamSession`s, so the core does not depend on it. What a
server library would do, and this does: keep-alive and pipelining (answered in order),
`Connection: close` and HTTP/1.0, header and body limits checked while parsing (llhttp has
none), bounded write buffers (reading pauses while a client does not take its answers),
idle connections closed, and at most `max_connections` open.
"""

from __future__ import annotations

import asyncio
import http
import ssl
from collections import deque
from typing import cast

import httptools

from agent_runtime.ingress.service import HttpReply, IngressService, error_body
from agent_runtime.ingress.stream import StreamSession
from agent_runtime.ingress.websocket import (
    CLOSE_NORMAL,
    WebSocketChannel,
    accept_key,
)

LISTEN_BACKLOG = 4096
# Requests parsed ahead of their answers on one connection before reading pauses.
MAX_PIPELINED = 16
WRITE_BUFFER_HIGH = 1 << 18
_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class _Request:
    """A parsed request as the core's RequestView."""

    __slots__ = ("_body", "headers", "keep_alive", "method", "path")

    def __init__(
        self, method: str, path: str, headers: dict[str, str], body: bytes, keep_alive: bool
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self._body = body
        self.keep_alive = keep_alive

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    async def body(self, limit: int) -> bytes:
        return self._body  # the parser enforced the limit already


def _encode(reply: HttpReply, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {reply.status} {_PHRASES.get(reply.status, '')}\r\n"
        f"Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
    ]
    lines += [f"{name}: {value}\r\n" for name, value in reply.headers]
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + reply.body


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._service = server.service
        self._limits = server.service.limits
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._header_bytes = 0
        self._body = bytearray()
        self._requests: deque[_Request] = deque()
        self._serving: asyncio.Task[None] | None = None
        self._channel: WebSocketChannel | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._failed = False
        self.last_active = self._loop.time()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if not self._server.admit(self):
            transport.abort()
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._server.forget(self)
        self._transport = None
        if self._channel is not None:
            self._channel.lost()
        self._wake_drain()

    def data_received(self, data: bytes) -> None:
        if self._channel is not None:
            self._channel.feed(data)
            return
        if self._failed:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade(data[upgrade.args[0] :])
        except httptools.HttpParserError:
            if not self._failed:
                self._fail(400, "malformed HTTP request")

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._url, self._headers, self._header_bytes, self._body = b"", {}, 0, bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count_header_bytes(len(name) + len(value) + 4):
            self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def _count_header_bytes(self, size: int) -> bool:
        self._header_bytes += size
        if self._header_bytes <= self._limits.max_header_bytes or self._failed:
            return not self._failed
        self._fail(431, f"request headers over {self._limits.max_header_bytes} bytes")
        return False

    def on_headers_complete(self) -> None:
        if self._failed:
            return
        length = self._headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limits.max_body_bytes:
            self._fail(413, f"body of {length} bytes; the limit is {self._limits.max_body_bytes}")

    def on_body(self, body: bytes) -> None:
        if self._failed:
            return
        self._body += body
        if len(self._body) > self._limits.max_body_bytes:
            self._fail(413, f"body over the limit of {self._limits.max_body_bytes} bytes")

    def on_message_complete(self) -> None:
        if self._failed or self._parser.should_upgrade():
            return  # an upgrade is answered once the parser has stopped at it
        self._requests.append(self._request(bytes(self._body)))
        self.last_active = self._loop.time()
        if len(self._requests) >= MAX_PIPELINED:
            self.pause_reading()
        if self._serving is None:
            self._serving = asyncio.ensure_future(self._serve())

    def _request(self, body: bytes) -> _Request:
        path = self._url.partition(b"?")[0].decode("latin-1")
        method = self._parser.get_method().decode("latin-1")
        return _Request(method, path, self._headers, body, self._parser.should_keep_alive())

    # answering

    async def _serve(self) -> None:
        try:
            while self._requests and self._transport is not None:
                request = self._requests[0]
                try:
                    reply = await self._service.http(request)
                except Exception as error:  # a bug must cost one answer, not the gateway
                    reply = error_body(500, f"gateway error: {type(error).__name__}")
                    request.keep_alive = False
                self._requests.popleft()
                self.write(_encode(reply, request.keep_alive))
                self.last_active = self._loop.time()
                if not request.keep_alive:
                    self.close()
                    return
                try:
                    async with asyncio.timeout(self._limits.send_timeout_s):
                        await self.drain()
                except TimeoutError:
                    self.abort()  # it takes no answers: drop it (see send_timeout_s)
                    return
                if self._reading_paused and len(self._requests) < MAX_PIPELINED // 2:
                    self.resume_reading()
        finally:
            self._serving = None

    def _fail(self, status: int, reason: str) -> None:
        """Answer a request that cannot be parsed or is over a limit, and close: the rest of
        the stream cannot be trusted to start at a request."""
        self._failed = True
        self._service.stats.responses[("http", status)] += 1
        self.write(_encode(error_body(status, reason), keep_alive=False))
        self.close()

    def _upgrade(self, rest: bytes) -> None:
        request = self._request(b"")
        target = self._service.stream_target(request)
        if isinstance(target, HttpReply):
            self._failed = True
            self.write(_encode(target, keep_alive=False))
            self.close()
            return
        key = request.header("Sec-WebSocket-Key")
        upgrade = (request.header("Upgrade") or "").lower()
        if upgrade != "websocket" or not key or request.header("Sec-WebSocket-Version") != "13":
            self._fail(400, "a WebSocket upgrade needs Upgrade: websocket, a key and version 13")
            return
        self.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % accept_key(key).encode()
        )
        self._channel = WebSocketChannel(self, self._limits.max_frame_bytes)
        session = StreamSession(target, self._channel, self._limits)
        self._serving = asyncio.ensure_future(self._stream(session))
        if rest:
            self._channel.feed(rest)

    async def _stream(self, session: StreamSession) -> None:
        await session.run()
        if self._channel is not None and not self._channel.closed:
            await self._channel.close(CLOSE_NORMAL, "")

    # what the core and the channel use

    @property
    def writing_paused(self) -> bool:
        """The transport's buffer is above its high-water mark: the client is behind."""
        return self._writing_paused

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    async def drain(self) -> None:
        """Until the client has taken enough of what was written (bounded write buffers)."""
        while self._writing_paused and self._transport is not None:
            self._drained = self._loop.create_future()
            await self._drained

    def _wake_drain(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_reading(self) -> None:
        if self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and self._reading_paused:
            self._reading_paused = False
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def idle_since(self) -> float | None:
        """When it last did anything, if it is an HTTP connection with nothing to answer."""
        if self._channel is not None or self._requests or self._serving is not None:
            return None
        return self.last_active


class HttpServer:
    def __init__(self, service: IngressService) -> None:
        self.service = service
        self._connections: set[HttpConnection] = set()
        self._listener: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Listen (sharing the port with the node's other gateway processes); the bound port."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: HttpConnection(self),
            host,
            port,
            ssl=tls,
            reuse_port=True,
            backlog=LISTEN_BACKLOG,
        )
        self._sweeper = asyncio.ensure_future(self._close_idle())
        return self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            self._listener.close()
        for connection in list(self._connections):
            connection.close()

    def admit(self, connection: HttpConnection) -> bool:
        stats = self.service.stats
        if len(self._connections) >= self.service.limits.max_connections:
            stats.connections_refused += 1
            return False
        self._connections.add(connection)
        stats.connections = len(self._connections)
        return True

    def forget(self, connection: HttpConnection) -> None:
        self._connections.discard(connection)
        self.service.stats.connections = len(self._connections)

    async def _close_idle(self) -> None:
        # One sweep for all connections instead of a timer per connection and request.
        timeout = self.service.limits.idle_timeout_s
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(timeout / 4, 5.0))
            now = loop.time()
            for connection in list(self._connections):
                since = connection.idle_since()
                if since is not None and now - since > timeout:
                    connection.close()
