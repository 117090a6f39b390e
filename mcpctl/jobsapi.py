"""How `mcpctl agents ...`, `status` and `dashboard` reach the cluster's Jobs API.

From the spec (the usual way): an SSH tunnel to the dashboard on the head's loopback
(mcpctl.tunnel) and the token read from the head over SSH, cached (mcpctl.raytoken). With
`--address URL` (or $MCP_RAY_ADDRESS), for a cluster reached another way: that URL, and the
token from --token-file, $MCP_RAY_TOKEN, $MCP_RAY_TOKEN_FILE or ~/.ray/auth_token.
Every failure says which it is: head unreachable, tunnel failed, no token, wrong token.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_runtime.constants import admin_port
from mcpctl.errors import McpError, NoToken, TunnelFailed, UsageError, WrongToken
from mcpctl.raytoken import HEAD_TOKEN_PATH, cache_path, cached_token, fetch_token
from mcpctl.specsource import find_spec
from mcpctl.state import cluster_state_dir
from mcpctl.tunnel import Tunnel, open_tunnel

ADDRESS_VARIABLE = "MCP_RAY_ADDRESS"
TOKEN_VARIABLE = "MCP_RAY_TOKEN"
TOKEN_FILE_VARIABLE = "MCP_RAY_TOKEN_FILE"
# Where `ray get-auth-token --generate` and a local `ray start` keep a token.
LOCAL_RAY_TOKEN_FILE = "~/.ray/auth_token"
PROBE_TIMEOUT_SECONDS = 10.0
_REFUSED = (401, 403)


@dataclass(frozen=True)
class JobsApi:
    """A Jobs API that answered with the token. `token_file` holds that token on this
    machine where there is one (for the `ray` CLI); `tunnel` is set when reached from a spec."""

    address: str
    token: str | None
    token_file: Path | None = None
    tunnel: Tunnel | None = None
    tunnel_was_open: bool = False

    @property
    def headers(self) -> dict[str, str] | None:
        return {"Authorization": f"Bearer {self.token}"} if self.token else None

    def client(self) -> Any:
        """A ray.job_submission.JobSubmissionClient for this Jobs API."""
        if self.token:
            # What Ray's client code wants besides the token itself (the `ray` CLI does too).
            os.environ["RAY_AUTH_MODE"] = "token"
        from ray.job_submission import JobSubmissionClient

        try:
            return _Answering(JobSubmissionClient(self.address, headers=self.headers), self)
        except Exception as error:  # it answered our probe a moment ago: say what Ray said
            raise McpError(f"the Ray Jobs API at {self.address}: {error}") from None

    def get_json(self, path: str) -> Any:
        """GET another of the dashboard's JSON APIs (state API, node summary)."""
        request = urllib.request.Request(f"{self.address}{path}", headers=self.headers or {})
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as reply:
                return json.load(reply)
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise McpError(f"the Ray dashboard at {self.address}{path}: {error}") from None


class _Answering:
    """The Jobs API client, with a head that stops answering mid-command (down, restarting,
    its GCS recovering) reported as such instead of as a traceback from requests."""

    def __init__(self, client: Any, api: JobsApi) -> None:
        self._client = client
        self._api = api

    def __getattr__(self, name: str) -> Any:
        import requests

        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except requests.RequestException as error:
                raise McpError(
                    f"the cluster stopped answering at {self._api.address} (head down, or "
                    f"restarting and recovering; try again in a minute): {type(error).__name__}"
                ) from None
            except RuntimeError as error:  # how Ray's SDK reports an HTTP error: say it plainly
                raise McpError(f"the Ray Jobs API at {self._api.address}: {error}") from None

        return call


def reach(args: argparse.Namespace) -> JobsApi:
    address = getattr(args, "address", None) or os.environ.get(ADDRESS_VARIABLE)
    if address:
        return _reach_address(address.rstrip("/"), getattr(args, "token_file", None))
    return _reach_from_spec(args)


