"""Upgrades that cannot strand the cluster, on real hosts: a version the wheelhouse lacks is
caught per node by `mcpctl upgrade --check` and, for real, before any Ray stops; a --limit
that would leave a node on another Ray is refused naming it; a whole-cluster switch that fails
on one node puts every node back. Two nodes, one deploy, file order.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.sandbox.wheelhouse import UPGRADE_FROM_RAY
from tests.integration.conftest import run

pytestmark = pytest.mark.integration

SANDBOX_ENV = {"MCP_SANDBOX_NAME": "mcp-upgrade", "MCP_SANDBOX_SUBNET": "10.79.0.0/24"}
NODES = ["node1", "node2"]
MISSING_RAY = "mcp_ray_version=9.9.9"


@dataclass
class Playbook:
    rc: int
    output: dict
    stderr: str

    def changed(self) -> dict[str, int]:
        return {host: stats["changed"] for host, stats in self.output["stats"].items()}

    def failure_messages(self) -> dict[str, str]:
        return {
            host: str(result.get("msg", ""))
            for play in self.output["plays"]
            for task in play["tasks"]
            for host, result in task["hosts"].items()
            if result.get("failed")
        }

    def __str__(self) -> str:
        return f"rc={self.rc} stats={self.output.get('stats')}\n{self.stderr[-2000:]}"


@dataclass
class Cluster:
    layout: SandboxLayout

    def playbook(self, *args: str) -> Playbook:
        env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        inventory = str(self.layout.inventory_dir / "hosts.yml")
        result = run(
            "ansible-playbook",
            "-i",
            inventory,
            "playbooks/upgrade.yml",
            *args,
            check=False,
            env=env,
        )
        return Playbook(result.returncode, json.loads(result.stdout), result.stderr)

    def ray_pids(self) -> dict[str, str]:
        """Each node's Ray main process: the same after a run means Ray was never stopped."""
        command = "systemctl show --property MainPID --value mcp-ray"
        return {node: self.ssh(node, command).strip() for node in NODES}

    def ssh(self, node: str, command: str) -> str:
        return run("mcpctl", "sandbox", "ssh", node, "--", command).stdout

    def active(self, node: str, within_s: float = 120) -> bool:
        """Whether the node's Ray unit is active, or becomes so within the time."""
        deadline = time.monotonic() + within_s
        while self.ssh(node, "systemctl is-active mcp-ray || true").strip() != "active":
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
        return True


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    saved = {name: os.environ.get(name) for name in SANDBOX_ENV}
    os.environ.update(SANDBOX_ENV)
    try:
        run("mcpctl", "sandbox", "up", "--nodes", str(len(NODES)))
        layout = SandboxLayout.default()
        deploy = run(
            "ansible-playbook",
            "-i",
            str(layout.inventory_dir / "hosts.yml"),
            "playbooks/deploy.yml",
        )
        assert deploy.returncode == 0
        yield Cluster(layout)
        run("mcpctl", "sandbox", "down", check=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_check_mode_names_every_node_that_cannot_get_the_version(cluster: Cluster) -> None:
    before = cluster.ray_pids()
    result = run(
        "mcpctl",
        "upgrade",
        "-f",
        str(cluster.layout.spec_file),
        "--check",
        "-e",
        MISSING_RAY,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    for node in NODES:
        assert f"{node}: ray[default]==9.9.9 not installable from the wheelhouse" in output, output
    assert "failed on node1, node2" in output, output
    assert cluster.ray_pids() == before


def test_an_upgrade_to_a_missing_version_stops_no_ray(cluster: Cluster) -> None:
    before = cluster.ray_pids()
    upgrade = cluster.playbook("-e", MISSING_RAY)
    assert upgrade.rc != 0, upgrade
    messages = upgrade.failure_messages()
    assert sorted(messages) == NODES, upgrade
    assert all(
        f"(from versions: {UPGRADE_FROM_RAY}, 2.60.0)" in message for message in messages.values()
    ), messages
    assert set(upgrade.changed().values()) == {0}, upgrade
    assert cluster.ray_pids() == before


def test_a_limit_that_would_mix_ray_versions_is_refused(cluster: Cluster) -> None:
    before = cluster.ray_pids()
    upgrade = cluster.playbook("--limit", "node2", "-e", MISSING_RAY)
    assert upgrade.rc != 0, upgrade
    (message,) = upgrade.failure_messages().values()
    assert "would leave node1 behind" in message, message
    assert "node1: Ray 2.60.0" in message, message
    assert set(upgrade.changed().values()) == {0}, upgrade
    assert cluster.ray_pids() == before


def test_a_limit_that_leaves_no_node_behind_runs(cluster: Cluster) -> None:
    upgrade = cluster.playbook("--limit", "node2")
    assert upgrade.rc == 0, upgrade
    assert upgrade.changed() == {"node2": 0}, upgrade


# node2 cannot start Ray on the older release: its unit fails (and systemd's tries with it)
# while the link points there. '+' runs the check as root, outside the unit's sandboxing.
FAIL_ON_OLDER = f"""[Service]
ExecStartPre=+/bin/sh -c 'readlink /opt/mcp/venv | grep -qv ray-{UPGRADE_FROM_RAY}-'
"""
DROP_IN = "/etc/systemd/system/mcp-ray.service.d/zz-test-fail-on-older.conf"


def test_a_switch_that_fails_on_one_node_puts_every_node_back(cluster: Cluster) -> None:
    links = {node: cluster.ssh(node, "readlink /opt/mcp/venv").strip() for node in NODES}
    before = cluster.ray_pids()
    cluster.ssh("node2", f"sudo mkdir -p {os.path.dirname(DROP_IN)}")
    cluster.ssh("node2", f"printf %s {shlex.quote(FAIL_ON_OLDER)} | sudo tee {DROP_IN}")
    try:
        upgrade = cluster.playbook("-e", f"mcp_ray_version={UPGRADE_FROM_RAY}")
        # node2's start is queued, not waited for, by the rescue.
        active = {node: cluster.active(node) for node in NODES}
    finally:
        cluster.ssh("node2", f"sudo rm -f {DROP_IN} && sudo systemctl daemon-reload")

    assert upgrade.rc != 0, upgrade
    messages = upgrade.failure_messages()
    assert "failed at 'Start the workers on the new Ray'" in messages["node2"], messages
    assert "Not every node switched (node2 failed)" in messages["node1"], messages
    assert active == dict.fromkeys(NODES, True), active
    for node in NODES:
        assert "back on the release it ran, and Ray was started again on it" in messages[node]
        fact = json.loads(cluster.ssh(node, "cat /etc/ansible/facts.d/mcp_python.fact"))
        assert fact["ray"] == "2.60.0", (node, fact)
        assert cluster.ssh(node, "readlink /opt/mcp/venv").strip() == links[node]
    after = cluster.ray_pids()
    assert all(after[node] != before[node] for node in NODES), (before, after)


def test_an_upgrade_to_the_installed_versions_changes_nothing(cluster: Cluster) -> None:
    before = cluster.ray_pids()
    upgrade = cluster.playbook()
    assert upgrade.rc == 0, upgrade
    assert upgrade.changed() == {"node1": 0, "node2": 0}, upgrade
    assert cluster.ray_pids() == before
