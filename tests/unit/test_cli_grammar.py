"""One grammar across commands: -o/--output is the format (text|json), -O/--out what a
command writes, --limit an Ansible pattern; bad usage exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpctl.cli import build_parser

FORMAT_COMMANDS = [
    ["exec"],
    ["deploy"],
    ["sandbox", "status"],
    ["preflight"],
    ["status"],
    ["agents", "list"],
    ["agents", "status"],
    ["agents", "deploy", "a.yaml"],
]


@pytest.mark.parametrize("command", FORMAT_COMMANDS)
def test_output_is_text_or_json(command):
    parser = build_parser()

    assert parser.parse_args([*command, "-o", "json"]).output == "json"
    assert parser.parse_args(command).output == "text"
    with pytest.raises(SystemExit) as exited:
        parser.parse_args([*command, "-o", "table"])
    assert exited.value.code == 2


@pytest.mark.parametrize(("command", "value"), [(["init", "--head", "h"], "x.yaml"),
                                                 (["inventory"], "inv")])  # fmt: skip
def test_files_and_folders_are_named_with_out(command, value):
    parser = build_parser()

    assert parser.parse_args([*command, "--out", value]).out == value
    assert parser.parse_args([*command, "-O", value]).out == value
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "-o", value])


@pytest.mark.parametrize("command", [["exec"], ["preflight"], ["deploy"], ["health"]])
def test_every_limit_takes_an_ansible_pattern(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])

    assert "a:b, a:&b, a:!b" in capsys.readouterr().out


def test_init_writes_where_out_says(in_tmp: Path, run_cli):
    result = run_cli("init", "--head", "10.0.0.1", "--out", "lab.yaml")

    assert result.code == 0, result.err
    assert (in_tmp / "lab.yaml").is_file()
    refused = run_cli("init", "--head", "10.0.0.1", "--out", "lab.yaml")
    assert refused.code == 2 and "or --out FILE" in refused.err


@pytest.mark.parametrize("count", ["0", "-1", "500"])
def test_a_bad_node_count_for_the_sandbox_is_a_usage_error(run_cli, count, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SANDBOX_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("MCP_SANDBOX_SUBNET", "10.77.0.0/24")

    result = run_cli("sandbox", "up", "--nodes", count)

    assert result.code == 2
    assert result.err == (
        f"mcpctl: error: --nodes {count}: give 1 to 126 (the nodes' half of 10.77.0.0/24)\n"
    )
    assert not (tmp_path / "state").exists()


def test_a_typo_in_a_playbooks_limit_exits_2_before_anything_runs(run_cli, write_spec, valid_spec):
    result = run_cli("deploy", "-f", str(write_spec(valid_spec)), "--limit", "workers:!nod3")

    assert result.code == 2
    assert "'!nod3' matches no node of cluster 'lab'" in result.err


def _fake_results(spec, nodes, command, timeout, sink=None):
    from mcpctl.remote import NodeResult

    if sink:
        sink("node1", "out", "up 3 days")
    return [
        NodeResult("node1", exit_code=0, stdout="up 3 days\n", seconds=0.12),
        NodeResult("node2", error="unreachable: No route to host"),
    ]


def test_exec_prints_each_nodes_outcome(run_cli, write_spec, valid_spec, monkeypatch):
    from mcpctl.commands import nodes

    monkeypatch.setattr(nodes, "run_on_nodes", _fake_results)

    result = run_cli(
        "exec", "-f", str(write_spec(valid_spec)), "--limit", "node1:node2", "--", "uptime"
    )

    assert result.code == 1
    assert result.out == (
        "node1 | up 3 days\n"
        "\n"
        "NODE   OUTCOME\n"
        "node1  exit 0\n"
        "node2  unreachable: No route to host\n"
        "exec: 1 of 2 failed\n"
    )


def test_exec_as_json(run_cli, write_spec, valid_spec, monkeypatch):
    import json

    from mcpctl.commands import nodes

    monkeypatch.setattr(nodes, "run_on_nodes", _fake_results)

    result = run_cli("exec", "-f", str(write_spec(valid_spec)), "-o", "json", "--", "uptime")

    document = json.loads(result.out)
    assert [(node["node"], node["ok"], node["outcome"]) for node in document] == [
        ("node1", True, "exit 0"),
        ("node2", False, "unreachable: No route to host"),
    ]
    assert document[0]["stdout"] == "up 3 days\n"


def test_agents_deploy_keeps_its_file_apart_from_the_cluster_spec():
    args = build_parser().parse_args(["agents", "deploy", "ops.yaml", "-f", "lab.yaml"])

    assert (args.agents_file, args.spec) == ("ops.yaml", "lab.yaml")
    assert build_parser().parse_args(["agents", "deploy", "ops.yaml"]).spec is None
