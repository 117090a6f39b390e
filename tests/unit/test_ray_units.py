"""The systemd units roles/ray_cluster installs, rendered from its templates with the role's own
defaults and scored by `systemd-analyze security --offline`: the same score systemd gives them on
a node (molecule/ray_cluster checks it there, on the running units)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest

from tests.unit.roles import REPO, defaults, load

ROLE = REPO / "roles/ray_cluster"
EXPOSURE_LIMIT = 4.0

# What the inventory and the other roles would give a node; the rest is the role's defaults.
NODE = {
    "ansible_managed": "Ansible managed",
    "inventory_hostname": "node1",
    "ansible_host": "10.0.0.1",
    "mcp_ray_head_node": "node1",
    "mcp_ray_head_address": "10.0.0.1",
    "ansible_facts": {"processor_vcpus": 4},
    "ray_cluster_versions": {"python": "3.11.2", "ray": "2.60.0", "torch": "2.13.0+cpu"},
    "ray_cluster_firewall_sources": ["10.0.0.1"],
    "groups": {},
}
# ray.gcs_storage: redis, with Redis on node2.
REDIS = {
    "mcp_ray_gcs_storage": "redis",
    "mcp_cluster_name": "lab",
    "groups": {"mcp_gcs_redis": ["node2"]},
    "hostvars": {"node2": {"ansible_host": "10.0.0.2"}},
}


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


class _RoleVariables(dict[str, Any]):
    """The role's variables, each template rendered when first read (as Ansible does)."""

    def __init__(self, env: jinja2.Environment, raw: Mapping[str, Any]) -> None:
        super().__init__()
        self._env = env
        self._raw = dict(raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __getitem__(self, key: str) -> Any:
        if not dict.__contains__(self, key):
            value = self._raw[key]
            if isinstance(value, str) and "{{" in value:
                value = _render_lazily(self._env.from_string(value.strip()), self)
            dict.__setitem__(self, key, value)
        return dict.__getitem__(self, key)

    def keys(self) -> Any:
        return self._raw.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)


def _render_lazily(template: jinja2.Template, variables: _RoleVariables) -> str:
    # shared=True hands the mapping itself to the template, so only what it reads is rendered.
    return "".join(template.root_render_func(template.new_context(variables, shared=True)))


def render(template: str, **overrides: Any) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["bool"] = _bool
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    raw = {**defaults("ray_cluster"), **load("roles/ray_cluster/vars/main.yml"), **NODE}
    variables = _RoleVariables(env, {**raw, **overrides})
    compiled = env.from_string((ROLE / "templates" / template).read_text(encoding="utf-8"))
    return _render_lazily(compiled, variables)


def exposure(unit: str, name: str, tmp_path: Path) -> tuple[float, str]:
    path = tmp_path / name
    path.write_text(unit, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1)), result.stdout


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        key, separator, value = line.partition("=")
        if separator and not line.startswith(("#", " ")):
            found.setdefault(key, []).append(value)
    return found


