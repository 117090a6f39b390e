"""Render a cluster spec as an Ansible inventory directory (hosts.yml + group_vars/).

The output depends only on the spec: hosts keep the spec's order, variables are sorted, and
there are no timestamps, so the same spec always gives byte-identical files.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpctl.errors import UsageError
from mcpctl.spec import ClusterSpec, NodeSpec
from mcpctl.templating import render

HOSTS_FILE = "hosts.yml"
GROUP_VARS_FILE = "group_vars/mcp_cluster.yml"

CLUSTER_GROUP = "mcp_cluster"
HEAD_GROUP = "mcp_head"
WORKERS_GROUP = "mcp_workers"
GPU_GROUP = "mcp_gpu"
GCS_REDIS_GROUP = "mcp_gcs_redis"


@dataclass(frozen=True)
class _Host:
    name: str
    vars: dict[str, Any]


@dataclass(frozen=True)
class _Group:
    name: str
    hosts: list[_Host]


def host_vars(node: NodeSpec) -> dict[str, Any]:
    """The variables each host gets in hosts.yml (mcp_gpu is true, false or "auto")."""
    return {
        "ansible_host": node.address,
        "mcp_gpu": node.gpu,
        "mcp_labels": dict(sorted(node.labels.items())),
        "mcp_node_role": node.role,
    }


def connection_vars(spec: ClusterSpec) -> dict[str, Any]:
    """Ansible's SSH settings for every host."""
    ssh = spec.ssh
    # Ansible splits this string with shlex, so each option is quoted the same way.
    options = ["StrictHostKeyChecking=yes"]
    if ssh.known_hosts:
        options.append(f"UserKnownHostsFile={ssh.known_hosts}")
    if ssh.jump_host:
        options.append(f"ProxyJump={ssh.jump_host}")
    return {
        "ansible_port": ssh.port,
        "ansible_ssh_common_args": " ".join(f"-o {shlex.quote(option)}" for option in options),
        "ansible_ssh_private_key_file": ssh.key,
        "ansible_user": ssh.user,
    }


def cluster_vars(spec: ClusterSpec) -> dict[str, Any]:
    """The spec's cluster-wide settings as `mcp_*` variables, sorted by name."""
    variables: dict[str, Any] = {
        "mcp_apt_proxy": spec.apt_proxy,
        "mcp_cluster_name": spec.name,
        "mcp_ray_head_address": spec.head.address,
        "mcp_ray_head_node": spec.head.name,
    }
    for section in ("ray", "python", "nvidia", "ingress"):
        for field, value in getattr(spec, section).model_dump().items():
            variables[f"mcp_{section}_{field}"] = value
    return dict(sorted(variables.items()))


def render_inventory(spec: ClusterSpec) -> dict[str, str]:
    """All inventory files, as {path relative to the inventory directory: text}."""
    hosts = {node.name: _Host(node.name, host_vars(node)) for node in spec.nodes}
    gpu_members = [_Host(node.name, {}) for node in spec.nodes if node.gpu is True]
    redis_node = spec.ray.redis_node if spec.ray.gcs_storage == "redis" else None
    redis_members = [_Host(node.name, {}) for node in spec.nodes if node.name == redis_node]
    groups = [
        _Group(HEAD_GROUP, [hosts[node.name] for node in spec.nodes if node.role == "head"]),
        _Group(WORKERS_GROUP, [hosts[node.name] for node in spec.nodes if node.role == "worker"]),
        # GPU hosts are defined above; listing them here only adds the group membership.
        # Nodes with gpu: auto join mcp_gpu at deploy time, once their GPUs are detected.
        _Group(GPU_GROUP, gpu_members),
        # The node holding Redis for the GCS (ray.gcs_storage: redis); empty otherwise.
        _Group(GCS_REDIS_GROUP, redis_members),
    ]
    return {
        HOSTS_FILE: render("inventory_hosts.yml.j2", cluster_name=spec.name, groups=groups),
        GROUP_VARS_FILE: render(
            "inventory_group_vars.yml.j2",
            cluster_name=spec.name,
            connection_vars=connection_vars(spec),
            cluster_vars=cluster_vars(spec),
        ),
    }


def write_inventory(spec: ClusterSpec, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Render, then write the files of `out_dir` that changed; returns the paths written.

    Everything is rendered before anything is written, and each file is replaced atomically
    (a temporary file in the same directory, then rename), so a failure leaves every file
    either as it was or complete. Other files in `out_dir` (host_vars/, ...) are left alone.
    """
    files = render_inventory(spec)
    return write_files_atomically(Path(out_dir), files)


def write_files_atomically(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write {relative path: text} under `out_dir`, skipping files whose text is unchanged."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a directory — choose another -o")
    changed = {
        out_dir / relative: text
        for relative, text in files.items()
        if _current_text(out_dir / relative) != text
    }
    staged: list[tuple[Path, Path]] = []
    try:
        for target, text in changed.items():
            staged.append((_stage(target, text), target))
        for temporary, target in staged:
            os.replace(temporary, target)
    except OSError as error:
        raise UsageError(
            f"{out_dir}: cannot write {error.filename or 'files'}: {error.strerror}"
        ) from None
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return list(changed)


def _current_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None


def _stage(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; these files are as readable as any other the user writes.
        os.chmod(name, 0o666 & ~_umask())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
