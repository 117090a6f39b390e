"""`mcpctl agents ...` and `mcpctl status`: operate agent deployments via Ray's Jobs API,
and ask the runtime's keeper for status and cordons (mcpctl.adminapi).

Only HTTP APIs on the head are used from here (through the SSH tunnel), so the operator's
machine needs neither a matching Ray version nor a route to the GCS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from agent_runtime.constants import (
    ACTIVE_JOB_STATUSES,
    DEPLOYMENT_METADATA_KEY,
    INGRESS_MARKER,
    INGRESS_TOKEN_DIGEST_ENV,
    READY_MARKER,
    SPEC_ENV,
    deployment_submission_id,
)
from mcpctl.errors import McpError, UsageError
from mcpctl.jobsapi import JobsApi, reach
from mcpctl.tables import Cell, CellValue, Column, is_terminal, print_table

# Ray ids are 56 hex digits for a node; the runtime's own lines show their first 12.
SHORT_ID = 12
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STATUS_STYLES = {"healthy": "green", "degraded": "yellow", "unhealthy": "bold red",
                  "cordoned": "yellow", "dead": "bold red"}  # fmt: skip


def _connect(args: argparse.Namespace) -> tuple[JobsApi, Any]:
    api = reach(args)
    return api, api.client()


def _deployment_jobs(client: Any, name: str | None = None) -> list[Any]:
    jobs = [job for job in client.list_jobs() if DEPLOYMENT_METADATA_KEY in (job.metadata or {})]
    if name is not None:
        jobs = [job for job in jobs if job.metadata[DEPLOYMENT_METADATA_KEY] == name]
    return sorted(jobs, key=lambda job: job.start_time or 0)


def _active_job(client: Any, name: str) -> Any:
    active = [job for job in _deployment_jobs(client, name) if job.status in ACTIVE_JOB_STATUSES]
    if not active:
        raise UsageError(f"no running deployment named {name!r} (see 'mcpctl agents list')")
    return active[-1]


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    _print_json(data) if args.output == "json" else print(text)


def cmd_deploy(args: argparse.Namespace) -> int:
    from agent_runtime.spec import load_spec
    from mcpctl.deploywatch import wait_until_ready

    spec = load_spec(args.agents_file)  # validate here: exit 2 before anything is submitted
    api, client = _connect(args)
    running = [job for job in _deployment_jobs(client) if job.status in ACTIVE_JOB_STATUSES]
    if any(job.metadata[DEPLOYMENT_METADATA_KEY] == spec.name for job in running):
        raise UsageError(f"deployment {spec.name!r} is already running; stop it first")
    if spec.ingress is not None and spec.ingress.port:
        _refuse_a_taken_port(client, running, spec.ingress.port, args.agents_file)
    env_vars = {SPEC_ENV: Path(args.agents_file).read_text()}
    token_file = None
    if spec.ingress is not None and not spec.ingress.token_sha256:
        token_file, digest = _ingress_token(args, spec.name)
        env_vars[INGRESS_TOKEN_DIGEST_ENV] = digest
    submission_id = client.submit_job(
        entrypoint="python -m agent_runtime.jobs",
        submission_id=deployment_submission_id(spec.name, time.time()),
        runtime_env={"env_vars": env_vars},
        metadata={DEPLOYMENT_METADATA_KEY: spec.name},
    )
    replicas = sum(agent.replicas for agent in spec.agents)
    # The stages go to stderr with -o json, so stdout holds the JSON alone.
    progress = sys.stderr if args.output == "json" else sys.stdout
    progress.write(f"submitted {spec.name} as job {submission_id}\n")
    took = None
    if args.wait:
        names = node_namer(api)
        try:
            took = wait_until_ready(
                api, client, submission_id, spec.name, replicas, args.wait, names, progress
            )
        except McpError as error:
            raise _stopped_if_running(client, submission_id, error) from None
    ingress = ingress_of(client, submission_id) if took and spec.ingress else None
    if ingress is not None:
        _print_endpoints(ingress, token_file, progress)
    _emit(
        args,
        {
            "deployment": spec.name,
            "submission_id": submission_id,
            "replicas": replicas,
            "ready": took is not None,
            "gateways": [gateway["url"] for gateway in (ingress or {}).get("gateways", [])],
            "ingress_token_file": str(token_file) if token_file else None,
        },
        f"ready: {spec.name}, {replicas} replicas set up in {took}"
        if took
        else f"{spec.name}: not waiting for its {replicas} replicas (--wait 0)",
    )
    return 0


def _stopped_if_running(client: Any, submission_id: str, error: McpError) -> McpError:
    """A deployment that did not come up is not left holding the cluster's resources."""
    if client.get_job_status(submission_id) not in ACTIVE_JOB_STATUSES:
        return error
    client.stop_job(submission_id)
    error.args = (f"{error}\nstopped job {submission_id}: nothing of it is left running",)
    return error


