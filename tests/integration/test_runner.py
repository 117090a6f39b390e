"""The playbook runner, exec and preflight on real hosts: a sandbox of its own (so it never
touches the one test_sandbox.py or a developer uses), real sshd, real ansible-playbook."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcpctl.sandbox.engine import Podman
from mcpctl.sandbox.paths import SandboxLayout
from tests.integration.conftest import REPO, VENV_BIN, run

pytestmark = pytest.mark.integration

SANDBOX = {"MCP_SANDBOX_NAME": "mcp-it-runner", "MCP_SANDBOX_SUBNET": "10.91.0.0/24"}
CLUSTER = "runner-it"
PLAYBOOKS = REPO / "tests" / "fixtures" / "playbooks"
INVENTORY = REPO / "inventory" / CLUSTER / "hosts.yml"


@dataclass
class Cluster:
    layout: SandboxLayout
    spec: Path
    state: Path  # XDG_STATE_HOME of the runs: their artifacts land under it

    def mcpctl(
        self, *args: str, spec: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(
            "mcpctl",
            *args[:1],
            "-f",
            str(spec or self.spec),
            *args[1:],
            check=False,
            env={**self.environment(), **(env or {})},
            timeout=180,
        )

    def environment(self) -> dict[str, str]:
        return {**os.environ, "XDG_STATE_HOME": str(self.state), "MCP_PLAYBOOK_DIR": str(PLAYBOOKS)}

    def spec_with(self, pattern: str, replacement: str) -> Path:
        """A copy of the spec with the first line matching `pattern` replaced."""
        text, count = re.subn(pattern, replacement, self.spec.read_text(), count=1, flags=re.M)
        assert count == 1, pattern
        path = self.spec.with_name(f"variant-{uuid.uuid4().hex[:8]}.yaml")
        path.write_text(text)
        return path

    def runs(self) -> list[Path]:
        return sorted((self.state / "mcp-cluster" / "runs" / CLUSTER / "artifacts").iterdir())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    saved = {name: os.environ.get(name) for name in SANDBOX}
    os.environ.update(SANDBOX)
    layout = SandboxLayout.default()
    try:
        run("mcpctl", "sandbox", "up", "--nodes", "3", "--no-wheelhouse")
        work = tmp_path_factory.mktemp("runner")
        spec = work / "cluster.yaml"
        # Its own cluster name: its own inventory/ and runs/ directories.
        spec.write_text(
            re.sub(r"^name: .*$", f"name: {CLUSTER}", layout.spec_file.read_text(), flags=re.M)
        )
        yield Cluster(layout, spec, work / "state")
    finally:
        run("mcpctl", "sandbox", "down", check=False)
        shutil.rmtree(INVENTORY.parent, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def marker() -> str:
    return f"marker=/tmp/mcp-fixture-{uuid.uuid4().hex[:8]}"


def table_rows(output: str) -> dict[str, list[int]]:
    """HOST OK CHANGED FAILED UNREACHABLE SKIPPED rows of the summary, by host."""
    rows = re.findall(r"^(node\d)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", output, re.M)
    return {host: [int(count) for count in counts] for host, *counts in rows}


# --- playbook runs ------------------------------------------------------------------------


def test_deploy_runs_the_playbook_and_ends_with_a_per_host_summary(cluster: Cluster) -> None:
    # Old runs, as if from earlier days: only the newest 10 runs are kept.
    old = cluster.state / "mcp-cluster" / "runs" / CLUSTER / "artifacts"
    for day in range(12):
        (old / f"2020010{day % 9 + 1}-old-{day}").mkdir(parents=True)
        os.utime(old / f"2020010{day % 9 + 1}-old-{day}", (day, day))

    deploy = cluster.mcpctl("deploy", "-e", marker())

    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "HOST   OK  CHANGED  FAILED  UNREACHABLE  SKIPPED" in deploy.stdout
    assert table_rows(deploy.stdout) == {
        "node1": [3, 2, 0, 0, 3],
        "node2": [3, 2, 0, 0, 3],
        "node3": [3, 2, 0, 0, 3],
    }
    assert "deploy: ok on 3 hosts" in deploy.stdout
    # Not a terminal: progress comes as plain lines.
    assert "TASK [Write the marker file]" in deploy.stdout
    assert "\x1b[" not in deploy.stdout
    assert INVENTORY.is_file()
    runs = cluster.runs()
    assert len(runs) == 10
    assert re.fullmatch(r"\d{8}-\d{6}-deploy-\d+", runs[-1].name)
    assert (runs[-1] / "stdout").is_file()


def test_a_failed_task_fails_the_run_names_the_host_and_hides_no_log_output(
    cluster: Cluster,
) -> None:
    secret = f"hunter2-{uuid.uuid4().hex[:6]}"

    deploy = cluster.mcpctl(
        "deploy",
        *("-e", "fail_on=node2", "-e", "fail_secretly_on=node3", "-e", f"fixture_secret={secret}"),
        *("-e", marker()),
    )

    assert deploy.returncode == 1
    assert "node2: FAILED task [Fail where asked]: fixture failure on node2" in deploy.stdout
    assert "node3: FAILED task [Fail with a secret]: output hidden (no_log)" in deploy.stdout
    assert "deploy: failed on node2, node3" in deploy.stdout
    assert table_rows(deploy.stdout)["node2"] == [3, 2, 1, 0, 1]
    assert secret not in deploy.stdout + deploy.stderr


def test_check_mode_and_limit_reach_ansible(cluster: Cluster) -> None:
    path = f"/tmp/mcp-check-{uuid.uuid4().hex[:8]}"

    check = cluster.mcpctl("deploy", "--check", "--limit", "workers", "-e", f"marker={path}")

    assert check.returncode == 0, check.stdout
    assert "(check mode)" in check.stdout
    assert set(table_rows(check.stdout)) == {"node2", "node3"}
    # In check mode the copy reports the change it would make, and makes none.
    assert table_rows(check.stdout)["node2"][1] >= 1
    absent = cluster.mcpctl("exec", "--", f"test ! -e {path}")
    assert absent.returncode == 0, absent.stdout


def test_the_playbook_run_checks_host_keys_strictly(cluster: Cluster, tmp_path: Path) -> None:
    lines = cluster.layout.known_hosts.read_text().splitlines()
    forged = tmp_path / "known_hosts"
    # node1's address with node2's key.
    forged.write_text(f"{lines[0].split()[0]} {' '.join(lines[1].split()[1:])}\n")
    spec = cluster.spec_with(r"^  known_hosts: .*$", f"  known_hosts: {forged}")

    # A fresh SSH connection: an open ControlPersist master would be reused unchecked.
    with tempfile.TemporaryDirectory(prefix="cp", dir="/tmp") as control_dir:
        deploy = cluster.mcpctl(
            "deploy",
            "--limit",
            "node1",
            spec=spec,
            env={"ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir},
        )

    assert deploy.returncode == 1
    # ssh's own words, or Mitogen's (it runs the connection under ansible.cfg's strategy).
    refused = r"Host key verification failed|mismatching host key"
    assert re.search(rf"node1: UNREACHABLE: .*({refused})", deploy.stdout), deploy.stdout
    assert "unreachable: node1" in deploy.stdout


def test_ctrl_c_stops_the_playbook_and_leaves_no_ansible_process(cluster: Cluster) -> None:
    process = subprocess.Popen(
        [str(VENV_BIN / "mcpctl"), "deploy", "-f", str(cluster.spec), "--tags", "slow"],
        cwd=REPO,
        env=cluster.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []]).start()
    output = _read_until(lines, "TASK [Sleep until interrupted]", seconds=90)
    time.sleep(1.5)  # the sleep is running on the nodes

    process.send_signal(signal.SIGINT)
    stopping = time.monotonic()
    code = process.wait(timeout=30)
    stopped_in = time.monotonic() - stopping
    output += _drain(lines)

    assert code == 130, output
    assert stopped_in < 10
    assert "interrupted: stopping the playbook" in output
    assert "HOST   OK  CHANGED  FAILED  UNREACHABLE  SKIPPED" in output
    assert "deploy: interrupted" in output
    leftovers = subprocess.run(["pgrep", "-af", str(INVENTORY)], capture_output=True, text=True)
    assert leftovers.stdout == "", leftovers.stdout


def _read_until(lines: queue.Queue[str], text: str, seconds: float) -> str:
    seen = ""
    deadline = time.monotonic() + seconds
    while text not in seen:
        seen += lines.get(timeout=max(deadline - time.monotonic(), 0.01))
    return seen


def _drain(lines: queue.Queue[str]) -> str:
    time.sleep(0.2)
    text = ""
    while not lines.empty():
        text += lines.get_nowait()
    return text


# --- exec -----------------------------------------------------------------------------------


def test_exec_runs_on_every_node_with_prefixed_output_and_exit_codes(cluster: Cluster) -> None:
    result = cluster.mcpctl("exec", "--", "hostname; echo to-stderr >&2")

    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(re.findall(r"^(node\d) \| (node\d)$", result.stdout, re.M)) == [
        ("node1", "node1"),
        ("node2", "node2"),
        ("node3", "node3"),
    ]
    assert sorted(re.findall(r"^(node\d) \| to-stderr$", result.stderr, re.M)) == [
        "node1",
        "node2",
        "node3",
    ]
    assert re.findall(r"^(node\d)\s+exit 0$", result.stdout, re.M) == ["node1", "node2", "node3"]


def test_exec_fails_when_the_command_fails_on_one_node(cluster: Cluster) -> None:
    result = cluster.mcpctl("exec", "--", 'test "$(hostname)" != node2')

    assert result.returncode == 1
    assert re.search(r"^node2\s+exit 1$", result.stdout, re.M)
    assert re.search(r"^node1\s+exit 0$", result.stdout, re.M)
    assert "exec: 1 of 3 failed" in result.stdout


def test_exec_timeout_ends_the_command_on_the_node(cluster: Cluster) -> None:
    started = time.monotonic()
    result = cluster.mcpctl("exec", "--limit", "node1", "--timeout", "1", "--", "sleep 30; echo x")

    assert result.returncode == 1
    assert re.search(r"^node1\s+timed out after 1s$", result.stdout, re.M)
    assert time.monotonic() - started < 10
    gone = cluster.mcpctl("exec", "--limit", "node1", "--", "pgrep -fx 'sleep 30' || echo gone")
    assert "node1 | gone" in gone.stdout


@pytest.mark.parametrize(
    ("limit", "nodes"),
    [("head", ["node1"]), ("workers", ["node2", "node3"]), ("node1,node3", ["node1", "node3"])],
)
def test_exec_limit(cluster: Cluster, limit: str, nodes: list[str]) -> None:
    result = cluster.mcpctl("exec", "--limit", limit, "--", "hostname")

    assert sorted(re.findall(r"^node\d \| (node\d)$", result.stdout, re.M)) == nodes


def test_exec_refuses_unknown_and_changed_host_keys(cluster: Cluster, tmp_path: Path) -> None:
    lines = cluster.layout.known_hosts.read_text().splitlines()
    forged, missing = tmp_path / "forged", tmp_path / "missing"
    forged.write_text(f"{lines[0].split()[0]} {' '.join(lines[1].split()[1:])}\n")
    missing.write_text(lines[1] + "\n")
    address = lines[0].split()[0]

    for known_hosts, message in [
        (forged, f"host key of {address} does not match {forged}"),
        (missing, f"host key of {address} is not in {missing}"),
    ]:
        spec = cluster.spec_with(r"^  known_hosts: .*$", f"  known_hosts: {known_hosts}")
        before = known_hosts.read_text()

        result = cluster.mcpctl("exec", "--limit", "node1", "--", "true", spec=spec)

        assert result.returncode == 1
        assert message in result.stdout
        assert known_hosts.read_text() == before  # never trusted on first use


def test_exec_hops_through_the_jump_host_and_checks_its_key_too(
    cluster: Cluster, tmp_path: Path
) -> None:
    jump = cluster.layout.node_address(1)
    spec = cluster.spec_with(r"^  # jump_host: .*$", f"  jump_host: ansible@{jump}")
    # The hop's key is checked against ~/.ssh/known_hosts, as ssh's ProxyJump does.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(cluster.layout.known_hosts.read_text())

    hopped = cluster.mcpctl(
        "exec",
        "--limit",
        "workers",
        "--",
        "echo $SSH_CONNECTION",
        spec=spec,
        env={"HOME": str(home)},
    )
    (home / ".ssh" / "known_hosts").write_text("")
    refused = cluster.mcpctl(
        "exec", "--limit", "node2", "--", "true", spec=spec, env={"HOME": str(home)}
    )

    assert hopped.returncode == 0, hopped.stdout
    # SSH_CONNECTION starts with the client's address: the jump host's.
    assert sorted(re.findall(r"^(node\d) \| (\S+) ", hopped.stdout, re.M)) == [
        ("node2", jump),
        ("node3", jump),
    ]
    assert refused.returncode == 1
    assert f"host key of jump host {jump} is not in ~/.ssh/known_hosts" in refused.stdout


# --- preflight ----------------------------------------------------------------------------


def test_preflight_table_and_json(cluster: Cluster) -> None:
    table = cluster.mcpctl("preflight")
    as_json = cluster.mcpctl("preflight", "-o", "json")

    assert table.returncode == 0, table.stdout
    header, *rows = table.stdout.splitlines()[:4]
    assert header.split() == [
        "NODE",
        "ADDRESS",
        "SSH",
        "OS",
        "ARCH",
        "DISK",
        "MEMORY",
        "PYTHON3",
        "SUDO",
        "GPUS",
        "RESULT",
    ]
    assert [row.split()[0] for row in rows] == ["node1", "node2", "node3"]
    assert all(row.split()[-1] == "ok" and "debian 12" in row for row in rows)
    assert "preflight: ok on 3 nodes" in table.stdout
    document = json.loads(as_json.stdout)
    assert document["ok"] is True
    assert [node["facts"]["os_id"] for node in document["nodes"]] == ["debian"] * 3


def test_preflight_fails_a_node_whose_gpus_do_not_match_the_spec(cluster: Cluster) -> None:
    # node1 is the first node in the spec; the sandbox says gpu: false everywhere.
    spec = cluster.spec_with(r"^    gpu: false$", "    gpu: true")
    counted = json.loads(cluster.mcpctl("preflight", "-o", "json").stdout)
    if counted["nodes"][0]["facts"]["nvidia_gpus"] != "0":
        pytest.skip("this machine has NVIDIA GPUs: gpu: true would be right")

    result = cluster.mcpctl("preflight", spec=spec)

    assert result.returncode == 1
    assert "node1: gpus: gpu: true but no NVIDIA GPU on PCI" in result.stdout
    assert "preflight: 1 of 3 nodes failed (node1)" in result.stdout


# --- a node down ----------------------------------------------------------------------------


def test_an_unreachable_node_fails_the_run_while_the_others_finish(cluster: Cluster) -> None:
    podman = Podman(cluster.layout)
    container = cluster.layout.container_name("node3")
    address = cluster.layout.node_address(3)
    podman.run(["stop", "--time", "2", container])
    _forget_neighbour(address)
    try:
        # ansible.cfg's 20 s SSH timeout is for real networks; the sandbox's is local.
        deploy = cluster.mcpctl("deploy", "-e", marker(), env={"ANSIBLE_TIMEOUT": "5"})
        executed = cluster.mcpctl("exec", "--", "true")
        checked = cluster.mcpctl("preflight")
    finally:
        podman.run(["start", container])
        _forget_neighbour(address)
        _wait_for_ssh(cluster, "node3")

    assert deploy.returncode == 1
    rows = table_rows(deploy.stdout)
    assert rows["node1"] == rows["node2"] == [3, 2, 0, 0, 3]
    assert rows["node3"] == [0, 0, 0, 1, 0]
    assert re.search(r"^node3: UNREACHABLE: .*10\.91\.0\.13", deploy.stdout, re.M)
    assert "deploy: unreachable: node3" in deploy.stdout
    assert executed.returncode == 1
    assert re.search(r"^node3\s+unreachable: ", executed.stdout, re.M)
    assert re.search(r"^node1\s+exit 0$", executed.stdout, re.M)
    assert checked.returncode == 1
    assert re.search(r"^node3: ssh: unreachable: ", checked.stdout, re.M)


def _forget_neighbour(address: str) -> None:
    """Drop this machine's ARP entry for `address`: with the old container's MAC still cached,
    connections time out (10 s and more) instead of failing at once as for a host long gone,
    and a restarted container is not reached until the entry expires."""
    subprocess.run(["ip", "neigh", "flush", "to", address], check=False)


def _wait_for_ssh(cluster: Cluster, node: str) -> None:
    deadline = time.monotonic() + 60
    while cluster.mcpctl("exec", "--limit", node, "--timeout", "5", "--", "true").returncode:
        assert time.monotonic() < deadline, f"{node} did not come back"
        time.sleep(0.5)
