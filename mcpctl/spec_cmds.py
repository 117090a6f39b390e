"""Handlers of `mcpctl init`, `mcpctl validate` and `mcpctl inventory`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_INVENTORY_ROOT = Path("inventory")


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
    from mcpctl.spec import load_spec

    spec = load_spec(args.spec)
    out_dir = Path(args.output) if args.output else DEFAULT_INVENTORY_ROOT / spec.name
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
