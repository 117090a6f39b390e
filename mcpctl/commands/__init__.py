"""Handlers of mcpctl's command groups, one module per group; argparse is in mcpctl.cli."""
