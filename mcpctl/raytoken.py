"""The cluster's Ray token, read from the head over SSH (it is root's: sudo) and cached in the
cluster's state dir, mode 0600. It is never printed, logged or put in a message."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mcpctl.errors import HeadUnreachable, NoToken
from mcpctl.openssh import CONNECT_TIMEOUT_SECONDS, SSH_FAILED, ssh_argv, ssh_complaint
from mcpctl.spec import ClusterSpec
from mcpctl.state import write_private

# ray_cluster_token_file in roles/ray_cluster/defaults/main.yml (a unit test keeps them equal).
HEAD_TOKEN_PATH = "/etc/mcp/ray_auth_token"
CACHE_NAME = "ray_token"
FETCH_TIMEOUT_SECONDS = CONNECT_TIMEOUT_SECONDS + 20


def cache_path(state_dir: Path) -> Path:
    return state_dir / CACHE_NAME


def cached_token(state_dir: Path) -> str | None:
    path = cache_path(state_dir)
    return (path.read_text().strip() or None) if path.is_file() else None


def fetch_token(spec: ClusterSpec, state_dir: Path) -> str:
    """Read the token on the head, cache it, return it."""
    head = spec.head
    command = [*ssh_argv(spec, head), "sudo", "-n", "cat", HEAD_TOKEN_PATH]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise HeadUnreachable(
            f"head unreachable: ssh {spec.ssh.user}@{head.address} gave no answer within "
            f"{FETCH_TIMEOUT_SECONDS}s"
        ) from None
    if done.returncode == SSH_FAILED:
        raise HeadUnreachable(
            f"head unreachable: ssh {spec.ssh.user}@{head.address} failed: "
            f"{ssh_complaint(done.stderr)}"
        )
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        raise NoToken(_no_token_message(spec, done.stderr))
    write_private(cache_path(state_dir), token + "\n")
    return token


def _no_token_message(spec: ClusterSpec, stderr: str) -> str:
    where = f"{spec.head.name} ({spec.head.address}):{HEAD_TOKEN_PATH}"
    if "password" in stderr:
        return (
            f"no token: reading {where} needs sudo, and sudo asks {spec.ssh.user} for a "
            "password — give the SSH user passwordless sudo (mcpctl preflight checks it)"
        )
    if "No such file" in stderr:
        return (
            f"no token: {where} does not exist — deploy the cluster first (mcpctl deploy), "
            "or pass --address and --token-file for a cluster set up another way"
        )
    said = ssh_complaint(stderr) if stderr.strip() else "it is empty"
    return f"no token: could not read {where}: {said}"
