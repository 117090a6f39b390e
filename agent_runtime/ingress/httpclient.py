"""A small blocking client of a deployment's gateways, standard library only, for a shell or a
script outside the cluster (`mcpctl agents send`, the examples' load generators).

Failover: the gateways of every node serve every agent, so a request whose gateway cannot be
reached, or drops the connection, goes to the next one. It carries the same Idempotency-Key
there, so a batch that the first gateway had already handed to the agents is answered from the
replicas' memory instead of being handled twice. A full deployment (429/503) is retried after
its Retry-After, until `retry_for_s` runs out.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from typing import Any

_RETRY_STATUSES = (429, 503)
_MAX_RETRY_AFTER_S = 5.0
_REFUSED_DELAY_S = 0.2


class GatewayError(Exception):
    """The gateways refused the request (status >= 400 other than a full deployment), or none
    answered in time."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def split_gateway_urls(urls: Sequence[str]) -> list[urllib.parse.SplitResult]:
    if not urls:
        raise ValueError("no gateway URLs")
    return [urllib.parse.urlsplit(url) for url in urls]


class GatewayClient:
    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        *,
        timeout_s: float = 30.0,
        retry_for_s: float = 30.0,
        ca_file: str | None = None,
    ) -> None:
        self._urls = split_gateway_urls(urls)
        self._token = token
        self._timeout_s = timeout_s
        self._retry_for_s = retry_for_s
        self._ca_file = ca_file
        self._current = 0
        self._connection: http.client.HTTPConnection | None = None
        self.failovers = 0

    @property
    def url(self) -> str:
        """The gateway the next request goes to."""
        return urllib.parse.urlunsplit(self._urls[self._current])

    def post(
        self, deployment: str, agent: str, payloads: list[Any], key: str | None = None
    ) -> list[dict[str, Any]]:
        """Send `payloads` as one batch; their replies, in order: `{"id", "result"}` or
        `{"id", "error", "status"}` each. `key` (default: a fresh UUID) names the batch, and
        its messages `key.0`, `key.1`, ... (see agent_runtime/ingress/envelope.py)."""
        body = json.dumps(payloads).encode()
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key or uuid.uuid4().hex,
        }
        path = f"/v1/{urllib.parse.quote(deployment)}/{urllib.parse.quote(agent)}"
        return json.loads(self._request(path, body, headers))

    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        deadline = time.monotonic() + self._retry_for_s
        last_problem = "no gateway tried"
        while True:
            reused = self._connection is not None
            try:
                status, retry_after, data = self._once(path, body, headers)
            except (OSError, http.client.HTTPException) as error:
                last_problem = f"{self.url}: {error or type(error).__name__}"
                if reused:
                    # Most likely the gateway closed an idle keep-alive connection: once
                    # more on a new one to the same gateway.
                    self.close()
                    continue
                self._fail_over()
                # Once round every gateway, give them a moment before the next round.
                delay = _REFUSED_DELAY_S if self._current == 0 else 0.0
            else:
                if status < 400:
                    return data
                if status not in _RETRY_STATUSES:
                    raise GatewayError(f"{self.url}: HTTP {status}: {_reason(data)}", status)
                last_problem = f"{self.url}: HTTP {status}: {_reason(data)}"
                delay = retry_after
            if time.monotonic() + delay > deadline:
                raise GatewayError(f"no gateway took the request in {self._retry_for_s:g}s; "
                                   f"last: {last_problem}")  # fmt: skip
            time.sleep(delay)

    def _once(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, float, bytes]:
        if self._connection is None:
            self._connection = self._connect()
        self._connection.request("POST", path, body, headers)
        response = self._connection.getresponse()
        data = response.read()
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        return response.status, _retry_after(response.getheader("Retry-After")), data

    def _connect(self) -> http.client.HTTPConnection:
        url = self._urls[self._current]
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=self._ca_file)
            return http.client.HTTPSConnection(
                url.hostname, url.port, timeout=self._timeout_s, context=context
            )
        return http.client.HTTPConnection(url.hostname, url.port, timeout=self._timeout_s)

    def _fail_over(self) -> None:
        self.close()
        self._current = (self._current + 1) % len(self._urls)
        self.failovers += 1

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


def _reason(data: bytes) -> str:
    try:
        return str(json.loads(data)["error"])
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace")
