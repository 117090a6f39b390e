"""`mcpctl sandbox` end to end: real containers, real sshd, real ansible over SSH."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpctl.sandbox.engine import Podman
from mcpctl.sandbox.nodes import SANDBOX_LABEL
from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.sandbox.services import SERVICE_NAMES, running_pid
from tests.integration.conftest import run

pytestmark = pytest.mark.integration

LAYOUT = SandboxLayout.default()
INVENTORY = LAYOUT.inventory_dir / "hosts.yml"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[str]:
    up = run("mcpctl", "sandbox", "up", "--nodes", "3")
    yield up.stdout
    run("mcpctl", "sandbox", "down")


def test_up_reports_three_nodes_over_ssh(sandbox: str) -> None:
    seconds = float(re.search(r"3 nodes answering SSH \(([\d.]+)s", sandbox).group(1))
    assert seconds < 60
    assert INVENTORY.exists() and LAYOUT.known_hosts.read_text().count("ssh-ed25519") == 3


def test_ansible_ping_answers_from_three_hosts_with_strict_host_keys(sandbox: str) -> None:
    ping = run("ansible", "-i", str(INVENTORY), "all", "-m", "ansible.builtin.ping")
    assert sorted(re.findall(r"^(node\d) \| SUCCESS", ping.stdout, re.M)) == [
        "node1",
        "node2",
        "node3",
    ]
    assert (
        "StrictHostKeyChecking=yes"
        in (LAYOUT.inventory_dir / "group_vars" / "mcp_cluster.yml").read_text()
    )


def test_a_wrong_host_key_is_refused(sandbox: str, tmp_path: Path) -> None:
    forged = tmp_path / "known_hosts"
    lines = LAYOUT.known_hosts.read_text().splitlines()
    # node1's address with node2's key: strict checking must refuse to connect.
    forged.write_text(f"{lines[0].split()[0]} {' '.join(lines[1].split()[1:])}\n")
    ssh = run(
        "ssh",
        "-i",
        str(LAYOUT.private_key),
        "-o",
        f"UserKnownHostsFile={forged}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        f"ansible@{lines[0].split()[0]}",
        "true",
        check=False,
    )
    assert ssh.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in ssh.stderr


def test_sandbox_ssh_runs_a_command_on_a_node(sandbox: str) -> None:
    hostname = run("mcpctl", "sandbox", "ssh", "node2", "--", "hostname")
    assert hostname.stdout.strip() == "node2"


def test_nodes_reach_the_gateway_services_and_nothing_else(sandbox: str) -> None:
    probe = (
        "import urllib.request as u\n"
        f"print(u.urlopen('http://{LAYOUT.gateway}:8081/', timeout=5).read().decode())\n"
        "try:\n"
        "    u.urlopen('http://deb.debian.org/', timeout=3)\n"
        "except OSError:\n"
        "    print('OUTSIDE-UNREACHABLE')\n"
    )
    result = run("mcpctl", "sandbox", "ssh", "node1", "--", "python3", "-c", f'"{probe}"')
    assert re.search(r"ray-2\.60\.0-.*\.whl", result.stdout)
    assert re.search(r"torch-2\.13\.0.*\.whl", result.stdout)
    assert "OUTSIDE-UNREACHABLE" in result.stdout
    apt = run(
        "mcpctl",
        "sandbox",
        "ssh",
        "node1",
        "--",
        "sudo",
        "apt-get",
        "-o",
        f"Acquire::http::Proxy=http://{LAYOUT.gateway}:3142",
        "update",
        "-q",
    )
    assert "bookworm" in apt.stdout


def test_up_twice_is_safe_and_keeps_nodes(sandbox: str) -> None:
    before = _container_ids()
    run("mcpctl", "sandbox", "up", "--nodes", "3")
    assert _container_ids() == before
    run("ansible", "-i", str(INVENTORY), "all", "-m", "ansible.builtin.ping")


def test_down_leaves_nothing_behind() -> None:
    run("mcpctl", "sandbox", "up", "--nodes", "2", "--no-wheelhouse")
    pids = [running_pid(LAYOUT, name) for name in SERVICE_NAMES]
    assert all(pids)
    run("mcpctl", "sandbox", "down")

    assert not LAYOUT.state_dir.exists()
    mounts = Path("/proc/mounts").read_text()
    assert str(LAYOUT.state_dir) not in mounts and str(LAYOUT.cache_dir) not in mounts
    for pid in pids:
        assert not _alive(pid), f"service process {pid} still runs"
    # Ask the engine with the configuration `down` deleted: no container and no network remain.
    Podman(LAYOUT).write_config(default_network=False)
    try:
        assert _container_ids() == []
        networks = Podman(LAYOUT).run(["network", "ls", "--format", "{{.Name}}"]).stdout.split()
        assert LAYOUT.name not in networks
    finally:
        run("mcpctl", "sandbox", "down")


def _container_ids() -> list[str]:
    listed = Podman(LAYOUT).run(
        ["ps", "--all", "--format", "json", "--filter", f"label={SANDBOX_LABEL}={LAYOUT.name}"]
    )
    return sorted(container["Id"] for container in json.loads(listed.stdout or "[]"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
