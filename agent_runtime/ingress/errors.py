"""What a gateway answers when a request is wrong: a status and a short reason."""

from __future__ import annotations


class ClientError(Exception):
    """Bad input from a client: answered with `status` and `{"error": reason}`; it reaches no
    agent and ends nothing but (at most) this request."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def unauthorized() -> ClientError:
    return ClientError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")
