"""Gateways that take HTTP and WebSocket traffic from outside the cluster to the agents.

See agent_runtime/README.md (Ingress) for the wire format, limits and agents.yaml fields.
"""

from agent_runtime.ingress.auth import token_digest

__all__ = ["token_digest"]
