"""--limit: node names, comma lists, head/workers and globs; Ansible patterns for playbooks."""

from __future__ import annotations

import pytest

from mcpctl.errors import UsageError
from mcpctl.nodeselect import ansible_limit, select_nodes
from mcpctl.spec import parse_spec

SPEC = parse_spec(
    """\
name: lab
nodes:
  - {name: head, address: 10.0.0.1, role: head}
  - {name: worker-1, address: 10.0.0.2}
  - {name: worker-2, address: 10.0.0.3}
  - {name: gpu-1, address: 10.0.0.4, gpu: true}
"""
)


def names(pattern: str | None) -> list[str]:
    return [node.name for node in select_nodes(SPEC, pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ["head", "worker-1", "worker-2", "gpu-1"]),
        ("", ["head", "worker-1", "worker-2", "gpu-1"]),
        ("worker-2", ["worker-2"]),
        ("gpu-1,head", ["head", "gpu-1"]),  # spec order, whatever the pattern's order
        ("head", ["head"]),
        ("workers", ["worker-1", "worker-2", "gpu-1"]),
        ("worker-*", ["worker-1", "worker-2"]),
        ("*-[12]", ["worker-1", "worker-2", "gpu-1"]),
        ("worker-1, workers", ["worker-1", "worker-2", "gpu-1"]),  # no duplicates
    ],
)
def test_select_nodes(pattern, expected):
    assert names(pattern) == expected


def test_a_part_that_names_no_node_is_an_error():
    with pytest.raises(UsageError) as error:
        select_nodes(SPEC, "head,wroker-1")

    assert str(error.value) == (
        "--limit 'head,wroker-1': 'wroker-1' names no node of cluster 'lab' — use node names "
        "(head, worker-1, worker-2, gpu-1), head, workers, or a glob such as 'node*'"
    )


def test_a_node_named_like_an_alias_is_that_node():
    spec = parse_spec(
        "name: x\nnodes:\n  - {name: a, address: 10.0.0.1, role: head}\n"
        "  - {name: workers, address: 10.0.0.2}\n  - {name: b, address: 10.0.0.3}\n"
    )

    assert [node.name for node in select_nodes(spec, "workers")] == ["workers"]
    assert ansible_limit(spec, "workers") == "workers"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, None),
        ("head", "mcp_head"),
        ("workers,!gpu-1", "mcp_workers,!gpu-1"),
        ("&workers,worker-*", "&mcp_workers,worker-*"),
        ("mcp_gpu:&workers", "mcp_gpu:&workers"),  # not a comma-separated alias: as is
        ("~worker-[0-9]+", "~worker-[0-9]+"),
    ],
)
def test_ansible_limit_maps_the_aliases_to_inventory_groups(pattern, expected):
    spec = parse_spec(
        "name: x\nnodes:\n  - {name: n1, address: 10.0.0.1, role: head}\n"
        "  - {name: gpu-1, address: 10.0.0.2}\n"
    )

    assert ansible_limit(spec, pattern) == expected
