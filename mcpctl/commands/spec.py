"""Handlers of `mcpctl init`, `mcpctl validate` and `mcpctl inventory`."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mcpctl.errors import UsageError
from specfile.errors import SpecError

# Which `init` flag supplied each part of the starter spec.
_FLAG_OF_FIELD = {
    ("name",): "--name",
    ("ssh", "user"): "--user",
    ("ssh", "key"): "--key",
    ("nodes",): "--head/--workers",
}


def cmd_init(args: argparse.Namespace) -> int:
    from mcpctl.hostrange import HostRangeError, expand_hosts
    from mcpctl.inventory import write_files_atomically
    from mcpctl.starter import default_node_names, render_starter_spec

    output = Path(args.out)
    if output.exists() and not args.force:
        raise UsageError(f"{output}: already exists — pass --force to overwrite it, or --out FILE")
    if output.is_dir():
        raise UsageError(f"{output}: is a directory — pass --out with a file name")
    try:
        workers = expand_hosts(args.workers)
    except HostRangeError as error:
        raise UsageError(f"--workers: {error}") from None
    nodes = default_node_names(args.head, workers)
    try:
        text = render_starter_spec(args.name, nodes, user=args.user, key=args.key, gpu=args.gpu)
    except SpecError as error:
        raise UsageError(_flag_problems(error, nodes)) from None
    write_files_atomically(output.parent, {output.name: text})
    print(
        f"wrote {output}: cluster {args.name!r}, {_count(1, 'head')}, "
        f"{_count(len(workers), 'worker')} — review it, then run "
        f"'mcpctl validate -f {output}'"
    )
    return 0


def _flag_problems(error: SpecError, nodes: list[tuple[str, str]]) -> str:
    # Lines of the generated text mean nothing to the user: name the flag that set the value.
    lines = []
    for problem in error.problems:
        path = problem.path
        flag = _FLAG_OF_FIELD.get(path[:2], _FLAG_OF_FIELD.get(path[:1], ""))
        if path[:1] == ("nodes",) and len(path) > 1 and isinstance(path[1], int):
            flag = "--head" if path[1] == 0 else f"--workers (address {nodes[path[1]][1]})"
        text = dataclasses.replace(problem, path=()).render(None, with_lines=False)
        lines.append(f"{flag}: {text}" if flag else text)
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    from mcpctl.spec import load_spec

    spec = load_spec(args.spec)
    gpu = sum(1 for node in spec.nodes if node.gpu is True)
    auto = sum(1 for node in spec.nodes if node.gpu == "auto")
    cpu = len(spec.nodes) - gpu - auto
    kinds = f"{gpu} gpu, {auto} auto" + (f", {cpu} cpu-only" if cpu else "")
    print(
        f"{args.spec}: ok — cluster {spec.name!r}: {_count(1, 'head')}, "
        f"{_count(len(spec.workers), 'worker')} ({kinds})"
    )
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    from mcpctl.inventory import HOSTS_FILE, write_inventory
    from mcpctl.project import inventory_dir
    from mcpctl.spec import load_spec

    spec = load_spec(args.spec)
    # Where deploy and the other playbook commands render it, so they run what this shows.
    out_dir = Path(args.out) if args.out else inventory_dir(args.spec, spec.name)
    written = write_inventory(spec, out_dir)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{out_dir}: up to date")
    print(
        f"inventory of cluster {spec.name!r} ({_count(len(spec.nodes), 'node')}): "
        f"ansible-inventory -i {out_dir / HOSTS_FILE} --graph"
    )
    return 0


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
