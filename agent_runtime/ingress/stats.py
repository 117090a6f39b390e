"""The gateway's own counters, served as Prometheus text on `GET /metrics`.

Plain integers in the gateway's process rather than ray.util.metrics: they cost an addition
per message, and a scrape of the gateway sees them without going through the node's metrics
agent (whose export lags by its reporting interval).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable

BATCH_BOUNDS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Histogram:
    def __init__(self, bounds: Iterable[int]) -> None:
        self.bounds = tuple(bounds)
        self.buckets = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0

    def observe(self, value: int) -> None:
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value


class GatewayStats:
    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        # (agent, outcome) -> messages; outcomes: ok, error, rejected (429), invalid (4xx)
        self.messages: Counter[tuple[str, str]] = Counter()
        # (protocol, status) -> HTTP responses / WebSocket sessions
        self.responses: Counter[tuple[str, int]] = Counter()
        self.batch_sizes: dict[str, Histogram] = {}
        self.connections = 0
        self.connections_refused = 0

    def batch(self, agent: str, size: int) -> None:
        histogram = self.batch_sizes.get(agent)
        if histogram is None:
            histogram = self.batch_sizes[agent] = Histogram(BATCH_BOUNDS)
        histogram.observe(size)

    def render(self, load: Callable[[], dict[str, dict[str, int]]]) -> str:
        """Prometheus text format 0.0.4; `load` gives queued/in-flight per agent right now."""
        d = self.deployment
        lines = [
            "# HELP mcp_ingress_messages_total Messages by outcome.",
            "# TYPE mcp_ingress_messages_total counter",
        ]
        for (agent, outcome), value in sorted(self.messages.items()):
            labels = f'deployment="{d}",agent="{agent}",outcome="{outcome}"'
            lines.append(f"mcp_ingress_messages_total{{{labels}}} {value}")
        lines += [
            "# HELP mcp_ingress_responses_total HTTP responses and WebSocket sessions.",
            "# TYPE mcp_ingress_responses_total counter",
        ]
        for (protocol, status), value in sorted(self.responses.items()):
            labels = f'deployment="{d}",protocol="{protocol}",status="{status}"'
            lines.append(f"mcp_ingress_responses_total{{{labels}}} {value}")
        lines += [
            "# HELP mcp_ingress_rejected_total Requests answered 429 (every replica full).",
            "# TYPE mcp_ingress_rejected_total counter",
            f'mcp_ingress_rejected_total{{deployment="{d}"}} {self.responses[("http", 429)]}',
        ]
        for name, what in (("queued", "waiting for a call"), ("in_flight", "in actor calls")):
            lines += [
                f"# HELP mcp_ingress_{name} Messages {what}.",
                f"# TYPE mcp_ingress_{name} gauge",
            ]
            for agent, figures in sorted(load().items()):
                labels = f'deployment="{d}",agent="{agent}"'
                lines.append(f"mcp_ingress_{name}{{{labels}}} {figures[name]}")
        lines += [
            "# HELP mcp_ingress_connections Open client connections.",
            "# TYPE mcp_ingress_connections gauge",
            f'mcp_ingress_connections{{deployment="{d}"}} {self.connections}',
            "# HELP mcp_ingress_connections_refused_total Connections over max_connections.",
            "# TYPE mcp_ingress_connections_refused_total counter",
            f'mcp_ingress_connections_refused_total{{deployment="{d}"}} {self.connections_refused}',
            "# HELP mcp_ingress_batch_size Messages per actor call.",
            "# TYPE mcp_ingress_batch_size histogram",
        ]
        for agent, histogram in sorted(self.batch_sizes.items()):
            cumulative = 0
            for bound, count in zip(
                [*map(str, histogram.bounds), "+Inf"], histogram.buckets, strict=True
            ):
                cumulative += count
                labels = f'deployment="{d}",agent="{agent}",le="{bound}"'
                lines.append(f"mcp_ingress_batch_size_bucket{{{labels}}} {cumulative}")
            labels = f'deployment="{d}",agent="{agent}"'
            lines.append(f"mcp_ingress_batch_size_sum{{{labels}}} {histogram.total}")
            lines.append(f"mcp_ingress_batch_size_count{{{labels}}} {histogram.count}")
        return "\n".join(lines) + "\n"
