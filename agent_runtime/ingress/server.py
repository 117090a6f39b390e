"""The transport: aiohttp's low-level server (HTTP/1.1 keep-alive and WebSocket on one port).

Everything here is translation between aiohttp and `IngressService` / `StreamSession`, so
another server library can replace this module without touching auth, codecs, routing,
coalescing or backpressure.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiohttp import WSMsgType, hdrs, web, web_protocol, web_server

from agent_runtime.ingress.errors import ClientError
from agent_runtime.ingress.service import HttpReply, IngressService
from agent_runtime.ingress.stream import StreamSession

LISTEN_BACKLOG = 4096


class _Request:
    """An aiohttp request seen as the core's RequestView."""

    __slots__ = ("_request", "method", "path")

    def __init__(self, request: web.BaseRequest) -> None:
        self._request = request
        self.method = request.method
        self.path = request.path

    def header(self, name: str) -> str | None:
        return self._request.headers.get(name)

    async def body(self, limit: int) -> bytes:
        length = self._request.content_length
        if length is not None and length > limit:
            raise ClientError(413, f"body of {length} bytes; the limit is {limit}")
        content = self._request.content
        if length is not None:
            return await content.readexactly(length)
        body = bytearray()
        while chunk := await content.readany():
            body += chunk
            if len(body) > limit:
                raise ClientError(413, f"body over the limit of {limit} bytes")
        return bytes(body)


class _Channel:
    """An aiohttp WebSocket seen as the core's FrameChannel."""

    def __init__(self, websocket: web.WebSocketResponse, request: web.BaseRequest) -> None:
        self._socket = websocket
        self._request = request

    async def receive(self, timeout: float) -> bytes | str | None:
        while True:
            message = await self._socket.receive(timeout)
            if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                return message.data
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return None
            if message.type is WSMsgType.ERROR:
                return None  # e.g. a frame over max_frame_bytes: aiohttp closes with 1009

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            await self._socket.send_bytes(data)
        else:
            await self._socket.send_str(data)

    async def close(self, code: int, reason: str) -> None:
        await self._socket.close(code=code, message=reason.encode())

    def abort(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.abort()


class _BoundedServer(web_server.Server):
    """aiohttp's connection manager, refusing connections beyond max_connections."""

    def __init__(self, service: IngressService, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._service = service

    def connection_made(
        self, handler: web_protocol.RequestHandler, transport: asyncio.Transport
    ) -> None:
        stats = self._service.stats
        if len(self._connections) >= self._service.limits.max_connections:
            stats.connections_refused += 1
            transport.close()
            return
        super().connection_made(handler, transport)
        stats.connections = len(self._connections)

    def connection_lost(
        self, handler: web_protocol.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._service.stats.connections = len(self._connections)


def _response(reply: HttpReply) -> web.Response:
    headers = {hdrs.CONTENT_TYPE: reply.content_type, **dict(reply.headers)}
    return web.Response(status=reply.status, body=reply.body, headers=headers)


class HttpServer:
    def __init__(self, service: IngressService) -> None:
        self._service = service
        limits = service.limits
        self._server = _BoundedServer(
            service,
            handler=self._handle,
            keepalive_timeout=limits.idle_timeout_s,
            max_line_size=limits.max_header_bytes,
            max_field_size=limits.max_header_bytes,
            access_log=None,
        )
        self._listener: asyncio.Server | None = None

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None) -> int:
        """Listen (sharing the port with the node's other gateway processes); the bound port."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._server,
            host,
            port,
            ssl=tls,
            reuse_port=True,
            backlog=LISTEN_BACKLOG,
        )
        return self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._server.pre_shutdown()
            await self._server.shutdown(1.0)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await self._stream(request)
        return _response(await self._service.http(_Request(request)))

    async def _stream(self, request: web.BaseRequest) -> web.StreamResponse:
        target = self._service.stream_target(_Request(request))
        if isinstance(target, HttpReply):
            return _response(target)
        limits = self._service.limits
        websocket = web.WebSocketResponse(
            max_msg_size=limits.max_frame_bytes,
            heartbeat=limits.idle_timeout_s / 2,
            compress=False,  # deflate state costs ~50 KiB per connection
        )
        await websocket.prepare(request)
        await StreamSession(target, _Channel(websocket, request), limits).run()
        transport = request.transport
        if not websocket.closed and transport is not None and not transport.is_closing():
            await websocket.close()
        return websocket
