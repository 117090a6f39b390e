"""A cluster's life on real hosts: deploy, re-deploy, a node restarting, scale, remove, a node
down during deploy, reset. The tests share one sandbox and one deploy and run in file order.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcpctl.sandbox.engine import Podman
from mcpctl.sandbox.paths import SandboxLayout
from tests.integration.conftest import run

pytestmark = pytest.mark.integration

# A sandbox of its own, beside the operator's and the other tests'.
SANDBOX_ENV = {"MCP_SANDBOX_NAME": "mcp-lifecycle", "MCP_SANDBOX_SUBNET": "10.73.0.0/24"}
HEAD = "node1"


@dataclass
class Cluster:
    layout: SandboxLayout

    @property
    def inventory(self) -> Path:
        return self.layout.inventory_dir / "hosts.yml"

    def playbook(self, name: str, *args: str) -> PlaybookRun:
        """ansible-playbook with the JSON callback, so results can be read per host and task."""
        env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        result = run(
            "ansible-playbook",
            "-i",
            str(self.inventory),
            f"playbooks/{name}",
            *args,
            check=False,
            env=env,
        )
        return PlaybookRun(result.returncode, json.loads(result.stdout), result.stderr)

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        return run("mcpctl", "sandbox", "ssh", node, "--", command, check=check).stdout

    def alive_nodes(self) -> list[str]:
        query = (
            "sudo env RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=/etc/mcp/ray_auth_token "
            "/opt/mcp/venv/bin/python /opt/mcp/bin/ray_nodes.py "
            f"{self.layout.node_address(1)}:6379"
        )
        nodes = json.loads(self.ssh(HEAD, query))["nodes"]
        return sorted(node["name"] for node in nodes if node["alive"])

    def wait_for_alive(self, expected: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while (alive := self.alive_nodes()) != expected and time.monotonic() < deadline:
            time.sleep(5)
        assert alive == expected

    def podman(self, *args: str) -> None:
        Podman(self.layout).run(list(args))


@dataclass
class PlaybookRun:
    rc: int
    output: dict
    stderr: str

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.output["stats"]

    def changed_tasks(self, host: str) -> list[str]:
        """Names of the tasks that changed `host`, without their "role : " prefix."""
        return [
            task["task"]["name"].split(" : ")[-1]
            for play in self.output["plays"]
            for task in play["tasks"]
            if task["hosts"].get(host, {}).get("changed")
        ]

    def __str__(self) -> str:
        return f"rc={self.rc} stats={self.stats}\n{self.stderr[-2000:]}"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    saved = {name: os.environ.get(name) for name in SANDBOX_ENV}
    os.environ.update(SANDBOX_ENV)
    try:
        run("mcpctl", "sandbox", "up", "--nodes", "3")
        yield Cluster(SandboxLayout.default())
        run("mcpctl", "sandbox", "down", check=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_deploy_brings_up_three_alive_nodes(cluster: Cluster) -> None:
    deploy = cluster.playbook("deploy.yml")
    assert deploy.rc == 0, deploy
    assert cluster.alive_nodes() == ["node1", "node2", "node3"]
    head = cluster.layout.node_address(1)
    # This machine is the sandbox's gateway, not a cluster node: Ray's ports drop it, SSH does not.
    with pytest.raises(OSError):
        socket.create_connection((head, 6379), timeout=3).close()
    socket.create_connection((head, 22), timeout=3).close()


def test_a_second_deploy_changes_nothing(cluster: Cluster) -> None:
    deploy = cluster.playbook("deploy.yml")
    assert deploy.rc == 0, deploy
    changed = {host: deploy.changed_tasks(host) for host in deploy.stats}
    assert changed == {"node1": [], "node2": [], "node3": []}


def test_a_restarted_node_rejoins_by_itself(cluster: Cluster) -> None:
    cluster.podman("restart", "--time", "10", cluster.layout.container_name("node3"))
    cluster.wait_for_alive(["node1", "node2", "node3"])
    assert cluster.ssh("node3", "systemctl is-active mcp-ray").strip() == "active"


def test_scale_to_four_changes_only_the_new_node(cluster: Cluster) -> None:
    run("mcpctl", "sandbox", "up", "--nodes", "4")
    scale = cluster.playbook("scale.yml")
    assert scale.rc == 0, scale
    assert cluster.alive_nodes() == ["node1", "node2", "node3", "node4"]
    assert scale.stats["node4"]["changed"] > 0
    # The sandbox spec admits its nodes' network whole (ray.allowed_networks), so node4 is
    # already inside every firewall: nothing else changes.
    for host in ("node1", "node2", "node3"):
        assert scale.stats[host]["changed"] == 0, scale.changed_tasks(host)
    cluster_set = cluster.ssh("node1", "sudo nft list set inet mcp_ray cluster_v4")
    assert str(cluster.layout.node_network) in cluster_set
    assert cluster.layout.node_address(4) not in cluster_set


def test_scale_with_limit_is_refused(cluster: Cluster) -> None:
    scale = cluster.playbook("scale.yml", "--limit", "node4")
    assert scale.rc != 0
    assert all(stats["changed"] == 0 for stats in scale.stats.values())


def test_remove_node_takes_the_cluster_back_to_three(cluster: Cluster) -> None:
    assert cluster.playbook("remove-node.yml").rc != 0  # no -e node=...
    remove = cluster.playbook("remove-node.yml", "-e", "node=node4")
    assert remove.rc == 0, remove
    assert cluster.alive_nodes() == ["node1", "node2", "node3"]
    assert cluster.ssh("node4", "systemctl is-enabled mcp-ray", check=False).strip() != "enabled"
    run("mcpctl", "sandbox", "up", "--nodes", "3")


def test_remove_node_works_on_a_dead_node(cluster: Cluster) -> None:
    cluster.podman("stop", "--time", "2", cluster.layout.container_name("node3"))
    remove = cluster.playbook("remove-node.yml", "-e", "node=node3")
    assert remove.rc == 0, remove
    assert cluster.alive_nodes() == ["node1", "node2"]


def test_deploy_with_a_node_down_finishes_the_others_and_names_it(cluster: Cluster) -> None:
    deploy = cluster.playbook("deploy.yml")
    assert deploy.rc != 0
    assert deploy.stats["node3"]["unreachable"] > 0
    for host in ("node1", "node2"):
        assert deploy.stats[host]["failures"] == 0 and deploy.stats[host]["unreachable"] == 0
    assert cluster.alive_nodes() == ["node1", "node2"]


def test_deploy_completes_once_the_node_is_back(cluster: Cluster) -> None:
    cluster.podman("start", cluster.layout.container_name("node3"))
    run("mcpctl", "sandbox", "up", "--nodes", "3")  # waits for its sshd
    deploy = cluster.playbook("deploy.yml")
    assert deploy.rc == 0, deploy
    cluster.wait_for_alive(["node1", "node2", "node3"])


def test_health_reports_every_node_healthy(cluster: Cluster) -> None:
    health = cluster.playbook("health.yml")
    assert health.rc == 0, health
    assert all(stats["changed"] == 0 for stats in health.stats.values())


def test_reset_needs_confirmation(cluster: Cluster) -> None:
    reset = cluster.playbook("reset.yml", "-e", "confirm=no")
    assert reset.rc != 0
    assert cluster.alive_nodes() == ["node1", "node2", "node3"]


def test_reset_leaves_the_nodes_as_before_deploy(cluster: Cluster) -> None:
    reset = cluster.playbook("reset.yml", "-e", "confirm=yes")
    assert reset.rc == 0, reset
    gone = [
        "/etc/systemd/system/mcp-ray.service",
        "/etc/systemd/system/mcp-ray-firewall.service",
        "/opt/mcp/venv",
        "/opt/mcp/wheels",
        "/etc/mcp/ray_auth_token",
        "/etc/mcp/ray-firewall.nft",
        "/etc/mcp/agent_runtime.yaml",
        "/etc/ansible/facts.d/mcp_python.fact",
    ]
    for node in ("node1", "node2", "node3"):
        # Each check is a fresh SSH connection: SSH still works after the reset.
        left = cluster.ssh(node, f"sudo ls -d {' '.join(gone)} 2>/dev/null || true")
        assert left.strip() == "", (node, left)
        assert cluster.ssh(node, "sudo ls -A /var/lib/mcp").strip() == ""
        assert "mcp_ray" not in cluster.ssh(node, "sudo nft list tables")
        assert cluster.ssh(node, "pgrep -u mcp || true").strip() == ""
