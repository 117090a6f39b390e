"""What `--limit` selects, for every command that takes it: Ansible's host-pattern grammar,
resolved against the spec's nodes as ansible-playbook resolves it against the inventory
`mcpctl inventory` renders. Node names; groups (all, mcp_cluster, mcp_head, mcp_workers,
mcp_gpu, and head/workers for the first two); globs (`worker-*`) and regexes (`~gpu-\\d+`);
subscripts (`workers[0]`, `workers[1:3]`); lists joined by `,` or `:`; `&group` intersects and
`!name` excludes. Unlike Ansible, a part that matches no node is an error, so a typo never
quietly shrinks the selection.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from mcpctl.errors import UsageError
from mcpctl.inventory import CLUSTER_GROUP, GPU_GROUP, HEAD_GROUP, WORKERS_GROUP
from mcpctl.spec import ClusterSpec, NodeSpec

ALL_GROUP = "all"
_GROUP_OF_ALIAS = {"head": HEAD_GROUP, "workers": WORKERS_GROUP}
# Ansible's PATTERN_WITH_SUBSCRIPT: `expr[3]`, `expr[-1]`, `expr[1:3]`, `expr[2:]` (and the
# old `expr[1-3]`), so `node[12]` is the 13th match of `node`, not a glob.
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)[:-]([0-9]*))\]$")
# A pattern with one of these also matches host names when it matches groups (Ansible's rule).
_GLOB_CHARACTERS = (".", "?", "*", "[")
# Ansible's ':' separator: anything but whitespace, ':' and brackets, or a bracketed part.
_COLON_PART = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")


def select_nodes(spec: ClusterSpec, pattern: str | None) -> list[NodeSpec]:
    """The nodes `pattern` selects, in spec order; every node when it is empty."""
    if not pattern:
        return list(spec.nodes)
    chosen = set(_evaluate(spec, pattern))
    if not chosen:
        raise UsageError(f"--limit {pattern!r} leaves no node of cluster {spec.name!r}")
    return [node for node in spec.nodes if node.name in chosen]


def ansible_limit(spec: ClusterSpec, pattern: str | None) -> str | None:
    """`--limit` for ansible-playbook, checked as `select_nodes` checks it; head and workers
    become their inventory groups (unless a node has that name)."""
    if not pattern:
        return None
    select_nodes(spec, pattern)
    names = {node.name for node in spec.nodes}
    parts = []
    for part in split_pattern(pattern):
        body = part.lstrip("!&")
        expression, subscript = _split_subscript(body)
        group = _GROUP_OF_ALIAS.get(expression) if expression not in names else None
        parts.append(part[: len(part) - len(body)] + (group + subscript if group else body))
    return ",".join(parts)


def split_pattern(pattern: str) -> list[str]:
    """Ansible's split: on commas if there are any, else on colons outside brackets."""
    parts = pattern.split(",") if "," in pattern else _COLON_PART.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def some_node_names(spec: ClusterSpec, shown: int = 8) -> str:
    """The first few node names, for messages that must stay short on a big cluster."""
    names = ", ".join(node.name for node in spec.nodes[:shown])
    return names + (", ..." if len(spec.nodes) > shown else "")


def _evaluate(spec: ClusterSpec, pattern: str) -> list[str]:
    parts = split_pattern(pattern)
    regular = [part for part in parts if part[0] not in "!&"]
    # As Ansible orders them: the plain parts, then the intersections, then the exclusions.
    ordered = (
        (regular or [ALL_GROUP])
        + [part for part in parts if part[0] == "&"]
        + [part for part in parts if part[0] == "!"]
    )
    selected: list[str] = []
    for part in ordered:
        matched = _matching(spec, part.lstrip("!&"))
        if not matched:
            raise UsageError(
                f"--limit {pattern!r}: {part!r} matches no node of cluster {spec.name!r} — "
                f"use node names ({some_node_names(spec)}), head, workers, all, a glob such "
                "as 'node*', or Ansible's a:b, a:&b, a:!b"
            )
        if part[0] == "!":
            selected = [name for name in selected if name not in matched]
        elif part[0] == "&":
            selected = [name for name in selected if name in matched]
        else:
            selected += [name for name in matched if name not in selected]
    return selected


def _matching(spec: ClusterSpec, part: str) -> list[str]:
    hosts = _inventory_order(spec)
    if part in hosts:
        return [part]
    expression, subscript = _split_subscript(part)
    groups = _groups(spec)
    if expression in _GROUP_OF_ALIAS and expression not in hosts:
        matched = groups[_GROUP_OF_ALIAS[expression]]
    else:
        matched = _enumerate(expression, hosts, groups)
    return _apply_subscript(matched, subscript)


def _enumerate(expression: str, hosts: Sequence[str], groups: dict[str, list[str]]) -> list[str]:
    """Ansible's _enumerate_matches: the hosts of matching groups, and matching hosts."""
    try:
        matcher = re.compile(
            expression[1:] if expression[0] == "~" else fnmatch.translate(expression)
        )
    except re.error as error:
        raise UsageError(f"--limit: {expression!r} is not a valid pattern: {error}") from None
    found = [name for group, members in groups.items() if matcher.match(group) for name in members]
    is_glob = expression[0] == "~" or any(mark in expression for mark in _GLOB_CHARACTERS)
    if not found or is_glob:
        found += [name for name in hosts if matcher.match(name)]
    return list(dict.fromkeys(found))


def _split_subscript(expression: str) -> tuple[str, str]:
    if expression.startswith("~"):
        return expression, ""
    match = _SUBSCRIPT.match(expression)
    return (match.group(1), expression[len(match.group(1)) :]) if match else (expression, "")


def _apply_subscript(hosts: list[str], subscript: str) -> list[str]:
    """Ansible's _apply_subscript: `[i]` one host, `[a:b]` a to b inclusive, `[a:]` a on."""
    if not subscript or not hosts:
        return hosts
    match = _SUBSCRIPT.match(f"x{subscript}")
    assert match is not None  # _split_subscript found it with the same expression
    _, index, start, end = match.groups()
    if index is not None:
        position = int(index)
        return [hosts[position]] if -len(hosts) <= position < len(hosts) else []
    last = int(end) if end else len(hosts) - 1
    return hosts[int(start) : last + 1]


def _inventory_order(spec: ClusterSpec) -> list[str]:
    # hosts.yml lists mcp_head's host first, then mcp_workers'; Ansible numbers them so.
    return [spec.head.name, *(node.name for node in spec.workers)]


def _groups(spec: ClusterSpec) -> dict[str, list[str]]:
    everyone = _inventory_order(spec)
    return {
        ALL_GROUP: everyone,
        CLUSTER_GROUP: everyone,
        HEAD_GROUP: [spec.head.name],
        WORKERS_GROUP: [node.name for node in spec.workers],
        GPU_GROUP: [node.name for node in spec.nodes if node.gpu is True],
        "ungrouped": [],
    }
