"""Ray-hosted agents, node health and health-aware placement for mcp-cluster."""
