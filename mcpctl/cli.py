"""Command-line entry point.

Only argparse is imported at start-up: each command names its handler as "module:function"
and that module (with pydantic, jinja2, ansible, ray...) is imported when the command runs,
so `mcpctl --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from mcpctl import __version__
from mcpctl.errors import McpError
from specfile.errors import SpecError

DEFAULT_SPEC = "cluster.yaml"


def _spec_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--spec",
        default=os.environ.get("MCP_SPEC", DEFAULT_SPEC),
        metavar="FILE",
        help="cluster spec (default: $MCP_SPEC or ./cluster.yaml)",
    )


def _command(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: str,
    help_text: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=description or help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _add_spec_commands(sub: argparse._SubParsersAction) -> None:
    init = _command(
        sub,
        "init",
        "mcpctl.commands.spec:cmd_init",
        "write a commented starter cluster spec",
        "Write a commented starter cluster spec from flags.\n\n"
        "example:\n"
        "  mcpctl init --name lab --head 10.0.0.1 --workers '10.0.0.[2:9]' --out cluster.yaml",
    )
    init.add_argument("--name", default="mcp", help="cluster name (default: mcp)")
    init.add_argument("--head", required=True, metavar="ADDRESS", help="head node address")
    init.add_argument(
        "--workers",
        action="append",
        default=[],
        metavar="PATTERN",
        help="worker addresses; ranges like 10.0.0.[2:9] or gpu[01:04].lab expand (repeatable)",
    )
    init.add_argument("--user", default="ansible", help="SSH user (default: ansible)")
    init.add_argument("--key", default="~/.ssh/id_ed25519", help="SSH private key")
    init.add_argument("--gpu", choices=["auto", "true", "false"], default="auto")
    _out_option(init, DEFAULT_SPEC, "FILE", f"the spec to write (default: {DEFAULT_SPEC})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    validate = _command(
        sub,
        "validate",
        "mcpctl.commands.spec:cmd_validate",
        "check a cluster spec",
        "Check a cluster spec. Exit 0 when valid; exit 2 with the file, line and fix otherwise.",
    )
    _spec_option(validate)

    inventory = _command(
        sub,
        "inventory",
        "mcpctl.commands.spec:cmd_inventory",
        "render the Ansible inventory of a cluster spec",
        "Render the Ansible inventory (hosts.yml + group_vars/) of a cluster spec.\n"
        "The same spec always gives byte-identical files.",
    )
    _spec_option(inventory)
    _out_option(inventory, None, "DIR", "the folder to write (default: inventory/<cluster name>)")


def _out_option(
    parser: argparse.ArgumentParser, default: str | None, metavar: str, help_text: str
) -> None:
    # -O/--out names what a command writes; -o/--output is the format of what it prints.
    parser.add_argument("-O", "--out", default=default, metavar=metavar, help=help_text)


def _add_sandbox_commands(sub: argparse._SubParsersAction) -> None:
    sandbox = sub.add_parser(
        "sandbox",
        help="a local cluster of real test hosts (podman + systemd)",
        description="N real Debian test hosts on this machine, reachable over SSH, "
        "with an apt proxy and a Python wheelhouse on the gateway address.",
    )
    ssub = sandbox.add_subparsers(dest="sandbox_command", metavar="COMMAND", required=True)
    up = _command(
        ssub, "up", "mcpctl.commands.sandbox:cmd_up", "start N test hosts (safe to repeat)"
    )
    up.add_argument("--nodes", type=int, default=3, help="number of hosts (default: 3)")
    up.add_argument(
        "--no-wheelhouse",
        action="store_true",
        help="skip filling the Python wheelhouse (roles that install Python packages need it)",
    )
    down = _command(ssub, "down", "mcpctl.commands.sandbox:cmd_down", "remove everything up made")
    down.add_argument(
        "--purge",
        action="store_true",
        help="also delete the caches (node image, wheelhouse, apt cache)",
    )
    status = _command(
        ssub, "status", "mcpctl.commands.sandbox:cmd_status", "show hosts and services"
    )
    _output_option(status)
    ssh = _command(ssub, "ssh", "mcpctl.commands.sandbox:cmd_ssh", "open an SSH session on a host")
    ssh.add_argument("node", help="node name, e.g. node1")
    ssh.add_argument("command", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    _command(
        ssub,
        "prepare",
        "mcpctl.commands.sandbox:cmd_prepare",
        "image, network, gateway services and wheelhouse, no nodes (used by Molecule)",
    )
    _command(
        ssub,
        "env",
        "mcpctl.commands.sandbox:cmd_env",
        "print shell exports that point podman/molecule at the sandbox engine",
        "Print shell exports for the sandbox's podman configuration:\n"
        '  eval "$(mcpctl sandbox env)"; podman ps',
    )


def _reach_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--spec",
        metavar="FILE",
        help="cluster spec whose head to reach (default: $MCP_SPEC, ./cluster.yaml, else the "
        "sandbox's spec if one is up)",
    )


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    _reach_options(parser)
    parser.add_argument(
        "--address",
        metavar="URL",
        help="a Jobs API reached another way (default: $MCP_RAY_ADDRESS; without either, "
        "an SSH tunnel to the spec's head)",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="Ray auth token, sent as a bearer header (default: from the spec's head over SSH, "
        "cached; with --address: $MCP_RAY_TOKEN, $MCP_RAY_TOKEN_FILE, then ~/.ray/auth_token)",
    )
    _output_option(parser)


def _output_option(
    parser: argparse.ArgumentParser,
    help_text: str = "text for people (a table), json for scripts",
) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default="text",
        help=f"{help_text} (default: text)",
    )


_REACH_HELP = (
    "The cluster is reached from its spec: an SSH tunnel to the dashboard on the head\n"
    "(reused by later commands while it lives; 'mcpctl dashboard --close' ends it) and the\n"
    "head's Ray token, read over SSH with sudo and cached 0600 in\n"
    "~/.local/state/mcp-cluster/<cluster>/. --address and --token-file are for a cluster\n"
    "reached another way."
)


def _add_agent_commands(sub: argparse._SubParsersAction) -> None:
    agents = sub.add_parser(
        "agents",
        help="deploy and operate agents on the Ray cluster",
        description="Deploy agents.yaml files as Ray jobs and operate them. "
        "See agent_runtime/README.md for the file format.\n\n" + _REACH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    asub = agents.add_subparsers(dest="agents_command", metavar="COMMAND", required=True)
    deploy = _command(
        asub,
        "deploy",
        "mcpctl.commands.agents:cmd_deploy",
        "validate an agents.yaml and start it as a Ray job",
        "Validate an agents.yaml (exit 2 with file:line on errors) and submit it through the "
        "Jobs API;\nthe job's driver owns the agents until 'mcpctl agents stop NAME'. While it "
        "waits it says\nfor what: the job's start, each replica's placement on a node, each "
        "agent's setup(),\nwith the time so far.",
    )
    deploy.add_argument("agents_file", metavar="AGENTS_YAML", help="the deployment to start")
    deploy.add_argument(
        "--wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="wait until every replica is up (0: return after submitting; default 120)",
    )
    _cluster_options(deploy)
    listing = _command(asub, "list", "mcpctl.commands.agents:cmd_list", "list deployments")
    listing.add_argument("--all", action="store_true", help="include stopped and failed ones")
    _cluster_options(listing)
    status = _command(
        asub, "status", "mcpctl.commands.agents:cmd_status", "replicas, nodes and node health"
    )
    status.add_argument("name", nargs="?", help="only this deployment")
    _cluster_options(status)
    stop = _command(
        asub, "stop", "mcpctl.commands.agents:cmd_stop", "checkpoint and stop a deployment"
    )
    stop.add_argument("name")
    stop.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS")
    _cluster_options(stop)
    logs = _command(
        asub,
        "logs",
        "mcpctl.commands.agents:cmd_logs",
        "a deployment's driver log",
        "A deployment's driver log, nodes named by hostname; colour codes only on a terminal.",
    )
    logs.add_argument("name")
    _cluster_options(logs)
    cordon = _command(
        asub, "cordon", "mcpctl.commands.agents:cmd_cordon", "drain agents off a node (maintenance)"
    )
    cordon.add_argument(
        "node", help="the node's hostname as 'mcpctl status' shows it, its id, or an id prefix"
    )
    cordon.add_argument("--reason", default="cordoned by operator")
    _cluster_options(cordon)
    uncordon = _command(
        asub,
        "uncordon",
        "mcpctl.commands.agents:cmd_uncordon",
        "let a node take agents again once it passes its health checks",
    )
    uncordon.add_argument("node", help="hostname, id or id prefix, as for cordon")
    _cluster_options(uncordon)

    send = _command(
        asub,
        "send",
        "mcpctl.commands.agents:cmd_send",
        "send messages to an agent through its deployment's gateways",
        "Send one message, or a file of them (one JSON value a line; '-' reads stdin), to an\n"
        "agent through the ingress gateways of its deployment, and print each reply as a line of\n"
        "JSON. The gateways and the client token come from the running deployment and the\n"
        "cluster's state dir (where 'agents deploy' keeps it); a gateway that does not answer\n"
        "is left for the next one, and a full deployment (429) is retried after its\n"
        "Retry-After. Exit 1 if any reply is an error.\n\n"
        "examples:\n"
        "  mcpctl agents send detector \\\n"
        """      '{"host": "web-1", "seq": 1, "features": [0.5, 0.4, 0.4, 0.5, 0.1, 0.3, """
        """0.4, 0.5]}'\n"""
        "  mcpctl agents send ops/detector -i metrics.jsonl\n"
        "  python -m agent_runtime.examples.produce metrics --messages 1000 \\\n"
        "      | mcpctl agents send ops/detector -i -\n\n" + _REACH_HELP,
    )
    send.add_argument(
        "target", metavar="[DEPLOYMENT/]AGENT", help="the agent; its deployment if two have one"
    )
    send.add_argument("message", nargs="?", help="one message as JSON (or use -i)")
    send.add_argument(
        "-i", "--input", metavar="FILE", help="one JSON message a line ('-': standard input)"
    )
    send.add_argument(
        "--batch", type=int, default=256, metavar="N", help="messages per request (default 256)"
    )
    send.add_argument(
        "--gateway",
        action="append",
        metavar="URL",
        help="a gateway to use instead of asking the cluster (repeat for failover)",
    )
    send.add_argument(
        "--ingress-token-file",
        metavar="FILE",
        help="the clients' token (default: the one 'agents deploy' made for the deployment)",
    )
    send.add_argument("--ca-file", metavar="FILE", help="CA bundle for a gateway with TLS")
    send.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up on a request no gateway took in this long (default 30)",
    )
    _cluster_options(send)

    cluster_status = _command(
        sub,
        "status",
        "mcpctl.commands.agents:cmd_status",
        "nodes with their health and the agents on each",
        "Every node of the Ray cluster with its health (CPU, memory, disk, GPU, Ray) and the\n"
        "agents on it.\n\n" + _REACH_HELP,
    )
    _cluster_options(cluster_status)

    dashboard = _command(
        sub,
        "dashboard",
        "mcpctl.commands.dashboard:cmd_dashboard",
        "open the Ray dashboard through an SSH tunnel, until Ctrl-C",
        "Open (or reuse) the SSH tunnel to the Ray dashboard on the spec's head, print its\n"
        "URL, where the token is, and what the ray CLI needs, and keep the tunnel open until\n"
        "Ctrl-C (a tunnel that was already open stays open for the commands using it).\n\n"
        "example:\n"
        "  mcpctl dashboard -f cluster.yaml\n"
        "  mcpctl dashboard --close      # end the tunnel the agents/status commands reuse",
    )
    _reach_options(dashboard)
    dashboard.add_argument(
        "--close", action="store_true", help="end the cluster's tunnel and return"
    )


