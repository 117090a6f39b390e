"""--limit: Ansible's host-pattern grammar on the spec's nodes, for exec, preflight and the
playbooks alike; checked against Ansible's own InventoryManager on the rendered inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpctl.errors import UsageError
from mcpctl.inventory import HOSTS_FILE, write_inventory
from mcpctl.nodeselect import ansible_limit, select_nodes, split_pattern
from mcpctl.spec import parse_spec

SPEC = parse_spec(
    """\
name: lab
nodes:
  - {name: worker-1, address: 10.0.0.2}
  - {name: boss, address: 10.0.0.1, role: head}
  - {name: worker-2, address: 10.0.0.3}
  - {name: gpu-1, address: 10.0.0.4, gpu: true}
  - {name: gpu-2, address: 10.0.0.5, gpu: true}
"""
)
ALL = ["worker-1", "boss", "worker-2", "gpu-1", "gpu-2"]

# Patterns Ansible resolves the same way with and without mcpctl's head/workers aliases.
ANSIBLE_PATTERNS = [
    "all",
    "worker-2",
    "gpu-1,boss",
    "mcp_workers",
    "worker-*",
    "*-1",
    "gpu-?",
    "~gpu-\\d",
    "mcp_workers:!gpu-1",
    "mcp_workers:&mcp_gpu",
    "mcp_cluster:!mcp_head:!worker-2",
    "!mcp_gpu",
    "&mcp_gpu",
    "mcp_workers[0]",
    "mcp_workers[1:2]",
    "mcp_workers[2:]",
    "mcp_workers[-1]",
    "worker-1, mcp_workers",
    "mcp_g*",
]


def names(pattern: str | None) -> list[str]:
    return [node.name for node in select_nodes(SPEC, pattern)]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, ALL),
        ("", ALL),
        ("gpu-1,boss", ["boss", "gpu-1"]),  # spec order, whatever the pattern's order
        ("head", ["boss"]),
        ("workers", ["worker-1", "worker-2", "gpu-1", "gpu-2"]),
        ("workers:!gpu-*", ["worker-1", "worker-2"]),
        ("workers:&mcp_gpu", ["gpu-1", "gpu-2"]),
        ("all:!head", ["worker-1", "worker-2", "gpu-1", "gpu-2"]),
        ("!head", ["worker-1", "worker-2", "gpu-1", "gpu-2"]),  # as Ansible: all, then !head
        ("workers[0]", ["worker-1"]),
        ("head,workers[1:2]", ["boss", "worker-2", "gpu-1"]),
        ("worker-1, workers", ["worker-1", "worker-2", "gpu-1", "gpu-2"]),  # no duplicates
    ],
)
def test_select_nodes(pattern, expected):
    assert names(pattern) == expected


@pytest.fixture(scope="module")
def ansible_inventory(tmp_path_factory: pytest.TempPathFactory):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader

    directory = tmp_path_factory.mktemp("inventory")
    write_inventory(SPEC, directory)
    return InventoryManager(loader=DataLoader(), sources=[str(directory / HOSTS_FILE)])


@pytest.mark.parametrize("pattern", ANSIBLE_PATTERNS)
def test_ansible_selects_the_same_nodes(ansible_inventory, pattern):
    ansibles = {host.name for host in ansible_inventory.get_hosts(pattern)}

    assert set(names(pattern)) == ansibles
    assert set(names(ansible_limit(SPEC, pattern))) == ansibles


def test_a_part_that_matches_no_node_is_an_error():
    with pytest.raises(UsageError) as error:
        select_nodes(SPEC, "head,wroker-1")

    assert str(error.value) == (
        "--limit 'head,wroker-1': 'wroker-1' matches no node of cluster 'lab' — use node "
        "names (worker-1, boss, worker-2, gpu-1, gpu-2), head, workers, all, a glob such as "
        "'node*', or Ansible's a:b, a:&b, a:!b"
    )


def test_a_pattern_that_leaves_nothing_is_an_error():
    with pytest.raises(UsageError, match="--limit 'head:&workers' leaves no node"):
        select_nodes(SPEC, "head:&workers")


def test_a_bad_regex_is_an_error():
    with pytest.raises(UsageError, match="not a valid pattern"):
        select_nodes(SPEC, "~gpu-(")


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
        ("mcp_gpu:&workers", "mcp_gpu,&mcp_workers"),
        ("workers[1:2]", "mcp_workers[1:2]"),
        ("~worker-[0-9]+", "~worker-[0-9]+"),
    ],
)
def test_ansible_limit_maps_the_aliases_to_inventory_groups(pattern, expected):
    assert ansible_limit(SPEC, pattern) == expected


def test_a_typo_in_a_playbooks_limit_stops_it_before_it_runs():
    with pytest.raises(UsageError, match="'wrokers' matches no node"):
        ansible_limit(SPEC, "wrokers")


@pytest.mark.parametrize(
    ("pattern", "parts"),
    [
        ("a,b[1], c[2:3] , d", ["a", "b[1]", "c[2:3]", "d"]),
        ("a:b[1:2]:!c", ["a", "b[1:2]", "!c"]),
        ("a:&b", ["a", "&b"]),
    ],
)
def test_split_pattern_is_ansibles(pattern, parts):
    from ansible.inventory.manager import split_host_pattern

    assert split_pattern(pattern) == parts == split_host_pattern(pattern)


def test_rendered_inventory_is_used(tmp_path: Path):
    # The comparison above is only as good as the inventory it reads: it has the groups.
    write_inventory(SPEC, tmp_path)
    text = (tmp_path / HOSTS_FILE).read_text()
    assert all(group in text for group in ("mcp_head", "mcp_workers", "mcp_gpu"))