def _reach_address(address: str, token_file: str | None) -> JobsApi:
    token, source = _given_token(token_file)
    if token is None:
        local = Path(LOCAL_RAY_TOKEN_FILE).expanduser()
        token, source = (_read_token(str(local)), local) if local.is_file() else (None, None)
    status = _probe(address, token, where=f"at {address}", tunnel=None)
    if status in _REFUSED:
        if token is None:
            raise NoToken(
                f"no token: the Jobs API at {address} wants one (HTTP {status}) — pass "
                f"--token-file FILE or set ${TOKEN_VARIABLE}, or reach it with -f SPEC, "
                "which reads the token from the head"
            )
        raise WrongToken(
            f"wrong token: the Jobs API at {address} refused the token "
            f"{_source_text(source)} (HTTP {status})"
        )
    return JobsApi(address, token, source)


def _reach_from_spec(args: argparse.Namespace) -> JobsApi:
    from mcpctl.spec import load_spec

    spec = load_spec(find_spec(getattr(args, "spec", None)))
    if not spec.ray.dashboard:
        raise UsageError(
            f"cluster {spec.name!r} runs without Ray's dashboard (ray.dashboard: false), and "
            "the Jobs API is the dashboard's — set ray.dashboard: true and run mcpctl deploy"
        )
    state = cluster_state_dir(spec.name)
    tunnel, was_open = open_tunnel(spec, state, admin_port())
    given, source = _given_token(getattr(args, "token_file", None), environment=False)
    cached = None if given else cached_token(state)
    token = given or cached or fetch_token(spec, state)
    where = f"of cluster {spec.name!r} (through the tunnel to {spec.head.address})"
    status = _probe(tunnel.url, token, where=where, tunnel=tunnel)
    if status in _REFUSED and cached is not None:
        # The cached token may be older than the cluster (reset and deployed again).
        token = fetch_token(spec, state)
        status = _probe(tunnel.url, token, where=where, tunnel=tunnel)
    if status in _REFUSED:
        said = _source_text(source) if given else f"read from the head's {HEAD_TOKEN_PATH}"
        raise WrongToken(
            f"wrong token: the Jobs API {where} refused the token {said} (HTTP {status})"
        )
    return JobsApi(tunnel.url, token, source or cache_path(state), tunnel, was_open)


def _given_token(
    token_file: str | None, environment: bool = True
) -> tuple[str | None, Path | None]:
    """The token the operator named: --token-file, else (for --address) the variables."""
    if token_file:
        return _read_token(token_file), Path(token_file)
    if not environment:
        return None, None
    if os.environ.get(TOKEN_VARIABLE):
        return os.environ[TOKEN_VARIABLE].strip(), None
    if os.environ.get(TOKEN_FILE_VARIABLE):
        path = os.environ[TOKEN_FILE_VARIABLE]
        return _read_token(path), Path(path)
    return None, None


def _read_token(path: str) -> str:
    try:
        token = Path(path).expanduser().read_text().strip()
    except OSError as error:
        raise UsageError(f"token file {path}: {error.strerror}") from None
    if not token:
        raise UsageError(f"token file {path}: it is empty")
    return token


def _source_text(source: Path | None) -> str:
    return f"in {source}" if source else f"in ${TOKEN_VARIABLE}"


def _probe(address: str, token: str | None, where: str, tunnel: Tunnel | None) -> int:
    """The HTTP status of GET /api/version; connection failures become errors."""
    request = urllib.request.Request(f"{address}/api/version")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_SECONDS) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        reason = getattr(error, "reason", error)
        if tunnel is not None:
            # The local end is ssh, which answered: the head's end did not.
            raise TunnelFailed(
                f"tunnel failed: the tunnel to {tunnel.destination} is up, but nothing "
                f"answers on the head's {tunnel.remote_port} ({reason or type(error).__name__})"
                " — is Ray's dashboard running there (mcpctl health)?"
            ) from None
        raise McpError(f"cannot reach the Ray Jobs API {where}: {reason}") from None
