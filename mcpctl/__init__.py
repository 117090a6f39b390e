"""mcpctl: the operator's CLI for mcp-cluster."""

__version__ = "0.1.0"
