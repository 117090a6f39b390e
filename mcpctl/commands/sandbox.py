"""Handlers of `mcpctl sandbox ...`."""

from __future__ import annotations

import argparse
import json
import os

from mcpctl.errors import UsageError
from mcpctl.sandbox import cluster
from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.state import state_root
from mcpctl.tunnel import close_tunnel


def cmd_up(args: argparse.Namespace) -> int:
    layout = SandboxLayout.default()
    if not 1 <= args.nodes <= layout.max_nodes:
        raise UsageError(
            f"--nodes {args.nodes}: give 1 to {layout.max_nodes} (the nodes' half of "
            f"{layout.subnet})"
        )
    result = cluster.up(layout, args.nodes, fill_wheelhouse=not args.no_wheelhouse)
    print(
        f"sandbox up: {len(result.nodes)} nodes answering SSH "
        f"({result.seconds_to_ssh:.1f}s from start to SSH)"
    )
    print(f"  inventory: {layout.inventory_dir / 'hosts.yml'}")
    print(f"  spec:      {layout.spec_file}")
    print(f"  try:       ansible -i {layout.inventory_dir / 'hosts.yml'} all -m ping")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    layout = SandboxLayout.default()
    # A tunnel to the dashboard (mcpctl agents/status/dashboard) would outlive its nodes.
    tunnel_dir = state_root() / layout.cluster_name
    if tunnel_dir.is_dir():
        close_tunnel(tunnel_dir)
    cluster.down(layout, purge=args.purge)
    print("sandbox down" + (" (caches purged)" if args.purge else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state = cluster.status(SandboxLayout.default())
    if args.output == "json":
        print(json.dumps(state, indent=2))
    else:
        cluster.print_status(state)
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    argv = cluster.ssh_command(SandboxLayout.default(), args.node, args.command)
    os.execvp(argv[0], argv)


def cmd_prepare(args: argparse.Namespace) -> int:
    layout = SandboxLayout.default()
    cluster.prepare_with_wheelhouse(layout)
    print(f"sandbox engine ready: network {layout.name}, gateway {layout.gateway}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    cluster.print_env(SandboxLayout.default())
    return 0