# command -> what its playbook does; each runs playbooks/<command>.yml.
_LIFECYCLE_COMMANDS = {
    "deploy": "install and start the cluster on its nodes",
    "scale": "add the spec's new nodes to a running cluster",
    "remove-node": "take one worker out of the cluster",
    "upgrade": "move the nodes to the spec's versions",
    "reset": "tear down what deploy set up (asks first)",
    "health": "check the health of the cluster",
}


def _add_lifecycle_commands(sub: argparse._SubParsersAction) -> None:
    for name, purpose in _LIFECYCLE_COMMANDS.items():
        parser = _command(
            sub,
            name,
            f"mcpctl.commands.lifecycle:cmd_{name.replace('-', '_')}",
            purpose,
            f"{purpose[0].upper()}{purpose[1:]}: runs playbooks/{name}.yml on the cluster of the\n"
            "spec, with live per-host progress and a per-host summary. Exit 0 when every host\n"
            "succeeded, 1 when any failed or was unreachable, 2 for bad input, 130 on Ctrl-C.",
        )
        _spec_option(parser)
        if name == "remove-node":
            parser.add_argument(
                "--node",
                required=True,
                metavar="NAME",
                help="the worker to remove (passed to the playbook as the extra var 'node')",
            )
        if name == "reset":
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        _playbook_options(parser)


