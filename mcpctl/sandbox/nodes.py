"""The sandbox's network and node containers, and waiting until their sshd answers."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mcpctl.errors import McpError
from mcpctl.roledata import literal_default
from mcpctl.sandbox.engine import Podman
from mcpctl.sandbox.paths import SandboxLayout

SANDBOX_LABEL = "io.mcp-cluster.sandbox"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


def node_options() -> list[str]:
    """`podman run` options of every sandbox node, and of Molecule's (via `sandbox env`).

    Namespaced sysctls belong to the container runtime (as a Kubernetes pod's securityContext
    sets them): /proc/sys stays read-only inside, so nothing a node runs can change the host's
    kernel-wide settings. They are the common role's own network-namespaced ones.
    """
    sysctls = literal_default("common", "common_sysctl_net")
    return [
        # Ray's object store lives in /dev/shm; podman's default is 64 MB.
        "--shm-size=1g",
        *(f"--sysctl={key}={value}" for key, value in sysctls.items()),
    ]


@dataclass(frozen=True)
class Node:
    name: str
    address: str

    def container(self, layout: SandboxLayout) -> str:
        return layout.container_name(self.name)


def wanted_nodes(layout: SandboxLayout, count: int) -> list[Node]:
    if not 1 <= count <= layout.max_nodes:
        raise McpError(f"--nodes must be between 1 and {layout.max_nodes}, not {count}")
    return [Node(layout.node_name(i), layout.node_address(i)) for i in range(1, count + 1)]


def ensure_network(podman: Podman) -> None:
    layout = podman.layout
    # A default_network that does not exist yet is silently invented by podman (with NAT),
    # so the network is created under a configuration that does not name it.
    if not (layout.network_config_dir / f"{layout.name}.json").exists():
        podman.write_config(default_network=False)
        podman.run(
            [
                "network",
                "create",
                "--internal",
                "--disable-dns",
                "--subnet",
                str(layout.subnet),
                "--gateway",
                layout.gateway,
                "--label",
                f"{SANDBOX_LABEL}={layout.name}",
                layout.name,
            ]
        )
        _name_bridge(layout)
    podman.write_config(default_network=True)


def _name_bridge(layout: SandboxLayout) -> None:
    # podman 4.3 has no --interface-name; netavark reads the name from the network's file.
    config_file = layout.network_config_dir / f"{layout.name}.json"
    config = json.loads(config_file.read_text())
    config["network_interface"] = layout.bridge_interface
    config_file.write_text(json.dumps(config, indent=2))


def remove_network(podman: Podman) -> None:
    layout = podman.layout
    if (layout.network_config_dir / f"{layout.name}.json").exists():
        # podman refuses to remove its default network.
        podman.write_config(default_network=False)
        podman.run(["network", "rm", "--force", layout.name])


def start_node(podman: Podman, node: Node, image: str) -> None:
    layout = podman.layout
    name = node.container(layout)
    if podman.exists("container", name):
        _check_address(podman, node)
        podman.run(["start", name])
        return
    podman.run(
        [
            "run",
            "--detach",
            "--name",
            name,
            "--hostname",
            node.name,
            "--network",
            layout.name,
            "--ip",
            node.address,
            "--label",
            f"{SANDBOX_LABEL}={layout.name}",
            # nftables (the Ray firewall) needs it; it is scoped to the node's network namespace.
            "--cap-add=NET_ADMIN",
            *node_options(),
            "--volume",
            f"{layout.authorized_keys_dir}:/etc/ssh/authorized:ro",
            image,
        ]
    )


def _check_address(podman: Podman, node: Node) -> None:
    # Sandboxes made by an earlier version put their nodes elsewhere in the subnet.
    networks = podman.run(
        [
            "container",
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks}}",
            node.container(podman.layout),
        ]
    )
    address = (json.loads(networks.stdout or "{}").get(podman.layout.name) or {}).get("IPAddress")
    if address and address != node.address:
        raise McpError(
            f"{node.name} runs at {address}, but this sandbox puts it at {node.address} — "
            "remove the old sandbox with `mcpctl sandbox down`, then run `mcpctl sandbox up` again"
        )


def remove_containers(podman: Podman, names: list[str]) -> None:
    if names:
        podman.run(["rm", "--force", "--time", "2", *names])


def sandbox_containers(podman: Podman) -> list[dict]:
    return podman.containers(f"{SANDBOX_LABEL}={podman.layout.name}")


def host_key(podman: Podman, node: Node) -> str | None:
    read = podman.run(["exec", node.container(podman.layout), "cat", HOST_KEY], check=False)
    return read.stdout.strip() if read.returncode == 0 and read.stdout.strip() else None


def _ssh_banner(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=1) as conn:
            conn.settimeout(1)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_ssh(podman: Podman, node: Node, timeout_seconds: float) -> str:
    """Wait until `node` serves SSH; return its host public key, read through podman exec.

    The key comes over the engine's own channel, never from the network, so the known_hosts
    file written from it can be trusted with strict host-key checking.
    """
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        key = host_key(podman, node)
        if key and _ssh_banner(node.address):
            return key
        time.sleep(0.2)
    raise McpError(
        f"{node.name} ({node.address}) did not serve SSH within {timeout_seconds:.0f}s; "
        f'see `podman logs {node.container(podman.layout)}` (after `eval "$(mcpctl sandbox env)"`)'
    )


def wait_for_all(podman: Podman, nodes: list[Node], timeout_seconds: float) -> dict[str, str]:
    with ThreadPoolExecutor(max_workers=min(16, len(nodes))) as pool:
        keys = pool.map(lambda node: wait_for_ssh(podman, node, timeout_seconds), nodes)
        return {node.name: key for node, key in zip(nodes, keys, strict=True)}