def _refuse_a_taken_port(client: Any, running: list[Any], port: int, source: str) -> None:
    """Gateways of two deployments on one port would share its connections (SO_REUSEPORT),
    each answering 404 for the other's agents: refused before anything starts."""
    for job in running:
        ingress = ingress_of(client, job.submission_id)
        if ingress and any(gateway.get("port") == port for gateway in ingress["gateways"]):
            raise UsageError(
                f"{source}: ingress.port {port} is taken by the running deployment "
                f"{ingress['deployment']!r}: one deployment at a time serves a port (the "
                "cluster's firewall opens the cluster spec's ingress.port); stop it first"
            )


def _ingress_token(args: argparse.Namespace, deployment: str) -> tuple[Path, str]:
    """The clients' bearer token for this deployment's gateways: kept 0600 on this machine
    (made once, reused by later deploys) and only its digest sent to the cluster."""
    import secrets

    from agent_runtime.ingress.auth import token_digest
    from mcpctl.state import write_private

    path = _ingress_token_file(args, deployment)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    if not path.is_file():
        write_private(path, secrets.token_urlsafe(32) + "\n")
    return path, token_digest(path.read_text().strip())


def _ingress_token_file(args: argparse.Namespace, deployment: str) -> Path:
    from mcpctl.state import cluster_state_dir

    return cluster_state_dir(_cluster_name(args)) / "ingress" / f"{deployment}.token"


def ingress_of(client: Any, submission_id: str) -> dict[str, Any] | None:
    """The deployment's agents and gateways, from the last line its driver logged of them."""
    return _ingress_in(client.get_job_logs(submission_id))


def _ingress_in(logs: str) -> dict[str, Any] | None:
    found = None
    for line in logs.splitlines():
        if line.startswith(INGRESS_MARKER):
            found = line[len(INGRESS_MARKER) :]
    return json.loads(found) if found else None


def _print_endpoints(ingress: dict[str, Any], token_file: Path | None, out: Any) -> None:
    deployment, agents = ingress["deployment"], ingress["agents"]
    out.write(f"ingress: {len(ingress['gateways'])} gateways, each serving every agent\n")
    for gateway in ingress["gateways"]:
        out.write(f"  {gateway['url']}/v1/{deployment}/{{{','.join(agents)}}}[/stream]\n")
    if token_file is not None:
        out.write(f"client token (Authorization: Bearer ...): {token_file}\n")
    out.write(f"try it: mcpctl agents send {deployment}/{agents[0]} '<JSON message>'\n")


def cmd_send(args: argparse.Namespace) -> int:
    from agent_runtime.ingress.httpclient import GatewayClient, GatewayError

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, not {args.batch}")
    batches = _message_batches(args)
    deployment, agent, urls = _send_target(args)
    token = _client_token(args, deployment)
    client = GatewayClient(urls, token, retry_for_s=args.timeout, ca_file=args.ca_file)
    replies: list[dict[str, Any]] = []
    try:
        for batch in batches:
            answered = client.post(deployment, agent, batch)
            replies.extend(answered)
            if args.output == "text":
                sys.stdout.write("".join(json.dumps(reply) + "\n" for reply in answered))
                sys.stdout.flush()
    except GatewayError as error:
        raise McpError(f"{deployment}/{agent}: {error}") from None
    finally:
        client.close()
    if args.output == "json":
        _print_json(replies)
    failed = sum(1 for reply in replies if "error" in reply)
    if failed:
        sys.stderr.write(f"{failed} of {len(replies)} messages were refused or failed\n")
    return 1 if failed else 0


