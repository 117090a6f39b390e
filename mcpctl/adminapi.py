"""How `mcpctl status`, `agents status`, `cordon` and `uncordon` ask the runtime
(agent_runtime.admin): the keeper's admin API on the head's loopback, through the SSH tunnel
beside the dashboard's forward (or, with --address, on the dashboard's host). No job is
started for that, and an answer takes a fraction of a second.

Where the admin API does not answer (the keeper is not running yet: no deployment was ever
made on this cluster; or its port is not reachable from here), the request runs once as a
short job instead, which also starts the keeper, so the next command needs no job.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shlex
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from agent_runtime.constants import ACTIVE_JOB_STATUSES, REPORT_MARKER, admin_port
from mcpctl.errors import McpError, UsageError, WrongToken
from mcpctl.jobsapi import JobsApi
from mcpctl.tables import console_for

# The keeper answers from what its monitor last saw, so this is only for a head under load.
ADMIN_TIMEOUT_S = 15.0
JOB_TIMEOUT_S = 120.0


class _NotListening(Exception):
    pass


def admin_url(api: JobsApi) -> str:
    """Through the tunnel where there is one, else the dashboard's host at the admin port."""
    if api.tunnel is not None:
        return api.tunnel.admin_url
    host = urllib.parse.urlsplit(api.address).hostname or "127.0.0.1"
    return f"http://{host}:{admin_port()}"


def ask(api: JobsApi, request: dict[str, str]) -> dict[str, Any]:
    """The runtime's answer to one request; an error it reports (an unknown node) exits 2."""
    try:
        reply = _post(admin_url(api), api.token, request)
    except _NotListening:
        reply = _one_shot_job(api, request)
    if "error" in reply:
        raise UsageError(reply["error"])
    return reply


def _post(url: str, token: str | None, request: dict[str, str]) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    posted = urllib.request.Request(
        f"{url}/v1/admin", data=json.dumps(request).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(posted, timeout=ADMIN_TIMEOUT_S) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as error:
        if error.code == 401:
            raise WrongToken(f"wrong token: the keeper's admin API at {url} refused it") from None
        try:
            return json.load(error)
        except ValueError:
            raise McpError(f"the keeper's admin API at {url}: HTTP {error.code}") from None
    except TimeoutError:
        raise McpError(
            f"the keeper's admin API at {url} did not answer within {ADMIN_TIMEOUT_S:.0f} s "
            "(the head is overloaded, or its GCS is recovering; try again)"
        ) from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError) as error:
        # Refused (nothing listens there), or through the tunnel: ssh accepted, then closed
        # the channel because nothing listens on the head's end.
        raise _NotListening(str(error)) from None


def _one_shot_job(api: JobsApi, request: dict[str, str]) -> dict[str, Any]:
    """Run `python -m agent_runtime.admin REQUEST` as a job and return its JSON answer."""
    client = api.client()
    submission_id = client.submit_job(
        entrypoint=shlex.join(["python", "-m", "agent_runtime.admin", json.dumps(request)]),
        submission_id=f"mcp-admin-{int(time.time() * 1000)}",
    )
    deadline = time.monotonic() + JOB_TIMEOUT_S
    try:
        with _waiting(f"asking the cluster, and starting its keeper (job {submission_id})"):
            while client.get_job_status(submission_id) in ACTIVE_JOB_STATUSES:
                if time.monotonic() > deadline:
                    client.stop_job(submission_id)
                    raise McpError(f"job {submission_id} did not finish")
                time.sleep(0.3)
        logs = client.get_job_logs(submission_id)
    finally:
        with contextlib.suppress(Exception):  # one-shot jobs are not worth keeping
            client.delete_job(submission_id)
    for line in logs.splitlines():
        if line.startswith(REPORT_MARKER):
            return json.loads(line[len(REPORT_MARKER) :])
    raise McpError(f"job {submission_id} failed:\n{logs[-2000:]}")


def _waiting(text: str) -> Any:
    """A spinner on a terminal (a one-shot job takes a few seconds); nothing elsewhere."""
    console = console_for(sys.stderr)
    return console.status(text) if console.is_terminal else contextlib.nullcontext()
