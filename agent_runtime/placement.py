"""Scheduling constraints shared by the supervisor, the health monitor and deployments."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Every head node carries this resource (Ray Serve pins its controller the same way). The
# control actors live there: the head also holds the GCS, so if it dies the cluster is gone
# anyway, and a worker's death can never take a supervisor and all its replicas with it.
HEAD_NODE_RESOURCE = "node:__internal_head__"
NODE_ID_LABEL = "ray.io/node-id"


def on_head() -> dict[str, Any]:
    return {"num_cpus": 0, "resources": {HEAD_NODE_RESOURCE: 0.001}}


def avoiding(node_ids: Iterable[str]) -> dict[str, Any]:
    """Actor options that keep it (and its later restarts) off these nodes."""
    excluded = sorted(node_ids)
    if not excluded:
        return {}
    return {"label_selector": {NODE_ID_LABEL: f"!in({','.join(excluded)})"}}
