"""`mcpctl dashboard`: the Ray dashboard of the spec's cluster, through an SSH tunnel."""

from __future__ import annotations

import argparse
import time

from mcpctl.errors import TunnelFailed
from mcpctl.jobsapi import reach
from mcpctl.specsource import find_spec
from mcpctl.state import cluster_state_dir
from mcpctl.tunnel import close_tunnel, tunnel_alive

WATCH_SECONDS = 1.0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.close:
        return _close(args)
    api = reach(args)
    tunnel = api.tunnel
    assert tunnel is not None  # reach() without --address always tunnels
    print(f"Ray dashboard: {api.address}  (ssh tunnel to {tunnel.destination}, pid {tunnel.pid})")
    print(f"token:         {api.token_file} (the dashboard asks for it; never shown here)")
    print(
        "ray CLI:       "
        f"RAY_ADDRESS={api.address} RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={api.token_file} "
        "ray job list"
    )
    stays = " (the tunnel was open before: it stays open)" if api.tunnel_was_open else ""
    print(f"Ctrl-C to close{stays}")
    try:
        while tunnel_alive(tunnel):
            time.sleep(WATCH_SECONDS)
    except KeyboardInterrupt:
        if not api.tunnel_was_open:
            _close(args)
        return 0
    raise TunnelFailed(f"tunnel failed: ssh to {tunnel.destination} (pid {tunnel.pid}) ended")


def _close(args: argparse.Namespace) -> int:
    from mcpctl.spec import load_spec

    spec = load_spec(find_spec(args.spec))
    closed = close_tunnel(cluster_state_dir(spec.name))
    print(
        f"closed the tunnel to {closed.destination} (pid {closed.pid})"
        if closed
        else f"no tunnel of cluster {spec.name!r} was open"
    )
    return 0