def _send_target(args: argparse.Namespace) -> tuple[str, str, list[str]]:
    """(deployment, agent, gateway URLs) for `agents send [DEPLOYMENT/]AGENT`."""
    deployment, _, agent = args.target.rpartition("/")
    if not agent:
        raise UsageError(f"{args.target!r}: name an agent, as AGENT or DEPLOYMENT/AGENT")
    if args.gateway:
        if not deployment:
            raise UsageError("with --gateway, name the agent as DEPLOYMENT/AGENT")
        return deployment, agent, args.gateway
    _, client = _connect(args)
    running = [
        job
        for job in _deployment_jobs(client, deployment or None)
        if job.status in ACTIVE_JOB_STATUSES
    ]
    logs = [client.get_job_logs(job.submission_id) for job in running]
    ingresses = [_ingress_in(text) for text in logs]
    served = [ingress for ingress in ingresses if ingress and agent in ingress["agents"]]
    starting = [
        job.metadata[DEPLOYMENT_METADATA_KEY]
        for job, text in zip(running, logs, strict=True)
        if READY_MARKER not in text
    ]
    if not served and starting:
        raise McpError(
            f"{', '.join(starting)}: starting (submitted again after a head restart, or just "
            "deployed); its gateways are not up yet: try again in a few seconds"
        )
    if not served:
        where = f"deployment {deployment!r}" if deployment else "any running deployment"
        raise UsageError(
            f"no agent {agent!r} behind an ingress in {where}: give its deployment an "
            "'ingress:' section in agents.yaml (see 'mcpctl agents list')"
        )
    if len(served) > 1:
        names = ", ".join(f"{ingress['deployment']}/{agent}" for ingress in served)
        raise UsageError(f"{len(served)} deployments have an agent {agent!r}: say which ({names})")
    (ingress,) = served
    return ingress["deployment"], agent, [gateway["url"] for gateway in ingress["gateways"]]


def _client_token(args: argparse.Namespace, deployment: str) -> str:
    path = Path(args.ingress_token_file or _ingress_token_file(args, deployment))
    try:
        return path.read_text().strip()
    except OSError as error:
        raise UsageError(
            f"no client token for {deployment!r} at {path} ({error.strerror}): deploy it with "
            "'mcpctl agents deploy' from this machine, or pass --ingress-token-file"
        ) from None


def _message_batches(args: argparse.Namespace) -> Iterator[list[Any]]:
    """The messages to send in batches of --batch. A file is read and checked whole before
    anything is sent; standard input is sent as it comes, a batch at a time (a producer that
    never ends is fine)."""
    if (args.message is None) == (args.input is None):
        raise UsageError("give one message as an argument, or -i FILE ('-': standard input)")
    if args.message is not None:
        return iter([[_parse_message(args.message, "the message argument")]])
    if args.input == "-":
        return _batched(_parsed_lines(sys.stdin, "<stdin>"), args.batch)
    try:
        text = Path(args.input).read_text()
    except OSError as error:
        raise UsageError(f"{args.input}: {error.strerror}") from None
    messages = list(_parsed_lines(text.splitlines(), args.input))
    if not messages:
        raise UsageError(f"{args.input}: no messages (one JSON value a line)")
    return _batched(iter(messages), args.batch)


def _parsed_lines(lines: Iterable[str], source: str) -> Iterator[Any]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield _parse_message(line, f"{source}:{number}")


def _batched(messages: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(itertools.islice(messages, size)):
        yield batch


def _parse_message(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{where}: not JSON: {error.msg} at column {error.colno}") from None


def _cluster_name(args: argparse.Namespace) -> str:
    """The cluster of the spec this command reached, or 'default' for one given by --address."""
    from mcpctl.spec import load_spec
    from mcpctl.specsource import find_spec

    if getattr(args, "address", None):
        return "default"
    return load_spec(find_spec(getattr(args, "spec", None))).name


def cmd_list(args: argparse.Namespace) -> int:
    _, client = _connect(args)
    rows = [
        {
            "name": job.metadata[DEPLOYMENT_METADATA_KEY],
            "status": str(job.status.value if hasattr(job.status, "value") else job.status),
            "submission_id": job.submission_id,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time / 1000))
            if job.start_time
            else "",
        }
        for job in _deployment_jobs(client)
        if args.all or job.status in ACTIVE_JOB_STATUSES
    ]
    if args.output == "json":
        _print_json(rows)
        return 0
    columns = [Column("NAME"), Column("STATUS"), Column("STARTED"), Column("SUBMISSION ID")]
    cells = [[row["name"], row["status"], row["started"], row["submission_id"]] for row in rows]
    print_table(columns, cells)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    _, client = _connect(args)
    job = _active_job(client, args.name)
    client.stop_job(job.submission_id)
    deadline = time.monotonic() + args.timeout
    while client.get_job_status(job.submission_id) in ACTIVE_JOB_STATUSES:
        if time.monotonic() > deadline:
            raise McpError(f"{args.name}: job {job.submission_id} still stopping")
        time.sleep(0.5)
    _emit(args, {"deployment": args.name, "stopped": job.submission_id}, f"stopped {args.name}")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    api, client = _connect(args)
    jobs = _deployment_jobs(client, args.name)
    if not jobs:
        raise UsageError(f"no deployment named {args.name!r} (see 'mcpctl agents list --all')")
    text = name_nodes(client.get_job_logs(jobs[-1].submission_id), node_names(api))
    if not is_terminal(sys.stdout):
        text = _ANSI_ESCAPE.sub("", text)  # Ray colours its lines; a file wants none
    sys.stdout.write(text)
    return 0


