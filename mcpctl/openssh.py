"""OpenSSH command lines to a node of the spec, checked as strictly as mcpctl.remote checks:
the spec's user, key, port and jump host, host keys only from the spec's known_hosts (never
trusted on first use), no password prompts, and no ~/.ssh/config in the way."""

from __future__ import annotations

import os
from collections.abc import Sequence

from mcpctl.spec import ClusterSpec, NodeSpec

# A list so tests can put a fake in its place.
SSH_PROGRAM: list[str] = ["ssh"]
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
CONNECT_TIMEOUT_SECONDS = 10
# ssh's own exit status when the connection failed (rather than the remote command).
SSH_FAILED = 255


def known_hosts_file(spec: ClusterSpec) -> str:
    return spec.ssh.known_hosts or os.path.expanduser(DEFAULT_KNOWN_HOSTS)


def ssh_argv(spec: ClusterSpec, node: NodeSpec, options: Sequence[str] = ()) -> list[str]:
    """`ssh ... user@node` with `options` before the destination; append the remote command."""
    jump = ["-J", spec.ssh.jump_host] if spec.ssh.jump_host else []
    return [
        *SSH_PROGRAM,
        *("-F", "/dev/null"),  # the spec alone says how to connect, as it does for ansible
        *("-o", "BatchMode=yes"),
        *("-o", "StrictHostKeyChecking=yes"),
        *("-o", f"UserKnownHostsFile={known_hosts_file(spec)}"),
        *("-o", "IdentitiesOnly=yes"),
        *("-o", f"ConnectTimeout={CONNECT_TIMEOUT_SECONDS}"),
        *("-i", spec.ssh.key),
        *("-p", str(spec.ssh.port)),
        *jump,
        *options,
        f"{spec.ssh.user}@{node.address}",
    ]


def ssh_complaint(stderr: str) -> str:
    """What ssh said about a failed connection, as one line (ssh prints no secrets)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    # Drop the "Warning: Permanently added" kind of chatter; the last lines say why it failed.
    meaningful = [line for line in lines if not line.startswith("Warning:")] or lines
    return "; ".join(meaningful[-2:]) or "ssh failed without a message"