VARIANTS = {
    "head": {"mcp_node_role": "head"},
    "head with redis": {"mcp_node_role": "head", **REDIS},
    "worker": {"mcp_node_role": "worker"},
    "gpu worker": {"mcp_node_role": "worker", "nvidia_driver_gpu_count": 2},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_ray_unit_keeps_ray_without_privileges(variant):
    unit = settings(render("mcp-ray.service.j2", **VARIANTS[variant]))

    assert unit["User"] == ["mcp"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert unit["SystemCallErrorNumber"] == ["EPERM"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    assert unit["UMask"] == ["0027"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/mcp"]
    # CUDA needs the host's /dev/nvidia*; a CPU node gets a /dev without hardware.
    assert unit["PrivateDevices"] == (["no"] if variant == "gpu worker" else ["yes"])
    assert unit["ExecStartPost"] == [
        "/opt/mcp/bin/ray-private-dirs.sh /var/lib/mcp/ray 10.0.0.1 6384 110"
    ]
    assert unit["TimeoutStartSec"] == ["120"]


def test_the_head_keeps_its_state_in_redis_with_the_password_from_a_file():
    unit = settings(render("mcp-ray.service.j2", mcp_node_role="head", **REDIS))

    assert "RAY_REDIS_ADDRESS=10.0.0.2:6390" in unit["Environment"]
    # The cluster's name: a new head machine of this cluster finds the same keys.
    assert "RAY_external_storage_namespace=lab" in unit["Environment"]
    assert not any(line.startswith("RAY_gcs_storage") for line in unit["Environment"])
    assert unit["EnvironmentFile"] == ["/etc/mcp/ray_gcs_redis.env"]
    rendered = render("mcp-ray.service.j2", mcp_node_role="head", **REDIS)
    assert "--redis-password=${MCP_GCS_REDIS_PASSWORD} " in rendered


def test_workers_know_nothing_of_redis():
    rendered = render("mcp-ray.service.j2", mcp_node_role="worker", **REDIS)

    assert "REDIS" not in rendered and "EnvironmentFile" not in rendered
    assert "RAY_gcs_storage" not in rendered


def test_a_rocksdb_head_keeps_its_state_on_its_disk():
    unit = settings(render("mcp-ray.service.j2", mcp_node_role="head"))

    assert "RAY_gcs_storage=rocksdb" in unit["Environment"]
    assert "EnvironmentFile" not in unit


def test_turning_the_hardening_off_leaves_the_baseline():
    unit = settings(render("mcp-ray.service.j2", ray_cluster_hardening=False))

    assert "SystemCallFilter" not in unit and "CapabilityBoundingSet" not in unit
    assert unit["NoNewPrivileges"] == ["yes"]


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_systemd_analyze
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_ray_units_exposure_is_at_most_4(variant, tmp_path):
    score, report = exposure(
        render("mcp-ray.service.j2", **VARIANTS[variant]), "mcp-ray.service", tmp_path
    )

    assert score <= EXPOSURE_LIMIT, report


@needs_systemd_analyze
def test_the_firewall_units_exposure_is_at_most_4(tmp_path):
    unit = render("mcp-ray-firewall.service.j2")
    score, report = exposure(unit, "mcp-ray-firewall.service", tmp_path)

    assert score <= EXPOSURE_LIMIT, report
    assert settings(unit)["CapabilityBoundingSet"] == ["CAP_NET_ADMIN"]


def test_the_directory_fix_makes_ray_directories_private(tmp_path):
    made = tmp_path / "ray" / "session_1" / "logs"
    made.mkdir(parents=True)
    for directory in (tmp_path / "ray", made.parent, made):
        directory.chmod(0o777)
    script = ROLE / "files/ray-private-dirs.sh"

    # Nothing listens on the port: it gives up waiting after a second and fixes what is there.
    result = subprocess.run(
        [str(script), str(tmp_path / "ray"), "127.0.0.1", "9", "1"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0
    assert "did not listen on 127.0.0.1:9" in result.stderr
    for directory in (tmp_path / "ray", made.parent, made):
        assert directory.stat().st_mode & 0o777 == 0o750, directory


def _writable_cgroup() -> Path | None:
    """A cgroup hierarchy ray-stop.sh finds its unit's processes in (systemd's v1 one, or v2)."""
    for root in (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")):
        if (root / "cgroup.procs").exists() and os.access(root, os.W_OK):
            return root
    return None


@pytest.fixture
def unit_cgroup() -> Iterator[Path]:
    root = _writable_cgroup()
    if root is None:
        pytest.skip("needs root and a writable cgroup hierarchy, as on a node")
    group = root / f"mcp-test-ray-stop-{os.getpid()}"
    group.mkdir()
    try:
        yield group
    finally:
        for pid in (group / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (group / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        group.rmdir()


def test_the_stop_script_kills_what_ignores_sigterm_and_ends_once_the_unit_is_empty(unit_cgroup):
    join = f"echo $$ > {unit_cgroup}/cgroup.procs; exec "
    stubborn = [
        subprocess.Popen(["sh", "-c", join + "sh -c 'trap \"\" TERM; sleep 300'"]) for _ in range(3)
    ]
    while len((unit_cgroup / "cgroup.procs").read_text().split()) < 3:
        time.sleep(0.05)
    env = {key: value for key, value in os.environ.items() if key != "MAINPID"}

    started = time.monotonic()
    subprocess.run(["sh", "-c", join + f"sh {ROLE / 'files/ray-stop.sh'} /nonexistent 3"],
                   env=env, check=True, timeout=30)  # fmt: skip
    took = time.monotonic() - started

    assert [process.wait(5) for process in stubborn] == [-signal.SIGKILL] * 3
    assert not (unit_cgroup / "cgroup.procs").read_text().strip()
    # Its kill loop runs 50 rounds of 0.1 s at most: ending well before means it saw the unit
    # empty (a helper it starts to read the list would be in the list and keep it full).
    assert took < 3, took


def _firewall(**overrides: Any) -> str:
    # Given here: the node set comes from an Ansible filter (ansible.utils.in_any_network),
    # and the SSH port from a list holding a template, which only Ansible renders.
    given = {"ray_cluster_all_sources": ["10.0.0.0/24"], "ray_cluster_firewall_ssh_ports": [22],
             "ray_cluster_ingress_networks": ["192.0.2.0/24"]}  # fmt: skip
    return render("ray-firewall.nft.j2", **{**given, **overrides})


def test_the_firewall_drops_what_the_cluster_did_not_ask_for_but_keeps_ssh():
    table = _firewall(ray_cluster_firewall_ssh_ports=[2222], ray_cluster_firewall_open_ports=[9100])
    assert "policy drop;" in table
    assert "ct state established,related accept" in table
    assert "tcp dport { 2222 } accept" in table and "tcp dport { 9100 } accept" in table
    assert "ip saddr @cluster_v4 tcp dport @ray_ports accept" in table
    assert "ip saddr @ingress_v4 tcp dport 8300 accept" in table


def test_with_inbound_accept_only_rays_and_the_ingress_port_are_filtered():
    table = _firewall(ray_cluster_firewall_inbound="accept")
    assert "policy accept;" in table and "ct state" not in table and "dport { 22 }" not in table
    assert "tcp dport @ray_ports counter drop" in table
