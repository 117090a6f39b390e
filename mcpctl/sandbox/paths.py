"""Where a sandbox keeps its state (removed by `down`) and its caches (kept until `--purge`).

Sandboxes on one machine share one container engine (its storage holds the node image, built
once) and the wheelhouse; each has its own network, nodes, keys, gateway services and spec.
"""

from __future__ import annotations

import ipaddress
import os
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / fallback)


@dataclass(frozen=True)
class SandboxLayout:
    """Every path and address the sandbox uses, derived from two roots and one subnet."""

    state_dir: Path
    cache_dir: Path
    subnet: ipaddress.IPv4Network
    name: str = "mcp-sandbox"
    engine_dir: Path = Path("/nonexistent")
    shared_cache_dir: Path = Path("/nonexistent")

    @classmethod
    def default(cls) -> SandboxLayout:
        """The sandbox the environment names; several can run side by side with other
        MCP_SANDBOX_NAME and MCP_SANDBOX_SUBNET values."""
        name = os.environ.get("MCP_SANDBOX_NAME", "mcp-sandbox")
        folder = "sandbox" if name == "mcp-sandbox" else name
        state_root = _xdg("XDG_STATE_HOME", ".local/state") / "mcp-cluster"
        cache_root = _xdg("XDG_CACHE_HOME", ".cache") / "mcp-cluster"
        return cls(
            state_dir=Path(os.environ.get("MCP_SANDBOX_STATE") or state_root / folder),
            cache_dir=Path(os.environ.get("MCP_SANDBOX_CACHE") or cache_root / folder),
            subnet=ipaddress.IPv4Network(os.environ.get("MCP_SANDBOX_SUBNET", "10.77.0.0/24")),
            name=name,
            engine_dir=state_root / "engine",
            shared_cache_dir=cache_root,
        )

    @cached_property
    def cluster_name(self) -> str:
        """The name in the sandbox's spec: inventories and run logs are kept per cluster name."""
        return "sandbox" if self.name == "mcp-sandbox" else self.name

    @cached_property
    def bridge_interface(self) -> str:
        """Named after the sandbox: podman's own podmanN names could clash between sandboxes."""
        return f"mcp{zlib.crc32(self.name.encode()):08x}"

    # This sandbox's view of the engine (its default network); goes on `down`.
    @cached_property
    def containers_conf(self) -> Path:
        return self.state_dir / "containers.conf"

    # The shared engine's runtime state: goes with the last sandbox's `down`.
    @cached_property
    def storage_conf(self) -> Path:
        return self.engine_dir / "storage.conf"

    @cached_property
    def engine_run_dir(self) -> Path:
        return self.engine_dir / "run"

    @cached_property
    def network_config_dir(self) -> Path:
        return self.engine_dir / "networks"

    @cached_property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @cached_property
    def private_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @cached_property
    def authorized_keys_dir(self) -> Path:
        return self.ssh_dir / "authorized"

    @cached_property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @cached_property
    def spec_file(self) -> Path:
        return self.state_dir / "cluster.yaml"

    @cached_property
    def inventory_dir(self) -> Path:
        return self.state_dir / "inventory"

    @cached_property
    def services_dir(self) -> Path:
        return self.state_dir / "services"

    # Caches: slow to rebuild, safe to keep between `up`s.
    @cached_property
    def image_storage(self) -> Path:
        return self.shared_cache_dir / "images"

    @cached_property
    def wheelhouse(self) -> Path:
        return self.shared_cache_dir / "wheelhouse"

    @cached_property
    def apt_cache(self) -> Path:
        return self.cache_dir / "apt-cacher-ng"

    # Addresses on the sandbox's internal network.
    @cached_property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @cached_property
    def node_network(self) -> ipaddress.IPv4Network:
        """The subnet's upper half, which holds the nodes (Molecule's fixed hosts use the lower).

        The cluster's firewall admits it whole, so adding a node changes no other node, while
        the gateway (this machine), which is no cluster node, stays outside it.
        """
        return list(self.subnet.subnets(prefixlen_diff=1))[1]

    @property
    def max_nodes(self) -> int:
        return self.node_network.num_addresses - 2

    def node_address(self, index: int) -> str:
        """Address of node `index` (1-based)."""
        return str(self.node_network.network_address + index)

    def node_name(self, index: int) -> str:
        return f"node{index}"

    def container_name(self, node: str) -> str:
        return f"{self.name}-{node}"
