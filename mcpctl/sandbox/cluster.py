"""`mcpctl sandbox up | down | status`: the whole life of the sandbox cluster."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mcpctl.errors import McpError
from mcpctl.sandbox import services, wheelhouse
from mcpctl.sandbox.engine import Podman
from mcpctl.sandbox.image import ensure_image
from mcpctl.sandbox.nodes import (
    Node,
    ensure_network,
    node_options,
    remove_containers,
    remove_network,
    sandbox_containers,
    start_node,
    wait_for_all,
    wanted_nodes,
)
from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.tables import Cell, Column, print_table

SSH_USER = "ansible"
SSH_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class UpResult:
    nodes: list[Node]
    seconds_to_ssh: float


def prepare(layout: SandboxLayout) -> tuple[Podman, str]:
    """Image, network, SSH key and gateway services: everything but the nodes.

    Returns the engine and the node image's tag."""
    podman = Podman(layout)
    podman.write_config(default_network=False)
    image = ensure_image(podman)
    ensure_network(podman)
    ensure_ssh_key(layout)
    services.start_all(layout)
    return podman, image


def prepare_with_wheelhouse(layout: SandboxLayout) -> None:
    """What Molecule's scenarios need: `prepare`, and the wheelhouse the cluster scenario
    installs from."""
    prepare(layout)
    wheelhouse.fill(layout)


def ensure_ssh_key(layout: SandboxLayout) -> None:
    layout.ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not layout.private_key.exists():
        subprocess.run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"{layout.name}@mcpctl",
                "-f",
                str(layout.private_key),
            ],
            check=True,
        )
    # sshd's StrictModes wants this tree root-owned and not writable by others.
    layout.authorized_keys_dir.mkdir(mode=0o755, exist_ok=True)
    authorized = layout.authorized_keys_dir / SSH_USER
    authorized.write_text(Path(f"{layout.private_key}.pub").read_text())
    authorized.chmod(0o644)


def up(layout: SandboxLayout, count: int, fill_wheelhouse: bool) -> UpResult:
    if os.geteuid() != 0:
        raise McpError("the sandbox runs rootful podman: run mcpctl sandbox as root")
    nodes = wanted_nodes(layout, count)
    podman, image = prepare(layout)
    started = time.monotonic()
    _remove_extra_nodes(podman, nodes)
    for node in nodes:
        start_node(podman, node, image)
    host_keys = wait_for_all(podman, nodes, SSH_TIMEOUT_SECONDS)
    seconds_to_ssh = time.monotonic() - started
    _write_known_hosts(layout, nodes, host_keys)
    if fill_wheelhouse:
        wheelhouse.fill(layout)
    _write_spec_and_inventory(layout, nodes)
    return UpResult(nodes=nodes, seconds_to_ssh=seconds_to_ssh)


def _remove_extra_nodes(podman: Podman, nodes: list[Node]) -> None:
    wanted = {node.container(podman.layout) for node in nodes}
    extra = [c["Names"][0] for c in sandbox_containers(podman) if c["Names"][0] not in wanted]
    remove_containers(podman, extra)


def _write_known_hosts(layout: SandboxLayout, nodes: list[Node], keys: dict[str, str]) -> None:
    lines = []
    for node in nodes:
        key_type, key_data = keys[node.name].split()[:2]
        lines.append(f"{node.address} {key_type} {key_data}\n")
    layout.known_hosts.write_text("".join(lines))


def _write_spec_and_inventory(layout: SandboxLayout, nodes: list[Node]) -> None:
    from mcpctl.inventory import write_inventory
    from mcpctl.spec import load_spec
    from mcpctl.starter import render_starter_spec

    text = render_starter_spec(
        layout.cluster_name,
        [(node.name, node.address) for node in nodes],
        user=SSH_USER,
        key=str(layout.private_key),
        gpu="false",
        known_hosts=str(layout.known_hosts),
        apt_proxy=services.apt_proxy_url(layout),
        wheelhouse=services.wheelhouse_url(layout) if wheelhouse.is_filled(layout) else None,
        allowed_networks=[str(layout.node_network)],
        # This machine plays the clients outside the cluster: the gateway reaches the ingress.
        ingress_allowed_networks=[f"{layout.gateway}/32"],
    )
    layout.spec_file.write_text(text)
    write_inventory(load_spec(layout.spec_file), layout.inventory_dir)


