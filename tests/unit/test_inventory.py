"""The rendered inventory: structure, quoting, determinism, atomic writes, ansible's view."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from spec_samples import VALID_SPEC

from mcpctl import inventory, project
from mcpctl.errors import UsageError
from mcpctl.inventory import GROUP_VARS_FILE, HOSTS_FILE, render_inventory, write_inventory
from mcpctl.sandbox.paths import SandboxLayout
from mcpctl.spec import load_spec, parse_spec

TRICKY_SPEC = """\
name: tricky
ssh:
  user: deploy
  key: keys/id_ed25519
  port: 2222
  known_hosts: ./known hosts
  jump_host: admin@[fd00::9]:2200
nodes:
  - name: head
    address: fd00::1
    role: head
    gpu: false
    labels: {zone: "a: b", quote: 'say "hi"', hash: "#1", unicode: "é\\u2028x", "n.x": "1"}
  - {name: w1, address: gpu1.lab, gpu: true, labels: {num: 7}}
  - {name: w2, address: 10.0.0.7}
apt_proxy: http://10.89.0.1:3142
ray:
  allowed_networks: ["FD00:0::/64"]
python:
  wheelhouse: http://10.89.0.1:8080/wheels/
"""


def hosts_of(group: dict) -> list[str]:
    return list((group.get("hosts") or {}).keys())


def test_groups_and_host_vars(tmp_path: Path):
    spec = parse_spec(TRICKY_SPEC, base_dir=tmp_path)

    hosts = yaml.safe_load(render_inventory(spec)[HOSTS_FILE])

    groups = hosts["mcp_cluster"]["children"]
    assert list(groups) == ["mcp_head", "mcp_workers", "mcp_gpu", "mcp_gcs_redis"]
    assert hosts_of(groups["mcp_gcs_redis"]) == []  # gcs_storage rocksdb: no Redis node
    assert hosts_of(groups["mcp_head"]) == ["head"]
    assert hosts_of(groups["mcp_workers"]) == ["w1", "w2"]
    assert hosts_of(groups["mcp_gpu"]) == ["w1"]  # gpu: auto nodes are grouped at deploy time
    head = groups["mcp_head"]["hosts"]["head"]
    assert head == {
        "ansible_host": "fd00::1",
        "mcp_node_role": "head",
        "mcp_gpu": False,
        "mcp_labels": {
            "hash": "#1",
            "n.x": "1",
            "quote": 'say "hi"',
            "unicode": "é\u2028x",
            "zone": "a: b",
        },
    }
    assert groups["mcp_workers"]["hosts"]["w1"]["mcp_labels"] == {"num": "7"}
    assert groups["mcp_workers"]["hosts"]["w2"]["mcp_gpu"] == "auto"


def test_group_vars(tmp_path: Path):
    spec = parse_spec(TRICKY_SPEC, base_dir=tmp_path)

    group_vars = yaml.safe_load(render_inventory(spec)[GROUP_VARS_FILE])

    assert group_vars["ansible_user"] == "deploy"
    assert group_vars["ansible_port"] == 2222
    assert group_vars["ansible_ssh_private_key_file"] == str(tmp_path / "keys/id_ed25519")
    assert shlex.split(group_vars["ansible_ssh_common_args"]) == [
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={tmp_path / 'known hosts'}",
        "-o",
        "ProxyJump=admin@[fd00::9]:2200",
    ]
    assert group_vars["mcp_cluster_name"] == "tricky"
    assert group_vars["mcp_apt_proxy"] == "http://10.89.0.1:3142"
    assert group_vars["mcp_ray_version"] == "2.60.0"
    assert group_vars["mcp_ray_port"] == 6379
    assert group_vars["mcp_ray_dashboard_expose"] is False
    assert group_vars["mcp_ray_allowed_networks"] == ["fd00::/64"]
    assert group_vars["mcp_ray_head_address"] == "fd00::1"
    assert group_vars["mcp_python_wheelhouse"] == "http://10.89.0.1:8080/wheels/"
    assert group_vars["mcp_python_index_url"] is None
    assert group_vars["mcp_nvidia_driver_branch"] == "580"
    assert list(group_vars) == sorted(group_vars, key=lambda key: (key.startswith("mcp_"), key))


def test_redis_node_is_grouped_and_the_store_named(tmp_path: Path):
    spec = parse_spec(VALID_SPEC + "ray:\n  gcs_storage: redis\n  redis_node: node2\n")

    files = render_inventory(spec)
    groups = yaml.safe_load(files[HOSTS_FILE])["mcp_cluster"]["children"]
    group_vars = yaml.safe_load(files[GROUP_VARS_FILE])

    assert groups["mcp_gcs_redis"]["hosts"] == {"node2": {}}
    assert hosts_of(groups["mcp_workers"]) == ["node2", "node3"]  # still a worker
    assert group_vars["mcp_ray_gcs_storage"] == "redis"
    assert group_vars["mcp_ray_redis_node"] == "node2"
    assert group_vars["mcp_ray_redis_port"] == 6390


def test_default_store_is_rocksdb_without_redis(tmp_path: Path):
    group_vars = yaml.safe_load(render_inventory(parse_spec(VALID_SPEC))[GROUP_VARS_FILE])

    assert group_vars["mcp_ray_gcs_storage"] == "rocksdb"
    assert group_vars["mcp_ray_redis_node"] is None


def test_without_known_hosts_or_jump_host_checking_stays_strict(tmp_path: Path):
    spec = parse_spec(VALID_SPEC, base_dir=tmp_path)

    group_vars = yaml.safe_load(render_inventory(spec)[GROUP_VARS_FILE])

    assert group_vars["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=yes"
    assert group_vars["ansible_ssh_private_key_file"] == os.path.expanduser("~/.ssh/id_ed25519")


def test_same_spec_gives_byte_identical_files(tmp_path: Path, write_spec):
    path = write_spec(TRICKY_SPEC)
    first, second = tmp_path / "first", tmp_path / "second"

    write_inventory(load_spec(path), first)
    write_inventory(load_spec(path), second)

    for relative in (HOSTS_FILE, GROUP_VARS_FILE):
        assert (first / relative).read_bytes() == (second / relative).read_bytes()
    assert render_inventory(load_spec(path)) == render_inventory(load_spec(path))


def test_rewrite_of_unchanged_spec_touches_nothing(tmp_path: Path):
    spec = parse_spec(VALID_SPEC, base_dir=tmp_path)
    out = tmp_path / "inv"

    assert write_inventory(spec, out) == [out / HOSTS_FILE, out / GROUP_VARS_FILE]
    assert write_inventory(spec, out) == []


def test_other_files_in_the_directory_are_kept(tmp_path: Path):
    out = tmp_path / "inv"
    (out / "host_vars").mkdir(parents=True)
    (out / "host_vars" / "node1.yml").write_text("x: 1\n")

    write_inventory(parse_spec(VALID_SPEC, base_dir=tmp_path), out)

    assert (out / "host_vars" / "node1.yml").read_text() == "x: 1\n"


def test_failed_render_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    spec = parse_spec(VALID_SPEC, base_dir=tmp_path)
    real_render = inventory.render

    def render_then_fail(name: str, **context):
        if name == "inventory_group_vars.yml.j2":
            raise RuntimeError("template broke")
        return real_render(name, **context)

    monkeypatch.setattr(inventory, "render", render_then_fail)

    with pytest.raises(RuntimeError):
        write_inventory(spec, tmp_path / "inv")
    assert not (tmp_path / "inv").exists()


def test_failed_write_leaves_old_files_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    out = tmp_path / "inv"
    write_inventory(parse_spec(VALID_SPEC, base_dir=tmp_path), out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    changed = parse_spec(VALID_SPEC.replace("name: lab", "name: lab2"), base_dir=tmp_path)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)

    with pytest.raises(UsageError, match="No space left"):
        write_inventory(changed, out)
    after = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before  # no temporary files left, old files unchanged


def test_output_path_that_is_a_file_is_refused(tmp_path: Path):
    (tmp_path / "inv").write_text("")

    with pytest.raises(UsageError, match="not a directory"):
        write_inventory(parse_spec(VALID_SPEC), tmp_path / "inv")


def test_cli_writes_to_the_projects_inventory_directory(
    in_tmp: Path, write_spec, run_cli, monkeypatch
):
    monkeypatch.setattr(project, "project_dir", lambda: in_tmp / "checkout")
    write_spec(VALID_SPEC)

    result = run_cli("inventory", "-f", "cluster.yaml")

    assert result.code == 0, result.err
    written = in_tmp / "checkout/inventory/lab"
    assert f"wrote {written}/hosts.yml\nwrote {written}/group_vars/mcp_cluster.yml\n" in result.out
    assert (written / "hosts.yml").is_file()
    assert not (in_tmp / "inventory").exists()


def test_a_sandboxs_inventory_goes_to_its_state_directory(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MCP_SANDBOX_STATE", str(tmp_path / "state"))
    monkeypatch.setattr(project, "project_dir", lambda: tmp_path / "checkout")
    sandbox = SandboxLayout.default()

    assert project.inventory_dir(sandbox.spec_file, "sandbox") == sandbox.inventory_dir
    assert project.inventory_dir(tmp_path / "cluster.yaml", "sandbox") == (
        tmp_path / "checkout/inventory/sandbox"
    )


def _ansible_inventory() -> str:
    found = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent))
    found = found or shutil.which("ansible-inventory")
    if not found:
        pytest.skip("ansible-inventory is not installed (pip install -e '.[dev]')")
    return found


def test_ansible_inventory_accepts_the_output(in_tmp: Path, write_spec, run_cli):
    write_spec(TRICKY_SPEC)
    assert run_cli("inventory", "-f", "cluster.yaml", "--out", "inv").code == 0
    environment = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(in_tmp / ".ansible-tmp")}

    completed = subprocess.run(
        [_ansible_inventory(), "-i", "inv/hosts.yml", "--list"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "WARNING" not in completed.stderr, completed.stderr
    listing = json.loads(completed.stdout)
    assert listing["mcp_cluster"]["children"] == [
        "mcp_head",
        "mcp_workers",
        "mcp_gpu",
        "mcp_gcs_redis",
    ]
    assert listing["mcp_workers"]["hosts"] == ["w1", "w2"]
    assert listing["mcp_gpu"]["hosts"] == ["w1"]
    head = listing["_meta"]["hostvars"]["head"]
    assert head["ansible_host"] == "fd00::1"
    assert head["ansible_user"] == "deploy"  # group_vars/ next to hosts.yml was read
    assert head["mcp_ray_head_address"] == "fd00::1"
    assert head["mcp_labels"]["unicode"] == "é\u2028x"


def test_every_inventory_group_is_a_reserved_node_name():
    from mcpctl.spec import RESERVED_NODE_NAMES

    groups = {inventory.CLUSTER_GROUP, inventory.HEAD_GROUP}
    groups |= {inventory.WORKERS_GROUP, inventory.GPU_GROUP, inventory.GCS_REDIS_GROUP}
    assert groups <= RESERVED_NODE_NAMES
