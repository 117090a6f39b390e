"""The gateway's core, independent of the server library: paths, auth, decoding, limits,
routing and replies. A transport turns its requests into `RequestView`s and sends back the
`HttpReply`s (or runs a `StreamSession` after an upgrade)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from agent_runtime.agent import Message
from agent_runtime.ingress import envelope
from agent_runtime.ingress.auth import BearerAuth
from agent_runtime.ingress.coalescer import AgentRoute, Fetch
from agent_runtime.ingress.codec import JSON, codec_for
from agent_runtime.ingress.errors import ClientError, unauthorized
from agent_runtime.ingress.stats import GatewayStats
from agent_runtime.spec import DeploymentSpec

RETRY_AFTER_S = "1"
_SHOWN_NAME_CHARS = 64

ReplicaTable = dict[str, list[tuple[str, Any, float]]]


class RequestView(Protocol):
    method: str
    path: str

    def header(self, name: str) -> str | None: ...

    async def body(self, limit: int) -> bytes:
        """The whole body; ClientError(413) past `limit` bytes."""
        ...


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    content_type: str = JSON.content_type
    headers: tuple[tuple[str, str], ...] = ()


def error_body(status: int, reason: str, **headers: str) -> HttpReply:
    return HttpReply(status, JSON.encode({"error": reason}), headers=tuple(headers.items()))


class Collector:
    """Gathers one HTTP request's replies; its future completes with the last one."""

    __slots__ = ("done", "remaining", "replies")

    def __init__(self, count: int) -> None:
        self.replies: list[Any] = [None] * count
        self.remaining = count
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def resolve(self, index: int, reply: dict[str, Any]) -> None:
        self.replies[index] = reply
        self.remaining -= 1
        if self.remaining == 0 and not self.done.done():
            self.done.set_result(None)


class IngressService:
    def __init__(self, spec: DeploymentSpec, fetch: Fetch) -> None:
        if spec.ingress is None or spec.ingress.token_sha256 is None:
            raise ValueError("the deployment's ingress section needs token_sha256")
        self.deployment = spec.name
        self.limits = spec.ingress.limits
        self.stats = GatewayStats(spec.name)
        self._auth = BearerAuth(spec.ingress.token_sha256)
        self.routes = {
            agent.name: AgentRoute(agent, spec.ingress, self.stats, fetch) for agent in spec.agents
        }
        self._prefix = f"gw-{uuid.uuid4().hex[:12]}-"
        self._ids = itertools.count()

    def set_replicas(self, table: ReplicaTable) -> None:
        for agent, replicas in table.items():
            self.routes[agent].set_replicas(replicas)

    def load(self) -> dict[str, dict[str, int]]:
        return {agent: route.load() for agent, route in self.routes.items()}

    def pending(self, replica_ids: list[str]) -> int:
        return sum(route.pending(replica_ids) for route in self.routes.values())

    def new_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    async def http(self, request: RequestView) -> HttpReply:
        try:
            reply = await self._http(request)
        except ClientError as error:
            extra = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
            reply = error_body(error.status, error.reason, **extra)
        self.stats.responses[("http", reply.status)] += 1
        return reply

    async def _http(self, request: RequestView) -> HttpReply:
        if request.path == "/healthz":
            return HttpReply(200, JSON.encode({"status": "ok", "deployment": self.deployment}))
        self.authorize(request)
        if request.path == "/metrics":
            text = self.stats.render(self.load)
            return HttpReply(200, text.encode(), "text/plain; version=0.0.4")
        route, stream = self.target(request.path)
        if stream:
            raise ClientError(400, "this path takes a WebSocket upgrade (GET, Upgrade: websocket)")
        if request.method != "POST":
            return error_body(405, "send messages with POST", Allow="POST")
        return await self._post(request, route)

    def authorize(self, request: RequestView) -> None:
        if not self._auth.allows(request.header("Authorization")):
            raise unauthorized()

    def target(self, path: str) -> tuple[AgentRoute, bool]:
        """(the agent's route, whether the path is its stream) for /v1/{deployment}/{agent}."""
        parts = path.split("/")
        stream = len(parts) == 5 and parts[4] == "stream"
        if len(parts) not in (4, 5) or parts[:2] != ["", "v1"] or (len(parts) == 5 and not stream):
            raise ClientError(404, "no such path: use /v1/{deployment}/{agent}[/stream]")
        if parts[2] != self.deployment:
            shown = parts[2][:_SHOWN_NAME_CHARS]
            raise ClientError(404, f"no deployment {shown!r} here (this is {self.deployment!r})")
        route = self.routes.get(parts[3])
        if route is None:
            known = ", ".join(sorted(self.routes))
            raise ClientError(404, f"no agent {parts[3][:_SHOWN_NAME_CHARS]!r}; agents: {known}")
        return route, stream

    async def _post(self, request: RequestView, route: AgentRoute) -> HttpReply:
        codec = codec_for(request.header("Content-Type"))
        try:
            body = codec.decode(await request.body(self.limits.max_body_bytes))
            payloads, batch = envelope.payloads_of(body, self.limits.max_messages_per_request)
            client_ids = envelope.batch_ids(request.header("Idempotency-Key"), len(payloads), batch)
            messages, reply_ids, hash_keys = self.messages(route, payloads, client_ids)
        except ClientError:
            self.stats.messages[(route.agent, "invalid")] += 1
            raise
        lanes = route.assign(hash_keys)
        if lanes is None:
            self.stats.messages[(route.agent, "rejected")] += len(messages)
            return error_body(
                429,
                "every replica this could go to is full; retry later",
                **{"Retry-After": RETRY_AFTER_S},
            )
        collector = Collector(len(messages))
        route.submit(messages, reply_ids, lanes, collector)
        await collector.done
        if batch:
            return HttpReply(200, codec.encode_replies(collector.replies), codec.content_type)
        data, status = codec.encode_reply(collector.replies[0])
        return HttpReply(status, data, codec.content_type)

    def messages(
        self, route: AgentRoute, payloads: list[Any], client_ids: list[str | None]
    ) -> tuple[list[Message], list[str], list[str | None]]:
        """The runtime's messages, the ids their replies carry, and what to hash them by."""
        field = route.spec.routing_key
        messages: list[Message] = []
        reply_ids: list[str] = []
        hash_keys: list[str | None] = []
        for payload, client_id in zip(payloads, client_ids, strict=True):
            key = envelope.routing_key(payload, field)
            if client_id is None:
                message_id = reply_id = self.new_id()
                hash_key = key
            else:
                message_id, reply_id = envelope.CLIENT_ID_PREFIX + client_id, client_id
                hash_key = key if field is not None else message_id
            messages.append(Message(message_id, payload, key))
            reply_ids.append(reply_id)
            hash_keys.append(hash_key)
        return messages, reply_ids, hash_keys

    def stream_target(self, request: RequestView) -> AgentRoute | HttpReply:
        """The route a WebSocket upgrade goes to, or the error reply refusing it."""
        try:
            self.authorize(request)
            route, stream = self.target(request.path)
            if not stream:
                raise ClientError(404, "WebSocket streams are at /v1/{deployment}/{agent}/stream")
        except ClientError as error:
            extra = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
            reply = error_body(error.status, error.reason, **extra)
            self.stats.responses[("websocket", reply.status)] += 1
            return reply
        self.stats.responses[("websocket", 101)] += 1
        return route
