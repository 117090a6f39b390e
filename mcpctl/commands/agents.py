"""`mcpctl agents ...` and `mcpctl status`: operate agent deployments via Ray's Jobs API.

Only the dashboard's HTTP API is used from here, so the operator's machine needs neither a
matching Ray version nor a route to the GCS; anything that must talk to Ray runs as a job.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Any

from agent_runtime.constants import READY_MARKER, REPORT_MARKER, SPEC_ENV
from mcpctl.errors import McpError, UsageError
from mcpctl.jobsapi import jobs_client

METADATA_KEY = "mcp-agents"
ACTIVE = ("PENDING", "RUNNING")
REPORT_TIMEOUT_S = 120.0


def _deployment_jobs(client: Any, name: str | None = None) -> list[Any]:
    jobs = [job for job in client.list_jobs() if METADATA_KEY in (job.metadata or {})]
    if name is not None:
        jobs = [job for job in jobs if job.metadata[METADATA_KEY] == name]
    return sorted(jobs, key=lambda job: job.start_time or 0)


def _active_job(client: Any, name: str) -> Any:
    active = [job for job in _deployment_jobs(client, name) if job.status in ACTIVE]
    if not active:
        raise UsageError(f"no running deployment named {name!r} (see 'mcpctl agents list')")
    return active[-1]


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.output == "json" else text)


def cmd_deploy(args: argparse.Namespace) -> int:
    from agent_runtime.spec import load_spec

    spec = load_spec(args.spec)  # validate here: exit 2 before anything is submitted
    client = jobs_client(args)
    if any(job.status in ACTIVE for job in _deployment_jobs(client, spec.name)):
        raise UsageError(f"deployment {spec.name!r} is already running; stop it first")
    submission_id = client.submit_job(
        entrypoint="python -m agent_runtime.jobs",
        submission_id=f"mcp-agents-{spec.name}-{int(time.time())}",
        runtime_env={"env_vars": {SPEC_ENV: Path(args.spec).read_text()}},
        metadata={METADATA_KEY: spec.name},
    )
    if args.wait:
        _wait_ready(client, submission_id, args.wait)
    _emit(
        args,
        {"deployment": spec.name, "submission_id": submission_id},
        f"submitted {spec.name} as job {submission_id}",
    )
    return 0


def _wait_ready(client: Any, submission_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if READY_MARKER in client.get_job_logs(submission_id):
            return
        status = client.get_job_status(submission_id)
        if status not in ACTIVE:
            logs = client.get_job_logs(submission_id)[-2000:]
            raise McpError(f"deployment job {submission_id} ended ({status}):\n{logs}")
        time.sleep(0.5)
    raise McpError(f"deployment job {submission_id} not ready after {timeout_s:g}s")


def cmd_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": job.metadata[METADATA_KEY],
            "status": str(job.status.value if hasattr(job.status, "value") else job.status),
            "submission_id": job.submission_id,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000))
            if job.start_time
            else "",
        }
        for job in _deployment_jobs(jobs_client(args))
        if args.all or job.status in ACTIVE
    ]
    lines = [f"{'NAME':16} {'STATUS':10} {'STARTED':20} SUBMISSION ID"]
    lines += [
        f"{r['name']:16} {r['status']:10} {r['started']:20} {r['submission_id']}" for r in rows
    ]
    _emit(args, rows, "\n".join(lines))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    client = jobs_client(args)
    job = _active_job(client, args.name)
    client.stop_job(job.submission_id)
    deadline = time.monotonic() + args.timeout
    while client.get_job_status(job.submission_id) in ACTIVE:
        if time.monotonic() > deadline:
            raise McpError(f"{args.name}: job {job.submission_id} still stopping")
        time.sleep(0.5)
    _emit(args, {"deployment": args.name, "stopped": job.submission_id}, f"stopped {args.name}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    client = jobs_client(args)
    jobs = _deployment_jobs(client, args.name)
    if not jobs:
        raise UsageError(f"no deployment named {args.name!r} (see 'mcpctl agents list --all')")
    print(client.get_job_logs(jobs[-1].submission_id), end="")
    return 0


def _one_shot_job(args: argparse.Namespace, *options: str) -> dict[str, Any]:
    """Run `python -m agent_runtime.admin OPTIONS` as a job and return its JSON answer."""
    client = jobs_client(args)
    submission_id = client.submit_job(
        entrypoint=shlex.join(["python", "-m", "agent_runtime.admin", *options]),
        submission_id=f"mcp-admin-{int(time.time() * 1000)}",
    )
    deadline = time.monotonic() + REPORT_TIMEOUT_S
    while client.get_job_status(submission_id) in ACTIVE:
        if time.monotonic() > deadline:
            client.stop_job(submission_id)
            raise McpError(f"job {submission_id} did not finish")
        time.sleep(0.3)
    logs = client.get_job_logs(submission_id)
    client.delete_job(submission_id)  # one-shot jobs are not worth keeping in the job list
    for line in logs.splitlines():
        if line.startswith(REPORT_MARKER):
            answer = json.loads(line[len(REPORT_MARKER) :])
            if "error" in answer:
                raise UsageError(answer["error"])
            return answer
    raise McpError(f"job {submission_id} failed:\n{logs[-2000:]}")


def cmd_cordon(args: argparse.Namespace) -> int:
    answer = _one_shot_job(args, "--cordon", args.node, "--reason", args.reason)
    node = answer["cordoned"]
    _emit(args, answer, f"cordoned {node}: its agents move to healthy nodes")
    return 0


def cmd_uncordon(args: argparse.Namespace) -> int:
    answer = _one_shot_job(args, "--uncordon", args.node)
    node = answer["uncordoned"]
    _emit(args, answer, f"uncordoned {node}: takes agents again after passing health checks")
    return 0


def _node_label(node: dict[str, Any]) -> str:
    """The node's hostname (node1, gpu-07...) once its probe reported, else its Ray id's start."""
    return (node.get("sample") or {}).get("hostname") or node["node_id"][:12]


def _node_line(node: dict[str, Any]) -> str:
    sample = node.get("sample") or {}

    def value(name: str) -> str:
        return f"{sample[name]:.0f}" if isinstance(sample.get(name), int | float) else "-"

    gpus = sample.get("gpus") or []
    gpu = ",".join(f"{g.get('temperature_c', '-')}C" for g in gpus) if gpus else "none"
    return (
        f"{_node_label(node):12} {node['address']:15} {node['status']:10} "
        f"{value('cpu_percent'):>4} {value('memory_percent'):>4} {value('disk_percent'):>4} "
        f"{gpu:10} {len(node.get('agents', []))}"
    )


def cmd_status(args: argparse.Namespace) -> int:
    data = _one_shot_job(args, "--report")
    if getattr(args, "name", None):
        data["deployments"] = [d for d in data["deployments"] if d["deployment"] == args.name]
        for node in data["nodes"]:
            node["agents"] = [a for a in node["agents"] if a.startswith(f"{args.name}/")]
    lines = [f"{'NODE':12} {'ADDRESS':15} {'STATUS':10} {'CPU%':>4} {'MEM%':>4} {'DSK%':>4} "
             f"{'GPU':10} AGENTS"]  # fmt: skip
    for node in data["nodes"]:
        lines.append(_node_line(node))
        lines += [f"    ! {reason}" for reason in node.get("reasons", [])]
        lines += [f"    - {agent}" for agent in node.get("agents", [])]
    labels = {node["node_id"]: _node_label(node) for node in data["nodes"]}
    for deployment in data["deployments"]:
        lines.append(f"deployment {deployment['deployment']}")
        lines.append(f"    {'REPLICA':20} {'NODE':12} {'PROCESSED':>10} {'DUPLICATES':>10}")
        for replica in deployment.get("replicas", []):
            node_id = replica["node_id"] or "-"
            node = labels.get(node_id, node_id[:12]) + ("" if replica["reachable"] else " (?)")
            lines.append(
                f"    {replica['id']:20} {node:12} {replica.get('processed', '-'):>10} "
                f"{replica.get('duplicates', '-'):>10}"
            )
        lines += [f"    ! {event}" for event in deployment.get("events", [])[-5:]]
    _emit(args, data, "\n".join(lines))
    return 0
