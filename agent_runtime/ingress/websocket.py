"""WebSocket (RFC 6455) on the server side, after an HTTP/1.1 upgrade: the handshake, the
frame parser and the channel a `StreamSession` reads and writes.

Own code rather than a library's: measured here (notes of 2026-12-03, bench/ingress_servers.py
on the ingress-bench branch) a plain asyncio Protocol with this framing served 3-7x the
frames per CPU second of aiohttp, uvicorn or websockets, with 2.3 KiB per idle connection
against 13-28 KiB. Extensions (permessage-deflate) are not offered: deflate state costs tens
of KiB per connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import deque
from typing import Protocol

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
MAX_CONTROL_PAYLOAD = 125
# Frames parsed but not yet taken by the session; past this the socket is not read.
READ_AHEAD_BYTES = 1 << 16


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (servers never mask)."""
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, length))
    elif length < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:120])


def unmask(payload: bytes, mask: bytes) -> bytes:
    # One big-integer XOR instead of a Python loop per byte.
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        length, "little"
    )


class FrameError(Exception):
    """The client broke the protocol or a limit: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameParser:
    """Bytes in, whole messages and control frames out, (opcode, payload).

    A frame's length is checked against the limit from its header, before its payload is
    buffered, so an oversized message costs its sender a close, not the gateway memory.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = 0
        self._fragment_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        buffer = self._buffer
        out: list[tuple[int, bytes]] = []
        offset = 0
        while len(buffer) - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            opcode, final = first & 0x0F, bool(first & 0x80)
            if first & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension agreed")
            if not second & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            length, start = second & 0x7F, offset + 2
            if length >= 126:
                width = 2 if length == 126 else 8
                if len(buffer) < start + width:
                    break
                length = int.from_bytes(buffer[start : start + width], "big")
                start += width
            self._check(opcode, final, length)
            end = start + 4 + length
            if len(buffer) < end:
                break
            payload = unmask(bytes(buffer[start + 4 : end]), bytes(buffer[start : start + 4]))
            offset = end
            message = self._assemble(opcode, final, payload)
            if message is not None:
                out.append(message)
        del buffer[:offset]
        return out

    def _check(self, opcode: int, final: bool, length: int) -> None:
        if opcode >= OP_CLOSE:
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not final or length > MAX_CONTROL_PAYLOAD:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "control frames are short and whole")
            return
        if opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        else:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if self._fragment_size + length > self._max:
            raise FrameError(CLOSE_TOO_BIG, f"message over {self._max} bytes")

    def _assemble(self, opcode: int, final: bool, payload: bytes) -> tuple[int, bytes] | None:
        if opcode >= OP_CLOSE or (final and self._fragments is None):
            return opcode, payload
        if self._fragments is None:
            self._fragments, self._fragment_opcode = [], opcode
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        if not final:
            return None
        message = (self._fragment_opcode, b"".join(self._fragments))
        self._fragments, self._fragment_size = None, 0
        return message


class Connection(Protocol):
    """What the channel needs from the HTTP connection it took over."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class WebSocketChannel:
    """One upgraded connection as a FrameChannel: frames are parsed as bytes arrive and wait
    (a bounded amount, then reading pauses) until the session takes them."""

    def __init__(self, connection: Connection, max_message_bytes: int) -> None:
        self._connection = connection
        self._parser = FrameParser(max_message_bytes)
        self._frames: deque[tuple[bytes, bool]] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def feed(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            messages = self._parser.feed(data)
        except FrameError as error:
            self._fail(error.code, error.reason)
            return
        for opcode, payload in messages:
            if opcode in (OP_TEXT, OP_BINARY):
                self._frames.append((payload, opcode == OP_BINARY))
                self._buffered += len(payload)
            elif opcode == OP_PING:
                self._connection.write(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else CLOSE_NORMAL
                self._fail(code, "")
                break
        if self._buffered > READ_AHEAD_BYTES and not self._paused:
            self._paused = True
            self._connection.pause_reading()
        self._wake()

    def _fail(self, code: int, reason: str) -> None:
        self._connection.write(close_frame(code, reason))
        self._connection.close()
        self.lost()

    def lost(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive(self, timeout: float) -> tuple[bytes, bool] | None:
        while not self._frames:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(timeout):
                await self._waiter
        frame = self._frames.popleft()
        self._buffered -= len(frame[0])
        if self._paused and self._buffered <= READ_AHEAD_BYTES // 2:
            self._paused = False
            self._connection.resume_reading()
        return frame

    async def send_many(self, frames: list[tuple[bytes, bool]], timeout_s: float) -> None:
        # One write (one syscall) for everything ready, not one per frame.
        opcodes = (OP_TEXT, OP_BINARY)
        self._connection.write(b"".join(encode_frame(opcodes[b], data) for data, b in frames))
        # The timer only when the client is behind: one per write cost the gateway about a
        # tenth of its CPU under load.
        if self._connection.writing_paused:
            async with asyncio.timeout(timeout_s):
                await self._connection.drain()

    async def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self._fail(code, reason)

    def abort(self) -> None:
        self.closed = True
        self._connection.abort()
        self._wake()
