"""A WebSocket client of a deployment's gateways that fails over, for producers that stream
(asyncio, standard library only, like `httpclient.GatewayClient` for HTTP).

Every message keeps its frame until its reply comes. When the connection drops (the gateway's
node went down, or Ray restarted the gateway), the client connects to the next gateway and
sends again every message still unanswered, with the same ids. Gateways place a message that
has a client id by hashing the id (a keyed one by its key), so a message the first gateway had
already handed on reaches the replica that remembers its answer and is not handled twice: a
reply means the message was handled, once.

At most `window` messages are unanswered at once: `send` waits for room. That, and the
gateway's own push-back (it stops reading a client whose replicas are full), keep both
sides' memory bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

from agent_runtime.ingress.httpclient import GatewayError, split_gateway_urls
from agent_runtime.ingress.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_key,
    unmask,
)

_MAX_HANDSHAKE_BYTES = 16384
_REFUSED_DELAY_S = 0.2
# Statuses that say the request is wrong, not the gateway: another gateway would say the same.
_FINAL_STATUSES = (400, 401, 403, 404)


class _Lost(Exception):
    """The connection or the handshake failed in a way another gateway may not."""


class StreamClient:
    """`send` one message at a time from as many tasks as you like; each returns its reply,
    `{"id", "result"}` or `{"id", "error", "status"}` (see the README's wire format)."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        deployment: str,
        agent: str,
        *,
        window: int = 1024,
        timeout_s: float = 30.0,
        retry_for_s: float = 30.0,
        ca_file: str | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._urls = split_gateway_urls(urls)
        self._token = token
        self._path = f"/v1/{urllib.parse.quote(deployment)}/{urllib.parse.quote(agent)}/stream"
        self._timeout_s = timeout_s
        self._retry_for_s = retry_for_s
        self._ca_file = ca_file
        self._room = asyncio.Semaphore(window)
        self._current = 0
        # id -> (frame, future of its reply): what is resent after a failover.
        self._pending: dict[str, tuple[bytes, asyncio.Future[dict[str, Any]]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self.failovers = 0

    @property
    def url(self) -> str:
        """The gateway the client is connected to, or tries next."""
        return urllib.parse.urlunsplit(self._urls[self._current])

    async def __aenter__(self) -> StreamClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def send(self, payload: Any, message_id: str | None = None) -> dict[str, Any]:
        """Send one message and wait for its reply. `message_id` (default: a fresh UUID) is
        its idempotency key: send it again with the same id and it is not handled twice."""
        if self._closed:
            raise GatewayError("the client is closed")
        message_id = message_id or uuid.uuid4().hex
        async with self._room:
            if message_id in self._pending:
                raise ValueError(f"message {message_id!r} is already in flight")
            frame = _client_frame(OP_TEXT, json.dumps({"id": message_id, "payload": payload}))
            reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending[message_id] = (frame, reply)
            try:
                if self._writer is not None:
                    self._writer.write(frame)
                if self._runner is None or self._runner.done():
                    self._runner = asyncio.create_task(self._run())
                return await asyncio.wait_for(reply, self._timeout_s)
            except TimeoutError:
                raise GatewayError(
                    f"no reply to {message_id!r} in {self._timeout_s:g}s (from {self.url})"
                ) from None
            finally:
                self._pending.pop(message_id, None)

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._writer.write(_client_frame(OP_CLOSE, ""))
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        self._fail_all(GatewayError("the client was closed with the message unanswered"))

    async def _run(self) -> None:
        """Connected while messages wait for replies: on loss, the next gateway, and every
        unanswered message sent again there."""
        refused_since: float | None = None
        while self._pending and not self._closed:
            try:
                reader, writer = await self._connect()
            except GatewayError as error:
                self._fail_all(error)
                return
            except (OSError, TimeoutError, _Lost) as error:
                now = time.monotonic()
                refused_since = refused_since or now
                if now - refused_since > self._retry_for_s:
                    self._fail_all(
                        GatewayError(
                            f"no gateway took the stream in {self._retry_for_s:g}s; "
                            f"last: {self.url}: {error or type(error).__name__}"
                        )
                    )
                    return
                self._fail_over()
                if self._current == 0:  # once round every gateway: a moment before the next
                    await asyncio.sleep(_REFUSED_DELAY_S)
                continue
            refused_since = None
            for frame, _ in list(self._pending.values()):
                writer.write(frame)
            self._writer = writer
            try:
                await self._read(reader, writer)
            except (OSError, asyncio.IncompleteReadError, _Lost):
                pass
            finally:
                self._writer = None
                writer.close()
            if self._pending and not self._closed:
                self._fail_over()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        url = self._urls[self._current]
        secure = url.scheme in ("https", "wss")
        context = ssl.create_default_context(cafile=self._ca_file) if secure else None
        port = url.port or (443 if secure else 80)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.hostname, port, ssl=context), self._timeout_s
        )
        try:
            await asyncio.wait_for(self._handshake(reader, writer, url), self._timeout_s)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        url: urllib.parse.SplitResult,
    ) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {url.path.rstrip('/')}{self._path} HTTP/1.1\r\n"
                f"Host: {url.netloc}\r\n"
                f"Authorization: Bearer {self._token}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _Lost("the gateway's handshake answer is too long") from None
        if len(head) > _MAX_HANDSHAKE_BYTES:
            raise _Lost("the gateway's handshake answer is too long")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        if status == 101:
            if headers.get("sec-websocket-accept") != accept_key(key):
                raise _Lost("the gateway's Sec-WebSocket-Accept does not match")
            return
        reason = await _body_reason(reader, headers)
        problem = f"{self.url}: HTTP {status}: {reason}"
        if status in _FINAL_STATUSES:
            raise GatewayError(problem, status)
        raise _Lost(problem)

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fragments: list[bytes] = []
        while True:
            first, second = await reader.readexactly(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length >= 126:
                length = int.from_bytes(await reader.readexactly(2 if length == 126 else 8), "big")
            payload = await reader.readexactly(length)
            if opcode == OP_CLOSE:
                return
            if opcode == OP_PING:
                writer.write(_client_frame(OP_PONG, payload))
                continue
            if opcode not in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                continue
            fragments.append(payload)
            if first & 0x80:
                self._answer(b"".join(fragments))
                fragments = []

    def _answer(self, data: bytes) -> None:
        try:
            reply = json.loads(data)
            message_id = reply["id"]
        except (ValueError, KeyError, TypeError):
            raise _Lost(f"the gateway sent a frame that is not a reply: {data[:100]!r}") from None
        _, future = self._pending.pop(message_id, (None, None))
        if future is not None and not future.done():
            future.set_result(reply)

    def _fail_over(self) -> None:
        self._current = (self._current + 1) % len(self._urls)
        self.failovers += 1

    def _fail_all(self, error: GatewayError) -> None:
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(error)


def _client_frame(opcode: int, text: str | bytes) -> bytes:
    """One final frame, masked as RFC 6455 asks of clients (masking is its own inverse)."""
    payload = text.encode() if isinstance(text, str) else text
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return header + mask + (unmask(payload, mask) if payload else b"")


async def _body_reason(reader: asyncio.StreamReader, headers: dict[str, str]) -> str:
    try:
        length = min(int(headers.get("content-length", "0")), _MAX_HANDSHAKE_BYTES)
        body = await reader.readexactly(length)
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError, asyncio.IncompleteReadError):
        return "no reason given"