def node_names(api: JobsApi) -> dict[str, str]:
    """Ray node id -> the node's hostname, from the dashboard's node summary; {} if it does
    not answer (ids then stay ids)."""
    try:
        summary = api.get_json("/nodes?view=summary")["data"]["summary"]
    except (McpError, KeyError, TypeError):
        return {}
    names = {}
    for node in summary:
        raylet = node.get("raylet") or {}
        name = raylet.get("nodeManagerHostname") or node.get("hostname") or node.get("ip")
        if raylet.get("nodeId") and name:
            names[raylet["nodeId"]] = name
    return names


def node_namer(api: JobsApi) -> Callable[[str], str]:
    """A function naming a node id, looking the names up again for a node it has not seen."""
    known = node_names(api)

    def name(node_id: str) -> str:
        if node_id and node_id not in known:
            known.update(node_names(api))
        return known.get(node_id) or node_id[:SHORT_ID] or "?"

    return name


def name_nodes(text: str, names: Mapping[str, str]) -> str:
    """`text` with each node id, whole or as its first 12 digits, replaced by the hostname."""
    for node_id, name in names.items():
        text = text.replace(node_id, name).replace(node_id[:SHORT_ID], name)
    return text


def _ask(args: argparse.Namespace, request: dict[str, str]) -> dict[str, Any]:
    from mcpctl import adminapi

    return adminapi.ask(reach(args), request)


def cmd_cordon(args: argparse.Namespace) -> int:
    answer = _ask(args, {"action": "cordon", "node": args.node, "reason": args.reason})
    node = answer["cordoned"]
    _emit(args, answer, f"cordoned {node}: its agents move to healthy nodes")
    return 0


def cmd_uncordon(args: argparse.Namespace) -> int:
    answer = _ask(args, {"action": "uncordon", "node": args.node})
    node = answer["uncordoned"]
    _emit(args, answer, f"uncordoned {node}: takes agents again after passing health checks")
    return 0


def _hostname(node: dict[str, Any]) -> str | None:
    """The node's hostname (node1, gpu-07...) once its probe reported."""
    return (node.get("sample") or {}).get("hostname")


def _node_label(node: dict[str, Any]) -> str:
    """The hostname, else the Ray id's start."""
    return _hostname(node) or node["node_id"][:SHORT_ID]


NODE_COLUMNS = (
    Column("NODE"),
    Column("ADDRESS"),
    Column("STATUS"),
    Column("CPU%", numeric=True),
    Column("MEM%", numeric=True),
    Column("DSK%", numeric=True),
    Column("GPU"),
    Column("AGENTS", numeric=True),
)
AGENT_COLUMNS = (
    Column("AGENT"),
    Column("REPLICAS", numeric=True),
    Column("LOAD", numeric=True),
    Column("AUTOSCALING"),
)
REPLICA_COLUMNS = (
    Column("REPLICA"),
    Column("NODE"),
    Column("PROCESSED", numeric=True),
    Column("DUPLICATES", numeric=True),
)
SOURCE_COLUMNS = (
    Column("SOURCE"),
    Column("NODE"),
    Column("PARTITIONS"),
    Column("LAG", numeric=True),
    Column("PROCESSED", numeric=True),
    Column("DEAD", numeric=True),
    Column("PAUSED"),
)


def _node_row(node: dict[str, Any]) -> list[CellValue]:
    sample = node.get("sample") or {}

    def value(name: str) -> str:
        return f"{sample[name]:.0f}" if isinstance(sample.get(name), int | float) else "-"

    gpus = sample.get("gpus") or []
    gpu = ",".join(f"{g.get('temperature_c', '-')}C" for g in gpus) if gpus else "none"
    status = Cell(node["status"], _STATUS_STYLES.get(node["status"], ""))
    return [_node_label(node), node["address"], status, value("cpu_percent"),
            value("memory_percent"), value("disk_percent"), gpu,
            str(len(node.get("agents", [])))]  # fmt: skip


