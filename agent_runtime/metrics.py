"""Prometheus metrics via ray.util.metrics (exported by each node's metrics agent).

Created lazily, once per process: Ray metrics must be built inside the worker that records
them, and building them at import time would tie importing this module to a live Ray.
"""

from __future__ import annotations

from functools import cache

from ray.util import metrics

_LATENCY_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000]
_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


@cache
def messages() -> metrics.Counter:
    return metrics.Counter(
        "mcp_agent_messages",
        "Messages handled by agent replicas.",
        tag_keys=("deployment", "agent", "outcome"),
    )


@cache
def latency_ms() -> metrics.Histogram:
    return metrics.Histogram(
        "mcp_agent_handle_ms",
        "Time inside an agent's handle(), milliseconds.",
        boundaries=_LATENCY_MS,
        tag_keys=("deployment", "agent"),
    )


@cache
def batch_size() -> metrics.Histogram:
    return metrics.Histogram(
        "mcp_model_batch_size",
        "Items per model forward pass (dynamic micro-batching).",
        boundaries=_BATCH,
        tag_keys=("model",),
    )


@cache
def node_healthy() -> metrics.Gauge:
    return metrics.Gauge(
        "mcp_node_healthy",
        "1 when the node passes every health threshold, 0 otherwise.",
        tag_keys=("node_id",),
    )


@cache
def node_value() -> metrics.Gauge:
    return metrics.Gauge(
        "mcp_node_health_value",
        "Last health sample per node and quantity (cpu_percent, gpu0_temperature_c, ...).",
        tag_keys=("node_id", "quantity"),
    )
