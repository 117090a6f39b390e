"""Data the roles own and mcpctl reads too (preflight's node requirements, the GPU probe, the
sandbox's sysctls): each fact is written once, in its role, and read from there."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from mcpctl.errors import McpError
from mcpctl.project import project_dir


def role_file(role: str, relative: str) -> Path:
    """A file of roles/`role`/ in the checkout mcpctl runs from (as its playbooks are)."""
    return project_dir() / "roles" / role / relative


@cache
def role_defaults(role: str) -> dict[str, Any]:
    path = role_file(role, "defaults/main.yml")
    defaults = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(defaults, dict):
        raise McpError(f"{path}: expected a mapping of the role's variables")
    return defaults


def literal_default(role: str, name: str) -> Any:
    """A default that is plain data: mcpctl reads it without Ansible, so it must not be a
    template (those depend on a host's variables, which mcpctl does not have)."""
    value = role_defaults(role)[name]
    if "{{" in yaml.safe_dump(value):
        raise McpError(
            f"{role_file(role, 'defaults/main.yml')}: {name} must be plain data, not a template "
            "(mcpctl reads it too)"
        )
    return value