def cmd_status(args: argparse.Namespace) -> int:
    data = _ask(args, {"action": "report"})
    data["nodes"] = _once_each(data["nodes"])
    # By hostname; nodes whose probe has not reported yet (named by id) after them.
    data["nodes"].sort(key=lambda node: (not _hostname(node), _node_label(node)))
    if getattr(args, "name", None):
        data["deployments"] = [d for d in data["deployments"] if d["deployment"] == args.name]
        if not data["deployments"]:
            raise UsageError(
                f"no running deployment named {args.name!r} (see 'mcpctl agents list')"
            )
        for node in data["nodes"]:
            node["agents"] = [a for a in node["agents"] if a.startswith(f"{args.name}/")]
    if args.output == "json":
        _print_json(data)
        return 0
    _print_status(data)
    return 0


def _once_each(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the dead entries of nodes that came back (a restart gives a node a new Ray
    id; Ray keeps the old one as dead, often without a hostname: its probe never reported,
    but its address is the node's, one Ray node to an address)."""
    alive = [node for node in nodes if node["status"] != "dead"]
    back = {_node_label(node) for node in alive} | {node["address"] for node in alive}
    return [
        node
        for node in nodes
        if node["status"] != "dead" or not {_node_label(node), node["address"]} & back
    ]


def _print_status(data: dict[str, Any]) -> None:
    print_table(NODE_COLUMNS, [_node_row(node) for node in data["nodes"]])
    reasons = [
        f"{_node_label(node)}: {reason}"
        for node in data["nodes"]
        for reason in node.get("reasons", [])
    ]
    if reasons:
        print("\n" + "\n".join(reasons))
    labels = {node["node_id"]: _node_label(node) for node in data["nodes"]}
    for deployment in data["deployments"]:
        print(f"\ndeployment {deployment['deployment']}")
        if deployment.get("agents"):
            print_table(AGENT_COLUMNS, [_agent_row(agent) for agent in deployment["agents"]])
        rows = [_replica_row(replica, labels) for replica in deployment.get("replicas", [])]
        print_table(REPLICA_COLUMNS, rows)
        if deployment.get("sources"):
            print_table(SOURCE_COLUMNS, [_source_row(s, labels) for s in deployment["sources"]])
        for event in deployment.get("events", [])[-5:]:
            print(f"! {event}")


def _agent_row(agent: dict[str, Any]) -> list[CellValue]:
    """LOAD: messages queued at the gateways plus those in the replicas' hands."""
    scaling = agent.get("autoscaling")
    policy = (
        f"{scaling['min_replicas']}..{scaling['max_replicas']}, "
        f"{scaling['target_in_flight']:g} in flight each"
        if scaling
        else "-"
    )
    return [agent["agent"], str(agent["replicas"]), f"{agent['load']:g}", policy]


def _source_row(consumer: dict[str, Any], labels: Mapping[str, str]) -> list[CellValue]:
    """One consumer: topic -> agent, its partitions, and their lag (messages after the
    commit point); DEAD: dead-lettered."""
    if "source" not in consumer:  # not answered yet
        return [consumer["id"], "-", "-", "-", "-", "-", "-"]
    node_id = consumer["node_id"]
    node = labels.get(node_id, node_id[:SHORT_ID])
    where = Cell(node, "") if consumer["reachable"] else Cell(f"{node} (?)", "yellow")
    name = f"{consumer['source']}.{consumer['consumer']} -> {consumer['agent']}"
    partitions = ",".join(map(str, consumer["partitions"])) or "-"
    paused = Cell("paused", "yellow") if consumer["paused"] else "-"
    counts = [str(consumer[k]) for k in ("lag", "processed", "dead_lettered")]
    return [name, where, partitions, *counts, paused]


def _replica_row(replica: dict[str, Any], labels: Mapping[str, str]) -> list[CellValue]:
    node_id = replica["node_id"] or "-"
    node = labels.get(node_id, node_id[:SHORT_ID])
    # (?): the supervisor could not reach the replica at its last look.
    where = Cell(node, "") if replica["reachable"] else Cell(f"{node} (?)", "yellow")
    processed, duplicates = replica.get("processed", "-"), replica.get("duplicates", "-")
    return [replica["id"], where, str(processed), str(duplicates)]
