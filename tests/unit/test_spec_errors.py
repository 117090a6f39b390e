"""Each broken spec fails with exit 2 and one message naming file, line, field and fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from spec_samples import VALID_SPEC


@dataclass(frozen=True)
class Broken:
    text: str
    line: int
    field: str  # the field path the message must name ("" for file-level problems)
    phrase: str  # part of the explanation or the fix


def replace(old: str, new: str) -> str:
    assert VALID_SPEC.count(old) == 1, old
    return VALID_SPEC.replace(old, new)


BROKEN_SPECS = {
    "yaml syntax": Broken(replace("user: ansible", "user: ans: ible"), 3, "", "invalid YAML"),
    "tab indentation": Broken(
        replace("    address: 10.0.0.2", "\taddress: 10.0.0.2"), 10, "", "indent with spaces"
    ),
    "unclosed quote": Broken(replace("user: ansible", 'user: "ansible'), 3, "", "close the quote"),
    "duplicate key": Broken(
        replace("    role: head\n", "    role: head\n    address: 10.0.0.9\n"),
        8,
        "nodes[0].address",
        "duplicate key 'address' (first given on line 6)",
    ),
    "unknown field": Broken(
        replace("    address: 10.0.0.2", "    adress: 10.0.0.2"),
        10,
        "nodes[1].adress",
        "did you mean 'address'?",
    ),
    "misspelt field unlike the right one": Broken(
        replace("  - name: node2", "  - n: node2"),
        9,
        "nodes[1].n",
        "unknown field 'n' — did you mean 'name'?",
    ),
    "field indented too little": Broken(
        VALID_SPEC + "python:\nwheelhouse: http://10.0.0.1/w\n",
        15,
        "wheelhouse",
        "it belongs under 'python:'",
    ),
    "no space after a colon in a flow mapping": Broken(
        replace("{rack: a}", "{rack:a}"), 8, 'nodes[0].labels["rack:a"]', "a space after the colon"
    ),
    "node without name and address": Broken(
        replace("  - name: node2\n    address: 10.0.0.2\n", "  - role: worker\n"),
        9,
        "nodes[1]",
        "required fields 'name' and 'address' are missing",
    ),
    "unknown top-level field": Broken(
        VALID_SPEC + "rey:\n  port: 7000\n", 14, "rey", "did you mean 'ray'?"
    ),
    "duplicate address": Broken(
        replace("10.0.0.3", "10.0.0.2"),
        12,
        "nodes[2].address",
        "duplicate address 10.0.0.2 (node 'node2' on line 10 has it) — give each node",
    ),
    "duplicate address spelled differently": Broken(
        replace("10.0.0.1", "fd00::1").replace("10.0.0.3", "FD00:0::1"),
        12,
        "nodes[2].address",
        "node 'node1' on line 6 has it",
    ),
    "duplicate node name": Broken(
        replace("name: node3", "name: node1"), 11, "nodes[2].name", "also used on line 5"
    ),
    "two heads": Broken(
        replace("    address: 10.0.0.2\n", "    address: 10.0.0.2\n    role: head\n"),
        11,
        "nodes[1].role",
        "node 'node1' on line 7 is the head already",
    ),
    "no head": Broken(replace("    role: head\n", ""), 4, "nodes", "set 'role: head'"),
    "network with host bits": Broken(
        VALID_SPEC + "ray:\n  allowed_networks: [10.0.0.0/8, 10.0.0.5/24]\n",
        15,
        "ray.allowed_networks[1]",
        "has host bits set — write the network: 10.0.0.0/24",
    ),
    "network that is not CIDR": Broken(
        VALID_SPEC + "ray:\n  allowed_networks:\n    - 10.0.0.0/33\n",
        16,
        "ray.allowed_networks[0]",
        "not a network in CIDR notation",
    ),
    "port out of range": Broken(
        VALID_SPEC + "ray:\n  port: 70000\n", 15, "ray.port", "from 1 to 65535"
    ),
    "ray ports collide": Broken(
        VALID_SPEC + "ray:\n  client_port: 6379\n",
        15,
        "ray.client_port",
        "already used by ray.port (its default)",
    ),
    "port inside worker range": Broken(
        VALID_SPEC + "ray:\n  dashboard_port: 10500\n",
        15,
        "ray.dashboard_port",
        "inside the worker port range 10002..10999",
    ),
    "shell metacharacter in node name": Broken(
        replace("name: node2", "name: node;2"), 9, "nodes[1].name", "metacharacter ';'"
    ),
    "braces in a name": Broken(
        replace("name: node2", "name: n{where}{0}"),
        9,
        "nodes[1].name",
        "node name 'n{where}{0}' contains the shell metacharacters '{', '}'",
    ),
    "node named like a group": Broken(
        replace("name: node2", "name: mcp_gpu"), 9, "nodes[1].name", "name of an inventory group"
    ),
    "bad address": Broken(
        replace("10.0.0.2", "10.0.0.300"), 10, "nodes[1].address", "not an IP address or hostname"
    ),
    "bad role": Broken(replace("role: head", "role: master"), 7, "nodes[0].role", "'head' or"),
    "version read as a number": Broken(
        VALID_SPEC + "ray:\n  version: 2.6\n", 15, "ray.version", "put it in quotes"
    ),
    "non-http url": Broken(
        VALID_SPEC + "apt_proxy: ftp://10.0.0.1:3142\n", 14, "apt_proxy", "http(s) URL"
    ),
    "wheelhouse and index together": Broken(
        VALID_SPEC + "python:\n  wheelhouse: http://a/w\n  index_url: https://b/simple\n",
        16,
        "python.index_url",
        "both set on line 15",
    ),
    "nodes not a list": Broken(
        VALID_SPEC.split("nodes:")[0] + "nodes: 5\n", 4, "nodes", "expected a list"
    ),
    "missing required field": Broken(
        replace("    address: 10.0.0.3\n", ""), 11, "nodes[2].address", "required field"
    ),
    "empty file": Broken("", 1, "", "the spec is empty"),
    "ingress port on a ray port": Broken(
        VALID_SPEC + "ingress:\n  port: 6379\n", 15, "ingress.port", "already used by ray.port"
    ),
    "ingress port in the worker range": Broken(
        VALID_SPEC + "ingress:\n  port: 10500\n", 15, "ingress.port", "ray's worker ports"
    ),
    "redis without redis_node": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: redis\n",
        15,
        "ray.gcs_storage",
        "set ray.redis_node to the name of a worker node",
    ),
    "redis_node not a node": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: redis\n  redis_node: node9\n",
        16,
        "ray.redis_node",
        "'node9' is not a node of nodes: — use the name of one of them: node1, node2, node3",
    ),
    "redis_node is the head": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: redis\n  redis_node: node1\n",
        16,
        "ray.redis_node",
        "share the head's fate — put Redis on a worker node",
    ),
    "redis_node without redis storage": Broken(
        VALID_SPEC + "ray:\n  redis_node: node2\n",
        15,
        "ray.redis_node",
        "gcs_storage is rocksdb — set 'gcs_storage: redis'",
    ),
    "redis port on a ray port": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: redis\n  redis_node: node2\n  redis_port: 6380\n",
        17,
        "ray.redis_port",
        "already used by ray.node_manager_port (its default)",
    ),
    "redis port on the ssh port": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: redis\n  redis_node: node2\n  redis_port: 22\n",
        17,
        "ray.redis_port",
        "ray.redis_port and ssh.port are both 22",
    ),
    "bad gcs storage": Broken(
        VALID_SPEC + "ray:\n  gcs_storage: disk\n", 15, "ray.gcs_storage", "'rocksdb'"
    ),
    "ingress network with host bits": Broken(
        VALID_SPEC + "ingress:\n  allowed_networks: [192.168.1.7/24]\n",
        15,
        "ingress.allowed_networks[0]",
        "192.168.1.0/24",
    ),
}


@pytest.mark.parametrize("case", BROKEN_SPECS.values(), ids=BROKEN_SPECS.keys())
def test_broken_spec_gives_one_located_message(case: Broken, in_tmp: Path, write_spec, run_cli):
    write_spec(case.text)

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 2
    assert result.out == ""
    assert len(result.error_lines) == 1, result.err
    message = result.error_lines[0]
    field = f" {case.field}:" if case.field else ""
    assert message.startswith(f"mcpctl: error: cluster.yaml:{case.line}:{field}"), message
    assert case.phrase in message
    assert " — " in message, "every message says how to fix it"


@pytest.mark.parametrize("case", BROKEN_SPECS.values(), ids=BROKEN_SPECS.keys())
def test_broken_spec_writes_no_inventory(case: Broken, in_tmp: Path, write_spec, run_cli):
    write_spec(case.text)

    result = run_cli("inventory", "-f", "cluster.yaml", "--out", "out")
    default_result = run_cli("inventory", "-f", "cluster.yaml")

    assert (result.code, default_result.code) == (2, 2)
    assert sorted(path.name for path in in_tmp.iterdir()) == ["cluster.yaml"]


def test_valid_spec_passes(in_tmp: Path, write_spec, run_cli):
    write_spec(VALID_SPEC)

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 0, result.err
    assert result.out == "cluster.yaml: ok — cluster 'lab': 1 head, 2 workers (1 gpu, 2 auto)\n"


def test_missing_file_says_how_to_create_one(in_tmp: Path, run_cli):
    result = run_cli("validate", "-f", "nowhere.yaml")

    assert result.code == 2
    assert result.error_lines == [
        "mcpctl: error: nowhere.yaml: no such file — write one with 'mcpctl init --head "
        "ADDRESS', or point -f / $MCP_SPEC at your spec"
    ]


def test_spec_path_from_environment(in_tmp: Path, write_spec, run_cli, monkeypatch):
    write_spec(VALID_SPEC, name="other.yaml")
    monkeypatch.setenv("MCP_SPEC", "other.yaml")

    result = run_cli("validate")

    assert result.code == 0
    assert result.out.startswith("other.yaml: ok")


def test_several_faults_are_listed_in_line_order(in_tmp: Path, write_spec, run_cli):
    text = replace("name: node2", "name: node;2").replace("role: head", "role: boss")
    write_spec(text)

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 2
    lines = [line.removeprefix("mcpctl: error: ") for line in result.error_lines]
    assert [line.split(":")[1:3] for line in lines] == [
        ["7", " nodes[0].role"],
        ["9", " nodes[1].name"],
    ]


def test_not_utf8_names_the_line(in_tmp: Path, run_cli):
    (in_tmp / "cluster.yaml").write_bytes(b"name: lab\nnodes:\n  - name: \xff\n")

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 2
    assert result.error_lines[0].startswith("mcpctl: error: cluster.yaml:3: is not UTF-8")


def test_unsupported_tag_is_refused(in_tmp: Path, write_spec, run_cli):
    write_spec(replace("name: lab", "name: !!python/name:os.system lab"))

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 2
    assert "cluster.yaml:1: name: unsupported YAML tag" in result.err


def test_section_left_empty_means_defaults(in_tmp: Path, write_spec, run_cli):
    # Every line under `ray:` commented out leaves `ray:` null; that is not an error.
    write_spec(VALID_SPEC + "ray:\n  # port: 6379\npython:\nnvidia:\n")

    result = run_cli("validate", "-f", "cluster.yaml")

    assert result.code == 0, result.err
