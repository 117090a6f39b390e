"""The sources' Prometheus metrics (ray.util.metrics, as agent_runtime/metrics.py: built
lazily in the process that records them, exported with a `ray_` prefix)."""

from __future__ import annotations

from functools import cache

from ray.util import metrics


@cache
def messages() -> metrics.Counter:
    return metrics.Counter(
        "mcp_source_messages",
        "Messages a source's consumers finished, by outcome (ok, dead_letter).",
        tag_keys=("deployment", "topic", "outcome"),
    )


@cache
def lag() -> metrics.Gauge:
    return metrics.Gauge(
        "mcp_source_lag",
        "Messages of a partition after its commit point: not yet handled or in hand.",
        tag_keys=("deployment", "topic", "partition"),
    )


@cache
def paused() -> metrics.Gauge:
    return metrics.Gauge(
        "mcp_source_paused",
        "1 while a consumer has paused its partitions because the agent's lanes are full.",
        tag_keys=("deployment", "topic", "consumer"),
    )
