"""Bearer-token check against a SHA-256 digest.

The runtime only ever holds the digest (from the spec): Ray shows a job's runtime_env, and so
the spec, to anyone who can list jobs, and a digest of a random 256-bit token is of no use to
them. Comparing digests in constant time also hides how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac

_SCHEME = "bearer "


def token_digest(token: str) -> str:
    """What goes into `ingress.token_sha256` for this token."""
    return hashlib.sha256(token.encode()).hexdigest()


class BearerAuth:
    def __init__(self, token_sha256: str) -> None:
        self._digest = bytes.fromhex(token_sha256)

    def allows(self, authorization: str | None) -> bool:
        """Whether an Authorization header value carries the token."""
        if authorization is None or authorization[: len(_SCHEME)].lower() != _SCHEME:
            return False
        presented = authorization[len(_SCHEME) :].strip().encode()
        return hmac.compare_digest(hashlib.sha256(presented).digest(), self._digest)
