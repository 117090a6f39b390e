"""Spec files read with their lines kept: a YAML loader that maps every field to its line,
and one error type whose messages read `file:line: field: problem — fix`.

Shared by the cluster spec (mcpctl) and agents.yaml (agent_runtime); imports neither.
"""
