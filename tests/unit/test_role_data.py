"""Each fact the roles own is written once, in the role, and is what every other user reads:
the sandbox's node containers, Molecule's, the common scenario's verify and the roles'
argument specs (documentation that may not drift from the defaults)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from molecule.interpolation import Interpolator, TemplateWithDefaults

from mcpctl.sandbox import nodes
from mcpctl.sandbox.cluster import print_env
from mcpctl.sandbox.nodes import Node, node_options, start_node
from mcpctl.sandbox.paths import SandboxLayout
from tests.unit.roles import REPO, defaults, load

ROLE_SYSCTLS = defaults("common")["common_sysctl_net"]
SCENARIOS_WITH_RAY = ["agent_runtime", "cluster", "common", "python_env", "ray_cluster"]


def sysctl_options(options: list[str]) -> dict[str, str]:
    return dict(
        option.removeprefix("--sysctl=").split("=", 1)
        for option in options
        if option.startswith("--sysctl=")
    )


def as_strings(values: dict[str, object]) -> dict[str, str]:
    return {key: str(value) for key, value in values.items()}


class RecordingPodman:
    def __init__(self, layout: SandboxLayout) -> None:
        self.layout = layout
        self.calls: list[list[str]] = []

    def exists(self, kind: str, name: str) -> bool:
        return False

    def run(self, args: list[str]) -> None:
        self.calls.append(args)


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SandboxLayout:
    monkeypatch.setenv("MCP_SANDBOX_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("MCP_SANDBOX_CACHE", str(tmp_path / "cache"))
    return SandboxLayout.default()


def sandbox_env(layout: SandboxLayout, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    print_env(layout)
    lines = capsys.readouterr().out.splitlines()
    return dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)


def test_sandbox_nodes_are_created_with_the_roles_sysctls(layout):
    podman = RecordingPodman(layout)

    start_node(podman, Node("node1", "10.77.0.129"), "localhost/mcp-node:latest")

    (run,) = podman.calls
    assert sysctl_options(run) == as_strings(ROLE_SYSCTLS)


def test_the_sandbox_env_hands_molecule_the_same_node_options(layout, capsys):
    exported = json.loads(sandbox_env(layout, capsys)["MCP_SANDBOX_NODE_OPTS"])

    assert exported == node_options()
    assert sysctl_options(exported) == as_strings(ROLE_SYSCTLS)


@pytest.mark.parametrize("scenario", SCENARIOS_WITH_RAY)
def test_molecule_platforms_get_the_sandbox_node_options(scenario, layout, capsys):
    text = (REPO / "molecule" / scenario / "molecule.yml").read_text()
    # What Molecule does with the file: substitute the environment, then parse.
    interpolated = Interpolator(TemplateWithDefaults, sandbox_env(layout, capsys)).interpolate(text)
    platforms = yaml.safe_load(interpolated)["platforms"]

    assert "--sysctl" not in text
    for platform in platforms:
        assert platform["extra_opts"] == node_options(), platform["name"]


def test_the_common_scenario_verifies_the_roles_sysctls():
    (play,) = load("molecule/common/verify.yml")
    loads = [
        task["ansible.builtin.include_vars"]
        for task in play["tasks"]
        if "ansible.builtin.include_vars" in task
    ]

    assert {
        "file": "{{ playbook_dir }}/../../roles/common/defaults/main.yml",
        "name": "verify_common_defaults",
    } in loads
    assert play["vars"]["verify_sysctl_net"] == "{{ verify_common_defaults.common_sysctl_net }}"
    assert (
        play["vars"]["verify_sysctl_kernel"] == "{{ verify_common_defaults.common_sysctl_kernel }}"
    )


def test_sandbox_reads_the_sysctls_from_the_role(monkeypatch):
    # Proof the values are read, not spelled out again: change the role's, the nodes follow.
    monkeypatch.setattr(nodes, "literal_default", lambda role, name: {"net.core.somaxconn": 1})

    assert sysctl_options(node_options()) == {"net.core.somaxconn": "1"}


@pytest.mark.parametrize("role", sorted(path.name for path in (REPO / "roles").iterdir()))
def test_argument_spec_defaults_are_the_roles_defaults(role):
    role_defaults = defaults(role)
    specs = load(f"roles/{role}/meta/argument_specs.yml")["argument_specs"]
    documented = {
        name: option["default"]
        for entry in specs.values()
        for name, option in (entry.get("options") or {}).items()
        if "default" in option
    }

    for name, default in documented.items():
        actual = role_defaults[name]
        # A templated default (mcp_* with a fallback) is described, not compared.
        if "{{" not in json.dumps(actual):
            assert default == actual, name
