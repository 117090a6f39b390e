"""The admin API's transport: `POST /v1/admin` with a JSON request (agent_runtime.admin), one
request per connection, on the head's loopback only.

It serves one operator's commands, not clients, so it is plain asyncio streams rather than
the ingress's server: bounded (header and body size, a read deadline, connections), and a
bad request gets a 4xx JSON error without reaching the runtime. The bearer token is the Ray
cluster's own (mcpctl has it already; Ray loads it from RAY_AUTH_TOKEN[_PATH]); a cluster
without token authentication asks for none here either, as Ray's dashboard does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http
import json
from collections.abc import Awaitable, Callable
from typing import Any

from agent_runtime.admin import BadRequest, parse_request
from agent_runtime.ingress.errors import ClientError

PATH = "/v1/admin"
MAX_HEADER_BYTES = 8192
MAX_BODY_BYTES = 8192
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64

Answer = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


class AdminServer:
    def __init__(self, answer: Answer, authorization: str | None) -> None:
        """`authorization`: the whole Authorization header value that is accepted, None to
        accept any request (a cluster without token authentication)."""
        self._answer = answer
        self._expected = _digest(authorization) if authorization else None
        self._open = 0
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=MAX_HEADER_BYTES, reuse_address=True
        )
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        try:
            if self._open > MAX_CONNECTIONS:
                status, reply = 503, {"error": "too many admin connections; try again"}
            else:
                status, reply = await self._reply(reader)
            body = json.dumps(reply, default=str).encode()
            phrase = http.HTTPStatus(status).phrase
            writer.write(
                f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client left: nobody to answer
        finally:
            self._open -= 1
            writer.close()

    async def _reply(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                method, path, headers = await _read_head(reader)
                if path != PATH:
                    raise ClientError(404, f"no such path; POST {PATH}")
                if method != "POST":
                    raise ClientError(405, f"POST {PATH}")
                self._authorize(headers.get("authorization"))
                body = await _read_body(reader, headers)
            request = parse_request(json.loads(body))
        except ClientError as refused:
            return refused.status, {"error": refused.reason}
        except TimeoutError:
            return 408, {"error": f"request not read within {READ_TIMEOUT_S:.0f} s"}
        except (BadRequest, ValueError) as error:
            return 400, {"error": str(error)[:300]}
        reply = await self._answer(request)
        return (404 if "error" in reply else 200), reply

    def _authorize(self, presented: str | None) -> None:
        if self._expected is None:
            return
        if presented is None or not hmac.compare_digest(_digest(presented), self._expected):
            raise ClientError(401, "missing or wrong token: send the Ray cluster's token as Bearer")


def _digest(value: str) -> bytes:
    # Equal-length inputs for compare_digest, whatever was presented.
    return hashlib.sha256(value.strip().encode()).digest()


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ClientError(431, f"request headers over {MAX_HEADER_BYTES} bytes") from None
    except asyncio.IncompleteReadError:
        raise ClientError(400, "the request ended before its headers did") from None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ClientError(400, "not an HTTP/1.x request line")
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length", "")
    if not length.isdigit():
        raise ClientError(411, "send Content-Length with the JSON body")
    if int(length) > MAX_BODY_BYTES:
        raise ClientError(413, f"body of {length} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        return await reader.readexactly(int(length))
    except asyncio.IncompleteReadError:
        raise ClientError(400, "the body ended before its Content-Length") from None