def _playbook_options(parser: argparse.ArgumentParser) -> None:
    _limit_option(parser)
    parser.add_argument("--tags", metavar="TAGS", help="only tasks with these tags (a,b)")
    parser.add_argument("--skip-tags", metavar="TAGS", help="skip tasks with these tags (a,b)")
    parser.add_argument("--check", action="store_true", help="change nothing: report what would")
    parser.add_argument("--diff", action="store_true", help="show the changes made to files")
    parser.add_argument(
        "-e",
        "--extra-var",
        dest="extra_vars",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a variable for the playbook, as a string (repeatable)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="print every host's result, and pass -v on to ansible (its output is in the "
        "log); repeat for more",
    )
    _output_option(parser, "text: live progress and a per-host table; json: the summary as JSON "
                   "on stdout, the progress on stderr")  # fmt: skip
    # For tests and playbook development: run <command>.yml from another directory.
    parser.add_argument("--playbook-dir", metavar="DIR", help=argparse.SUPPRESS, default=None)


def _add_node_commands(sub: argparse._SubParsersAction) -> None:
    run = _command(
        sub,
        "exec",
        "mcpctl.commands.nodes:cmd_exec",
        "run a shell command on the nodes in parallel over SSH",
        "Run a shell command on the nodes in parallel over SSH (strict host-key checking\n"
        "against the spec's known_hosts). Each output line is prefixed with its node; then\n"
        "each node's exit status. Exit 1 unless the command exited 0 on every node.\n\n"
        "example:\n"
        "  mcpctl exec --limit workers -- 'df -h / | tail -1'\n"
        "  mcpctl exec --limit 'workers:!gpu-*' -o json -- uptime",
    )
    _spec_option(run)
    _limit_option(run)
    run.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="stop the command after S seconds on each node (default: 60; 0: no limit)",
    )
    _output_option(
        run,
        "text: each line as it comes, prefixed with its node, then each node's outcome; "
        "json: each node's outcome and output, at the end",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")

    preflight = _command(
        sub,
        "preflight",
        "mcpctl.commands.nodes:cmd_preflight",
        "check that every node is ready for a playbook",
        "Check every node before a playbook runs: SSH, a supported OS (Debian 12,\n"
        "Ubuntu 22.04/24.04, RHEL-family 9), 10 GiB free on /, memory, python3, passwordless\n"
        "sudo, and NVIDIA GPUs on PCI against the spec's gpu: setting. Exit 1 if any node fails.",
    )
    _spec_option(preflight)
    _limit_option(preflight)
    preflight.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="per node (default: 30)"
    )
    _output_option(preflight)


_LIMIT_HELP = (
    "only these nodes: an Ansible host pattern on the spec's nodes: names, head, workers, "
    "all, globs (node*), a:b, a:&b, a:!b, comma lists"
)


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", metavar="PATTERN", help=_LIMIT_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcpctl",
        description="Operate an mcp-cluster: spec -> inventory -> Ansible -> Ray cluster.",
        epilog="Run 'mcpctl COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mcpctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_spec_commands(sub)
    _add_lifecycle_commands(sub)
    _add_node_commands(sub)
    _add_sandbox_commands(sub)
    _add_agent_commands(sub)
    return parser


def _resolve(handler: str) -> Callable[[argparse.Namespace], int]:
    module_name, function_name = handler.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _resolve(args.handler)(args)
    except (McpError, SpecError) as error:
        print(f"mcpctl: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("mcpctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mcpctl status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
