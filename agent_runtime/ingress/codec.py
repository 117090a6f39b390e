"""JSON and MessagePack on the wire (msgspec: about 0.2-0.4 us a small message each way).

A reply is encoded in the encoding its request came in. Agents may return types neither
format knows (numpy scalars and arrays are common); those with `tolist()` are converted, and
a result that still cannot be encoded becomes an error reply for that message alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from agent_runtime.ingress.errors import ClientError

JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/msgpack"
_MSGPACK_TYPES = (MSGPACK_TYPE, "application/x-msgpack")


def _to_builtin(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        raise TypeError(f"cannot encode {type(value).__name__}")
    return tolist()


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    content_type: str
    binary: bool
    _decode: Callable[[bytes], Any]
    _encode: Callable[[Any], bytes]

    def decode(self, data: bytes | str) -> Any:
        try:
            return self._decode(data)
        except msgspec.DecodeError as error:
            raise ClientError(400, f"malformed {self.name}: {error}") from None

    def encode(self, value: Any) -> bytes:
        return self._encode(value)

    def encode_replies(self, replies: list[dict[str, Any]]) -> bytes:
        """A list of replies; one that cannot be encoded is replaced, not the whole list."""
        try:
            return self._encode(replies)
        except (TypeError, ValueError, OverflowError):
            return self._encode([self._encodable(reply) for reply in replies])

    def encode_reply(self, reply: dict[str, Any]) -> tuple[bytes, int]:
        """The encoded reply and its HTTP status (500 if the result could not be encoded)."""
        try:
            return self._encode(reply), reply.get("status", 200)
        except (TypeError, ValueError, OverflowError):
            replacement = self._encodable(reply)
            return self._encode(replacement), replacement.get("status", 200)

    def _encodable(self, reply: dict[str, Any]) -> dict[str, Any]:
        try:
            self._encode(reply)
        except (TypeError, ValueError, OverflowError) as error:
            return {
                "id": reply.get("id"),
                "error": f"result not encodable as {self.name}: {error}",
                "status": 500,
            }
        return reply


JSON = Codec(
    "JSON",
    JSON_TYPE,
    False,
    msgspec.json.Decoder().decode,
    msgspec.json.Encoder(enc_hook=_to_builtin).encode,
)
MSGPACK = Codec(
    "MessagePack",
    MSGPACK_TYPE,
    True,
    msgspec.msgpack.Decoder().decode,
    msgspec.msgpack.Encoder(enc_hook=_to_builtin).encode,
)


def codec_for(content_type: str | None) -> Codec:
    """The codec for a Content-Type header (parameters such as charset ignored)."""
    media = (content_type or JSON_TYPE).partition(";")[0].strip().lower()
    if media == JSON_TYPE:
        return JSON
    if media in _MSGPACK_TYPES:
        return MSGPACK
    raise ClientError(415, f"unsupported Content-Type {media!r}; use {JSON_TYPE} or {MSGPACK_TYPE}")
