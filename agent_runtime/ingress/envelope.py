"""What a client sends and gets back, independent of the transport and encoding.

HTTP `POST /v1/{deployment}/{agent}`: the body is one message's payload (a mapping, string or
number), or a list of payloads (a batch; a payload that is itself a list goes in a batch of
one). `Idempotency-Key: K` names a single message `K`, the messages of a batch `K.0`, `K.1`, ...

WebSocket `/v1/{deployment}/{agent}/stream`: each frame is `{"id": ID, "payload": ...}`. The id
is required because replies come back as they finish, not in order.

Either way a client's id is an idempotency key: the same id within the agent's dedup window is
answered from the replica's memory instead of being handled again. Make ids unique (a UUID, or
a per-client prefix). Messages without one get a fresh id from the gateway.

Every reply is `{"id": ID, "result": ...}` or `{"id": ID, "error": reason, "status": code}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_runtime.ingress.errors import ClientError

MAX_ID_CHARS = 256
# Client ids live in their own namespace so they never equal a runtime-generated one.
CLIENT_ID_PREFIX = "c:"


def payloads_of(body: Any, limit: int) -> tuple[list[Any], bool]:
    """(payloads, is_batch) of a decoded HTTP body."""
    if isinstance(body, list):
        if not body:
            raise ClientError(400, "empty batch: send at least one message")
        if len(body) > limit:
            raise ClientError(413, f"{len(body)} messages in one request; the limit is {limit}")
        return body, True
    return [body], False


def batch_ids(idempotency_key: str | None, count: int, batch: bool) -> list[str | None]:
    if idempotency_key is None:
        return [None] * count
    check_id(idempotency_key)
    if not batch:
        return [idempotency_key]
    return [f"{idempotency_key}.{i}" for i in range(count)]


def check_id(client_id: Any) -> str:
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        client_id = str(client_id)
    if not isinstance(client_id, str) or not client_id:
        raise ClientError(400, "a message id must be a non-empty string or an integer")
    if len(client_id) > MAX_ID_CHARS:
        raise ClientError(400, f"a message id may have at most {MAX_ID_CHARS} characters")
    return client_id


def frame_message(frame: Any) -> tuple[str, Any]:
    """(client id, payload) of a decoded WebSocket frame."""
    if not isinstance(frame, Mapping) or "payload" not in frame or "id" not in frame:
        raise ClientError(400, 'a frame must be {"id": ..., "payload": ...}')
    return check_id(frame["id"]), frame["payload"]


def frame_id(frame: Any) -> Any:
    """The id to echo in an error reply to a bad frame, if it has a usable one."""
    if isinstance(frame, Mapping):
        candidate = frame.get("id")
        if isinstance(candidate, str | int) and not isinstance(candidate, bool):
            return candidate
    return None


def routing_key(payload: Any, field: str | None) -> str | None:
    """The value of the agent's routing field. A keyed agent's message without it is refused:
    sent anywhere, it would scatter that key's state across replicas."""
    if field is None:
        return None
    if not isinstance(payload, Mapping) or field not in payload:
        raise ClientError(422, f"this agent routes by {field!r}: each message needs that field")
    value = payload[field]
    return None if value is None else str(value)


def result_reply(message_id: str, result: Any) -> dict[str, Any]:
    return {"id": message_id, "result": result}


def error_reply(message_id: Any, status: int, reason: str) -> dict[str, Any]:
    return {"id": message_id, "error": reason, "status": status}
