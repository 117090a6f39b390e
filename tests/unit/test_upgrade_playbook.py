"""playbooks/upgrade.yml checks before it stops anything: the preflight play comes first, on
every node, fatal for all on one failure; and its --limit rule, evaluated here on the results
its slurp task would register."""

from __future__ import annotations

import base64
import json
from typing import Any

import jinja2
import pytest

from tests.unit.roles import load

PLAYS = load("playbooks/upgrade.yml")
PREFLIGHT = PLAYS[0]


def test_the_preflight_runs_on_every_node_before_any_drain():
    assert PREFLIGHT["hosts"] == "mcp_cluster"
    assert PREFLIGHT["any_errors_fatal"] is True
    assert "pre_tasks" not in PREFLIGHT and "roles" not in PREFLIGHT
    includes = [task.get("ansible.builtin.include_role") for task in PREFLIGHT["tasks"]]
    assert {"name": "python_env", "tasks_from": "preflight.yml"} in [
        {key: include[key] for key in ("name", "tasks_from")} for include in includes if include
    ]
    # --tags must not skip it.
    assert all("always" in task["tags"] for task in PREFLIGHT["tasks"])
    (include,) = [task for task in PREFLIGHT["tasks"] if "ansible.builtin.include_role" in task]
    assert include["ansible.builtin.include_role"]["apply"] == {"tags": ["always"]}
    # Then every node installs beside the running venv; only the later plays stop Ray.
    prepare, restart, *rolling = PLAYS[1:]
    assert prepare["hosts"] == restart["hosts"] == "mcp_cluster"
    (install,) = [t for t in prepare["tasks"] if t["name"].startswith("Install the release")]
    assert install["vars"] == {"python_env_activate": False}
    assert [play["hosts"] for play in rolling] == ["mcp_head", "mcp_workers"]
    for play in rolling:
        (node,) = play["tasks"]
        assert node["ansible.builtin.include_tasks"]["file"] == "tasks/upgrade-node.yml"
        assert node["ansible.builtin.include_tasks"]["apply"] == {"tags": ["always"]}
        assert node["tags"] == ["always"]


def _ray_changing(installed: dict[str, str], target: str = "2.60.0") -> list[str]:
    restart = PLAYS[2]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["extract"] = lambda host, hostvars, name: hostvars[host][name]
    env.filters["unique"] = lambda items: list(dict.fromkeys(items))
    env.tests["in"] = lambda value, container: value in container
    expression = restart["vars"]["upgrade_ray_changing"].strip()
    return env.compile_expression(expression.removeprefix("{{").removesuffix("}}"))(
        ansible_play_hosts_all=list(installed),
        hostvars={host: {"upgrade_ray_from": ray} for host, ray in installed.items()},
        upgrade_target_ray=target,
    )


@pytest.mark.parametrize(
    ("installed", "changing"),
    [
        ({"head": "2.60.0", "w1": "2.60.0"}, []),
        ({"head": "2.58.0", "w1": "2.58.0"}, ["2.58.0"]),
        # A node half-way from an earlier failed run still means a whole-cluster restart.
        ({"head": "2.60.0", "w1": "2.58.0", "w2": "2.59.0"}, ["2.58.0", "2.59.0"]),
        # A node never deployed has no Ray to mismatch.
        ({"head": "2.60.0", "new": ""}, []),
    ],
)
def test_a_ray_version_change_is_a_whole_cluster_restart(installed, changing):
    assert _ray_changing(installed) == changing
    (block,) = PLAYS[2]["tasks"]
    assert block["when"] == "upgrade_ray_changing | length > 0"
    names = [task["name"] for task in block["block"] if not task["name"].startswith("Note ")]
    assert names[1:] == [
        "Checkpoint the agents",
        # The new release's fact and unit while Ray serves: the stop window is a stop, a
        # switch and a start, and the rolling plays then restart nothing.
        "Record the versions of the new release",
        "Read them as the Ray unit records them",
        "Write the Ray unit of the new release",
        "Stop nowhere unless every node is ready",
        "Stop Ray on every node",
        "Switch every node to its new release",
        "Start the head on the new Ray",
        "Start the workers on the new Ray",
        "Go back everywhere unless every node switched",
    ]
    (record,) = [task for task in block["block"] if task["name"].startswith("Record")]
    assert record["vars"] == {"python_env_venv": "{{ upgrade_release_dir }}"}
    rescued = [task["name"] for task in block["rescue"]]
    assert rescued[1:] == [
        "Go back to the release the node ran",
        "Record the versions of the release the node ran",
        "Read them again as the Ray unit records them",
        "Write the Ray unit of the release the node ran",
        "Start Ray again on the release the node ran",
        "Fail the node, saying what happened",
    ]


