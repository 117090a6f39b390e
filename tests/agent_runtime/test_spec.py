from __future__ import annotations

from pathlib import Path

import pytest

from agent_runtime.spec import load_spec, parse_spec
from mcpctl.cli import main
from specfile.errors import SpecError

EXAMPLES = Path(__file__).parents[2] / "agent_runtime" / "examples"

BAD = """\
name: ops
agents:
  - name: detector
    import: agent_runtime.examples.operations:AnomalyDetector
    replicas: 0
    resources:
      num_gpus: 1.5
      memory: lots
  - name: decider
    import: not-a-path
    routing_key: host
    surprise: true
"""


def test_example_files_are_valid():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        spec = load_spec(path)
        assert spec.agents, path


def test_units_and_defaults():
    spec = parse_spec(
        "name: x\nagents:\n  - name: a\n    import: m:A\n"
        "    resources: {num_gpus: 0.25, memory: 512Mi}\n"
    )
    agent = spec.agents[0]
    assert agent.resources.memory == 512 * 2**20
    assert agent.resources.ray_options() == {"num_cpus": 1.0, "num_gpus": 0.25, "memory": 2**29}
    assert (agent.replicas, agent.max_in_flight, spec.health.recover_after) == (1, 64, 3)


def test_errors_name_file_and_line():
    with pytest.raises(SpecError) as error:
        parse_spec(BAD, "agents.yaml")
    lines = str(error.value).splitlines()
    assert "agents.yaml:5: agents[0].replicas" in lines[0]
    expected = {
        "agents.yaml:7: agents[0].resources.num_gpus",
        "agents.yaml:8: agents[0].resources.memory",
        "agents.yaml:10: agents[1].import",
        "agents.yaml:12: agents[1].surprise",
    }
    assert all(any(line.startswith(prefix) for line in lines) for prefix in expected), lines


def test_duplicate_names_and_missing_fields():
    text = "name: x\nagents:\n  - name: a\n    import: m:A\n  - name: a\n    import: m:B\n"
    with pytest.raises(SpecError, match=r"<string>:2: agents: .*repeated: a — give each"):
        parse_spec(text)
    with pytest.raises(SpecError, match=r"<string>:3: agents\[0\]\.import: required field"):
        parse_spec("name: x\nagents:\n  - name: a\n")


def test_duplicate_key_is_refused_not_silently_last():
    with pytest.raises(SpecError, match=r"<string>:2: name: duplicate key 'name' .*line 1"):
        parse_spec("name: x\nname: y\nagents: [{name: a, import: 'm:A'}]\n")


def test_yaml_syntax_and_empty_file():
    with pytest.raises(SpecError, match=r"<string>:\d: invalid YAML"):
        parse_spec("name: x\nagents:\n  - [unclosed\n")
    with pytest.raises(SpecError, match="expected a mapping with 'name:' and 'agents:'"):
        parse_spec("")


def test_cli_rejects_a_bad_spec_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "agents.yaml"
    bad.write_text(BAD)
    assert main(["agents", "deploy", str(bad), "--address", "http://127.0.0.1:9"]) == 2
    assert f"{bad}:5: agents[0].replicas" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        (
            "    autoscaling: {min_replicas: 4, max_replicas: 2}\n",
            r"<string>:5: agents\[0\]\.autoscaling: min_replicas 4 is above max_replicas 2 — "
            "make min_replicas at most max_replicas",
        ),
        (
            "    replicas: 9\n    autoscaling: {max_replicas: 3}\n",
            r"<string>:3: agents\[0\]: replicas 9 \(where it starts\) is outside autoscaling's "
            r"1\.\.3 — set replicas between min_replicas and max_replicas",
        ),
        ("    autoscaling: {}\n", r"agents\[0\]\.autoscaling\.max_replicas: required field"),
    ],
)
def test_autoscaling_is_checked(agent, message):
    with pytest.raises(SpecError, match=message):
        parse_spec("name: x\nagents:\n  - name: a\n    import: m:A\n" + agent)


def test_a_keyed_agent_may_autoscale():
    spec = parse_spec(
        "name: x\nagents:\n  - name: a\n    import: m:A\n"
        "    routing_key: host\n    autoscaling: {max_replicas: 3}\n"
    )
    (agent,) = spec.agents
    assert agent.routing_key == "host" and agent.autoscaling.max_replicas == 3
