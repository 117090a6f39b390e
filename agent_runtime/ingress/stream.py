"""One WebSocket client: frames in, reply frames out, and pushing back instead of buffering.

Backpressure is by not reading: when the agent's replicas are full, or this client has
`max_in_flight_per_connection` frames unanswered (replies not yet handed to the socket), the
session stops taking frames; the server library's small receive buffer fills, the kernel's
fills, and TCP flow control stops the client. Replies go out through one writer per session;
a client that reads nothing for `send_timeout_s` is dropped, so it holds at most its
in-flight bound of replies, and never holds up anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

from agent_runtime.agent import Message
from agent_runtime.ingress import envelope
from agent_runtime.ingress.coalescer import AgentRoute
from agent_runtime.ingress.codec import JSON, MSGPACK, Codec
from agent_runtime.ingress.errors import ClientError
from agent_runtime.spec import IngressLimits

CLOSE_NORMAL = 1000


class FrameChannel(Protocol):
    async def receive(self, timeout: float) -> tuple[bytes, bool] | None:
        """The next message, (data, is_binary); None once closed; TimeoutError."""
        ...

    async def send_many(self, frames: list[tuple[bytes, bool]], timeout_s: float) -> None:
        """Send (data, is_binary) messages; returns once the socket has taken them, or
        TimeoutError if the client has not within timeout_s."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """The closing handshake (for a client that still reads)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once (for a client that does not read)."""
        ...


class _Sink:
    """Replies to frames of one encoding (text frames JSON, binary frames MessagePack)."""

    __slots__ = ("codec", "session")

    def __init__(self, session: StreamSession, codec: Codec) -> None:
        self.session = session
        self.codec = codec

    def resolve(self, index: int, reply: dict[str, Any]) -> None:
        data, _ = self.codec.encode_reply(reply)
        self.session.queue_reply(data, self.codec.binary)


class StreamSession:
    def __init__(self, route: AgentRoute, channel: FrameChannel, limits: IngressLimits) -> None:
        self._route = route
        self._channel = channel
        self._limits = limits
        self._sinks = {False: _Sink(self, JSON), True: _Sink(self, MSGPACK)}
        self._outbox: deque[tuple[bytes, bool]] = deque()
        self._unanswered = 0  # frames taken whose reply is not yet written
        self._have_replies = asyncio.Event()
        self._replies_written = asyncio.Event()
        self._closed = False

    async def run(self) -> None:
        writer = asyncio.ensure_future(self._write_loop())
        try:
            await self._read_loop()
        finally:
            self._closed = True
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _read_loop(self) -> None:
        while not self._closed:
            while self._unanswered >= self._limits.max_in_flight_per_connection:
                self._replies_written.clear()
                await self._replies_written.wait()
                if self._closed:
                    return
            try:
                frame = await self._channel.receive(self._limits.idle_timeout_s)
            except TimeoutError:
                if self._unanswered == 0:
                    await self._channel.close(CLOSE_NORMAL, "idle")
                    return
                continue
            if frame is None:
                return
            self._unanswered += 1
            await self._admit(*frame)

    async def _admit(self, data: bytes, binary: bool) -> None:
        sink = self._sinks[binary]
        field = self._route.spec.routing_key
        decoded: Any = None
        try:
            decoded = sink.codec.decode(data)
            client_id, payload = envelope.frame_message(decoded)
            key = envelope.routing_key(payload, field)
        except ClientError as error:
            self._route.stats.messages[(self._route.agent, "invalid")] += 1
            reply = envelope.error_reply(envelope.frame_id(decoded), error.status, error.reason)
            sink.resolve(0, reply)
            return
        message = Message(envelope.CLIENT_ID_PREFIX + client_id, payload, key)
        hash_keys = [key if field is not None else message.id]
        while (lanes := self._route.assign(hash_keys)) is None:
            # Full: wait without reading further frames (see the module docstring).
            await self._route.wait_for_room()
            if self._closed:
                return
        self._route.submit([message], [client_id], lanes, sink)

    def queue_reply(self, data: bytes, binary: bool) -> None:
        if self._closed:
            return  # the client left; its messages were still delivered
        self._outbox.append((data, binary))
        self._have_replies.set()

    async def _write_loop(self) -> None:
        while True:
            await self._have_replies.wait()
            self._have_replies.clear()
            try:
                while self._outbox:
                    # Everything ready goes in one write; replies of one batch arrive together.
                    frames = list(self._outbox)
                    self._outbox.clear()
                    await self._channel.send_many(frames, self._limits.send_timeout_s)
                    self._unanswered -= len(frames)
                    self._replies_written.set()
            except (TimeoutError, ConnectionError):
                # Not reading its replies, or gone: a closing handshake would wait on it too.
                self._closed = True
                self._replies_written.set()
                self._channel.abort()
                return