def down(layout: SandboxLayout, purge: bool) -> None:
    podman = Podman(layout)
    # A configuration naming no default network works whether or not that network exists.
    podman.write_config(default_network=False)
    remove_containers(podman, [c["Names"][0] for c in sandbox_containers(podman)])
    remove_network(podman)
    services.stop_all(layout)
    engine_idle = _engine_idle(podman)
    _unmount_under(layout.state_dir)
    shutil.rmtree(layout.state_dir, ignore_errors=True)
    if purge:
        shutil.rmtree(layout.cache_dir, ignore_errors=True)
    if engine_idle:
        # The last sandbox is gone: the shared engine's runtime state goes too.
        _unmount_under(layout.engine_dir, layout.image_storage)
        shutil.rmtree(layout.engine_dir, ignore_errors=True)
        if purge:
            shutil.rmtree(layout.shared_cache_dir, ignore_errors=True)


def _engine_idle(podman: Podman) -> bool:
    """No network and no container of any sandbox (or Molecule scenario) is left."""
    if any(podman.layout.network_config_dir.glob("*.json")):
        return False
    listed = podman.run(["ps", "--all", "--quiet"], check=False)
    return listed.returncode == 0 and not listed.stdout.strip()


def _unmount_under(*roots: Path) -> None:
    """containers/storage leaves a private bind mount of its overlay dir behind; so may runc."""
    prefixes = tuple(f"{root.resolve()}/" for root in roots)
    mounted = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount_point in sorted(mounted, key=len, reverse=True):
        if mount_point.startswith(prefixes):
            subprocess.run(["umount", "--lazy", mount_point], check=False)


def status(layout: SandboxLayout) -> dict[str, Any]:
    """The sandbox's hosts, gateway services and files, as data (`mcpctl sandbox status`)."""
    if not layout.containers_conf.exists():
        return {"up": False}
    podman = Podman(layout)
    nodes = []
    for container in sorted(sandbox_containers(podman), key=lambda c: c["Names"][0]):
        name = container["Names"][0]
        address = _container_address(podman, name) if container.get("Networks") else "-"
        nodes.append(
            {
                "node": name.removeprefix(f"{layout.name}-"),
                "address": address,
                "state": container["State"],
            }
        )
    return {
        "up": True,
        "nodes": nodes,
        "services": {name: services.running_pid(layout, name) for name in services.SERVICE_NAMES},
        "apt_proxy": services.apt_proxy_url(layout),
        "wheelhouse": services.wheelhouse_url(layout),
        "wheelhouse_filled": wheelhouse.is_filled(layout),
        "spec": str(layout.spec_file),
        "inventory": str(layout.inventory_dir / "hosts.yml"),
        "known_hosts": str(layout.known_hosts),
    }


def print_status(state: dict[str, Any], stream: TextIO | None = None) -> None:
    out = stream or sys.stdout
    if not state["up"]:
        out.write("sandbox: down\n")
        return
    rows = [
        [node["node"], node["address"],
         Cell(node["state"], "green" if node["state"] == "running" else "bold red")]
        for node in state["nodes"]
    ]  # fmt: skip
    print_table([Column("NODE"), Column("ADDRESS"), Column("STATE")], rows, out)
    lines = [
        f"service {name}: {f'running, pid {pid}' if pid else 'stopped'}"
        for name, pid in state["services"].items()
    ]
    lines += [
        f"apt proxy:   {state['apt_proxy']}",
        f"wheelhouse:  {state['wheelhouse']}{'' if state['wheelhouse_filled'] else ' (empty)'}",
        f"spec:        {state['spec']}",
        f"inventory:   {state['inventory']}",
        f"known_hosts: {state['known_hosts']}",
    ]
    out.write("".join(f"{line}\n" for line in lines))


def _container_address(podman: Podman, name: str) -> str:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    inspected = podman.run(["inspect", "--format", template, name], check=False)
    return inspected.stdout.strip() or "-"


def ssh_command(layout: SandboxLayout, node_name: str, command: list[str]) -> list[str]:
    index = node_name.removeprefix("node")
    address = layout.node_address(int(index)) if index.isdigit() else None
    known = layout.known_hosts.read_text().split() if layout.known_hosts.exists() else []
    if address is None or address not in known:
        raise McpError(f"no sandbox node {node_name!r} is up: see `mcpctl sandbox status`")
    return [
        "ssh",
        "-i",
        str(layout.private_key),
        "-o",
        f"UserKnownHostsFile={layout.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"{SSH_USER}@{address}",
        *command,
    ]


def print_env(layout: SandboxLayout) -> None:
    exports = {
        **Podman(layout).environment(),
        "MCP_SANDBOX_KEY": str(layout.private_key),
        "MCP_SANDBOX_AUTHORIZED": str(layout.authorized_keys_dir),
        "MCP_SANDBOX_NETWORK": layout.name,
        "MCP_SANDBOX_APT_PROXY": services.apt_proxy_url(layout),
        "MCP_SANDBOX_WHEELHOUSE": services.wheelhouse_url(layout),
        "MCP_SANDBOX_NODE_OPTS": json.dumps(node_options()),
    }
    for name, value in exports.items():
        sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
