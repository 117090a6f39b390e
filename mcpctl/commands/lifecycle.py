"""Handlers of `mcpctl deploy | scale | remove-node | upgrade | reset | health`.

Each checks the spec (exit 2 on a fault, nothing run), renders its inventory into
inventory/<cluster>/ of the project (a sandbox's spec: the sandbox's state directory),
and runs playbooks/<command>.yml on it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping

from mcpctl.errors import McpError, UsageError
from mcpctl.inventory import HOSTS_FILE, write_inventory
from mcpctl.nodeselect import ansible_limit, some_node_names
from mcpctl.project import inventory_dir, playbook_path, project_dir
from mcpctl.spec import ClusterSpec, load_spec
from mcpctl.state import runs_dir

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def cmd_deploy(args: argparse.Namespace) -> int:
    return run_lifecycle_playbook("deploy", args)


def cmd_scale(args: argparse.Namespace) -> int:
    return run_lifecycle_playbook("scale", args)


def cmd_upgrade(args: argparse.Namespace) -> int:
    return run_lifecycle_playbook("upgrade", args)


def cmd_health(args: argparse.Namespace) -> int:
    return run_lifecycle_playbook("health", args)


def cmd_remove_node(args: argparse.Namespace) -> int:
    def node_is_a_worker(spec: ClusterSpec) -> None:
        if args.node not in {node.name for node in spec.nodes}:
            raise UsageError(
                f"--node {args.node!r}: cluster {spec.name!r} has no such node "
                f"(it has {some_node_names(spec)})"
            )
        if args.node == spec.head.name:
            raise UsageError(
                f"--node {args.node!r} is the head node: remove-node removes workers "
                "(a Ray cluster cannot lose its head; use reset)"
            )

    return run_lifecycle_playbook(
        "remove-node", args, extra_vars={"node": args.node}, before_run=node_is_a_worker
    )


def cmd_reset(args: argparse.Namespace) -> int:
    def confirm(spec: ClusterSpec) -> None:
        # Check mode changes nothing, so there is nothing to confirm.
        if args.yes or args.check:
            return
        if not sys.stdin.isatty():
            raise UsageError(
                "reset asks for confirmation and stdin is not a terminal — "
                "pass --yes to reset without asking"
            )
        targets = f"nodes matching '{args.limit}'" if args.limit else f"all {len(spec.nodes)} nodes"
        print(f"reset tears down what deploy set up on {targets} of cluster {spec.name!r}.")
        try:
            answer = input("Type the cluster name to go on: ")
        except EOFError:
            answer = ""
        if answer.strip() != spec.name:
            raise McpError("reset not confirmed: nothing was run")

    return run_lifecycle_playbook("reset", args, before_run=confirm)


def run_lifecycle_playbook(
    name: str,
    args: argparse.Namespace,
    extra_vars: Mapping[str, str] | None = None,
    before_run: Callable[[ClusterSpec], None] | None = None,
) -> int:
    """Check the spec and the flags, render the inventory, run playbooks/`name`.yml, print
    the per-host summary. Exit 0, 1 if any host failed or was unreachable, 2 for bad input,
    128 + the signal that stopped it."""
    spec = load_spec(args.spec)
    variables = {**parse_extra_vars(args.extra_vars), **(extra_vars or {})}
    limit = ansible_limit(spec, args.limit)
    playbook = playbook_path(name, args.playbook_dir)
    if before_run is not None:
        before_run(spec)
    inventory = inventory_dir(args.spec, spec.name)
    write_inventory(spec, inventory)

    # Only now: bad input ends the command before ansible-runner (and ansible) load.
    from mcpctl.runner import PlaybookRun, print_summary, print_summary_json, run_playbook

    as_json = args.output == "json"
    outcome = run_playbook(
        PlaybookRun(
            name=name,
            playbook=playbook,
            inventory=inventory / HOSTS_FILE,
            project_dir=project_dir(),
            runs_dir=runs_dir(spec.name),
            hosts=tuple(node.name for node in spec.nodes),
            limit=limit,
            tags=args.tags,
            skip_tags=args.skip_tags,
            check=args.check,
            diff=args.diff,
            extra_vars=variables,
            verbosity=args.verbose,
        ),
        # JSON alone on stdout, for scripts; the progress still shows, on stderr.
        stream=sys.stderr if as_json else None,
    )
    (print_summary_json if as_json else print_summary)(outcome)
    return outcome.exit_code


def parse_extra_vars(values: list[str] | None) -> dict[str, str]:
    """`-e KEY=VALUE` flags as a mapping; values stay strings, as with ansible's own -e."""
    variables = {}
    for value in values or []:
        key, separator, text = value.partition("=")
        if not separator or not _VARIABLE_NAME.match(key):
            raise UsageError(
                f"-e {value!r}: expected KEY=VALUE, KEY made of letters, digits and '_' "
                "(not starting with a digit)"
            )
        variables[key] = text
    return variables