def _left_behind(gate: str, facts: dict[str, dict[str, Any]]) -> list[str]:
    """The nodes the gate task finds missing, given each node's facts."""
    (task,) = [task for task in PLAYS[2]["tasks"][0]["block"] if task["name"] == gate]
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["extract"] = lambda host, hostvars: hostvars[host]
    env.tests["in"] = lambda value, container: value in container
    hostvars = {host: {"inventory_hostname": host, **f} for host, f in facts.items()}
    variables: dict[str, Any] = {"ansible_play_hosts_all": list(facts), "hostvars": hostvars}
    (missing_name, hosts_name) = task["vars"]
    for name in (hosts_name, missing_name):
        body = task["vars"][name].strip().removeprefix("{{").removesuffix("}}")
        variables[name] = env.compile_expression(body)(**variables)
    assert task["when"] == f"{missing_name} | length > 0"
    return variables[missing_name]


@pytest.mark.parametrize(
    ("gate", "fact"),
    [
        ("Stop nowhere unless every node is ready", "upgrade_ready"),
        ("Go back everywhere unless every node switched", "upgrade_switched"),
    ],
)
def test_no_node_goes_on_to_the_next_step_of_the_switch_without_all_the_others(gate, fact):
    everyone = {"head": {fact: True}, "w1": {fact: True}, "w2": {fact: True}}
    assert _left_behind(gate, everyone) == []
    # w1 failed before it got there (its rescue puts it back): the others stop at the gate.
    assert _left_behind(gate, {**everyone, "w1": {}}) == ["w1"]


def refuse_task() -> dict[str, Any]:
    (task,) = [task for task in PREFLIGHT["tasks"] if task["name"].startswith("Refuse a --limit")]
    return task


def render(expression: str, variables: dict[str, Any]) -> Any:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["b64decode"] = lambda text: base64.b64decode(text).decode()
    env.filters["from_json"] = json.loads
    env.filters["zip"] = lambda first, second: list(zip(first, second, strict=False))
    env.filters["difference"] = lambda first, second: [item for item in first if item not in second]
    return env.compile_expression(expression.strip().removeprefix("{{").removesuffix("}}"))(
        **variables
    )


def left_out(node: str, ray: str | None = None, unreachable: bool = False) -> dict[str, Any]:
    """A result of the slurp loop for one node outside --limit."""
    if unreachable:
        return {"item": node, "unreachable": True, "msg": "ssh: connect timed out"}
    if ray is None:
        return {"item": node, "failed": True, "msg": "file not found"}
    fact = base64.b64encode(json.dumps({"ray": ray, "torch": "2.13.0+cpu"}).encode()).decode()
    return {"item": node, "content": fact, "encoding": "base64"}


def behind(results: list[dict[str, Any]], target: str = "2.61.0") -> tuple[list, list]:
    task = refuse_task()
    variables: dict[str, Any] = {
        "upgrade_left_out_versions": {"results": results},
        "upgrade_target_ray": target,
    }
    for name in ("upgrade_results", "upgrade_read", "upgrade_read_ray"):
        variables[name] = render(task["vars"][name], variables)
    return (
        [list(pair) for pair in render(task["vars"]["upgrade_behind"], variables)],
        list(render(task["vars"]["upgrade_unreachable"], variables)),
    )


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], ([], [])),
        # Already on the target: the limited run leaves nobody behind.
        ([left_out("node3", "2.61.0")], ([], [])),
        ([left_out("node3", "2.60.0")], ([["node3", "2.60.0"]], [])),
        # Never deployed: no Ray there to mismatch.
        ([left_out("node4")], ([], [])),
        ([left_out("node5", unreachable=True)], ([], ["node5"])),
        (
            [
                left_out("node3", "2.60.0"),
                left_out("node4", "2.61.0"),
                left_out("node5", unreachable=True),
            ],
            ([["node3", "2.60.0"]], ["node5"]),
        ),
    ],
)
def test_the_nodes_a_limit_leaves_behind(results, expected):
    assert behind(results) == expected


def test_the_refusal_runs_only_with_a_limit_and_someone_behind():
    assert refuse_task()["when"] == (
        "ansible_limit is defined and (upgrade_behind + upgrade_unreachable) | length > 0"
    )
    assert PREFLIGHT["vars"]["upgrade_left_out"] == (
        "{{ groups['mcp_cluster'] | difference(ansible_play_hosts_all) }}"
    )
