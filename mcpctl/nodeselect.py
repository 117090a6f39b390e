"""What `--limit` names: node names, comma lists, `head`, `workers`, and globs (`worker-*`)."""

from __future__ import annotations

import fnmatch

from mcpctl.errors import UsageError
from mcpctl.inventory import HEAD_GROUP, WORKERS_GROUP
from mcpctl.spec import ClusterSpec, NodeSpec

HEAD_ALIAS = "head"
WORKERS_ALIAS = "workers"
_GROUP_OF_ALIAS = {HEAD_ALIAS: HEAD_GROUP, WORKERS_ALIAS: WORKERS_GROUP}
# Ansible host-pattern prefixes: exclude (!) and intersect (&).
_PATTERN_PREFIXES = "!&"


def select_nodes(spec: ClusterSpec, pattern: str | None) -> list[NodeSpec]:
    """The nodes `pattern` names, in spec order; all nodes when it is empty. A part that
    names no node is an error, so a typo never quietly shrinks the selection."""
    if not pattern:
        return list(spec.nodes)
    chosen: set[str] = set()
    for token in (part.strip() for part in pattern.split(",")):
        matched = _nodes_matching(spec, token)
        if not matched:
            raise UsageError(
                f"--limit {pattern!r}: {token!r} names no node of cluster {spec.name!r} — "
                f"use node names ({some_node_names(spec)}), head, workers, or a glob such as "
                "'node*'"
            )
        chosen.update(node.name for node in matched)
    return [node for node in spec.nodes if node.name in chosen]


def some_node_names(spec: ClusterSpec, shown: int = 8) -> str:
    """The first few node names, for messages that must stay short on a big cluster."""
    names = ", ".join(node.name for node in spec.nodes[:shown])
    return names + (", ..." if len(spec.nodes) > shown else "")


def _nodes_matching(spec: ClusterSpec, token: str) -> list[NodeSpec]:
    exact = [node for node in spec.nodes if node.name == token]
    if exact:
        return exact
    if token == HEAD_ALIAS:
        return [spec.head]
    if token == WORKERS_ALIAS:
        return spec.workers
    return [node for node in spec.nodes if fnmatch.fnmatchcase(node.name, token)]


def ansible_limit(spec: ClusterSpec, pattern: str | None) -> str | None:
    """`--limit` for ansible-playbook: `head` and `workers` become their inventory groups
    (unless a node has that name); the rest is an Ansible host pattern and passes as is."""
    if not pattern:
        return None
    names = {node.name for node in spec.nodes}
    parts = []
    for token in pattern.split(","):
        body = token.lstrip(_PATTERN_PREFIXES)
        prefix = token[: len(token) - len(body)]
        group = _GROUP_OF_ALIAS.get(body) if body not in names else None
        parts.append(prefix + (group or body))
    return ",".join(parts)
