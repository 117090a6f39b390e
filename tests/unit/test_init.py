"""`mcpctl init` and render_starter_spec: a commented spec that always validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpctl import project
from mcpctl.spec import load_spec, parse_spec
from mcpctl.starter import render_starter_spec
from specfile.errors import SpecError


def test_init_then_validate_round_trip(in_tmp: Path, run_cli):
    init = run_cli(
        "init", "--name", "lab", "--head", "10.0.0.1", "--workers", "10.0.0.[2:9]", "--gpu", "true"
    )
    validate = run_cli("validate")

    assert init.code == 0, init.err
    assert init.out.startswith("wrote cluster.yaml: cluster 'lab', 1 head, 8 workers")
    assert validate.code == 0, validate.err
    assert validate.out == "cluster.yaml: ok — cluster 'lab': 1 head, 8 workers (9 gpu, 0 auto)\n"
    spec = load_spec("cluster.yaml")
    assert [(node.name, node.address) for node in spec.nodes][:3] == [
        ("head", "10.0.0.1"),
        ("worker-1", "10.0.0.2"),
        ("worker-2", "10.0.0.3"),
    ]
    assert spec.nodes[-1].name == "worker-8"
    assert spec.head.name == "head"


def test_init_output_is_commented(in_tmp: Path, run_cli):
    run_cli("init", "--head", "h0.lab", "--workers", "gpu[01:02].lab")

    text = (in_tmp / "cluster.yaml").read_text()

    commented_lines = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert len(commented_lines) >= 20
    for field in ("jump_host", "known_hosts", "wheelhouse", "index_url", "apt_proxy", "labels"):
        assert f"# {field}:" in text, f"optional field {field} is shown, commented out"
    assert "address: gpu02.lab" in text


def test_init_and_inventory_from_several_patterns(in_tmp: Path, run_cli, monkeypatch):
    monkeypatch.setattr(project, "project_dir", lambda: in_tmp / "checkout")
    assert run_cli("init", "--head", "10.0.0.1", "--workers", "10.0.1.[1:2],10.0.2.1").code == 0
    assert run_cli("init", "--head", "10.0.0.1", "--workers", "a[1:2]", "-O", "b.yaml").code == 0

    assert len(load_spec("cluster.yaml").workers) == 3
    assert [node.address for node in load_spec("b.yaml").workers] == ["a1", "a2"]
    assert run_cli("inventory").code == 0
    assert (in_tmp / "checkout/inventory/mcp/hosts.yml").is_file()


def test_init_refuses_to_overwrite_without_force(in_tmp: Path, run_cli):
    (in_tmp / "cluster.yaml").write_text("mine\n")

    refused = run_cli("init", "--head", "10.0.0.1")

    assert refused.code == 2
    assert "already exists — pass --force" in refused.err
    assert (in_tmp / "cluster.yaml").read_text() == "mine\n"

    forced = run_cli("init", "--head", "10.0.0.1", "--force")

    assert forced.code == 0
    assert load_spec("cluster.yaml").head.address == "10.0.0.1"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--name", "Lab"], "--name: cluster name 'Lab' is not allowed"),
        (["--workers", "10.0.0.300"], "--workers (address 10.0.0.300): '10.0.0.300' is not an IP"),
        (["--workers", "10.0.0.[1:2]"], "--workers (address 10.0.0.1): duplicate address"),
        (["--workers", "n[3:1]"], "--workers: host pattern 'n[3:1]': range [3:1] runs backwards"),
        (["--user", "root;reboot"], "--user: user 'root;reboot' contains the shell"),
    ],
)
def test_init_with_bad_flags_writes_nothing(in_tmp: Path, run_cli, flags, expected):
    result = run_cli("init", "--head", "10.0.0.1", *flags)

    assert result.code == 2
    assert expected in result.err
    assert " on line " not in result.err, "lines of the generated text mean nothing here"
    assert list(in_tmp.iterdir()) == []


def test_render_starter_spec_with_all_options(tmp_path: Path):
    text = render_starter_spec(
        "sandbox",
        [("node1", "10.89.0.11"), ("node2", "10.89.0.12")],
        user="mcp",
        key="/state/ssh/id_ed25519",
        gpu=False,
        known_hosts="/state/ssh/known_hosts",
        apt_proxy="http://10.89.0.1:3142",
        wheelhouse="http://10.89.0.1:8080/wheels/",
        allowed_networks=["10.89.0.0/24"],
    )

    spec = parse_spec(text, base_dir=tmp_path)

    assert [node.role for node in spec.nodes] == ["head", "worker"]
    assert [node.gpu for node in spec.nodes] == [False, False]
    assert spec.ssh.user == "mcp"
    assert spec.ssh.known_hosts == "/state/ssh/known_hosts"
    assert spec.apt_proxy == "http://10.89.0.1:3142"
    assert spec.python.wheelhouse == "http://10.89.0.1:8080/wheels/"
    assert spec.ray.allowed_networks == ["10.89.0.0/24"]


def test_render_starter_spec_quotes_values_yaml_would_misread():
    # To YAML 1.1 these are a boolean, null and the number 31; all must come back as text.
    names = ["yes", "null", "0x1f"]
    nodes = [(name, f"10.0.0.{index}") for index, name in enumerate(names, start=1)]

    text = render_starter_spec("lab", nodes, user="u", key="~k")

    assert [node.name for node in parse_spec(text).nodes] == names


def test_render_starter_spec_refuses_input_that_would_not_validate():
    with pytest.raises(SpecError, match=r"nodes\[1\]\.name: node name 'a;b'"):
        render_starter_spec("lab", [("h", "10.0.0.1"), ("a;b", "10.0.0.2")], user="u", key="k")
