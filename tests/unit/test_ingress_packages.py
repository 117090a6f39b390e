"""The gateway's and stream sources' packages are pinned alike wherever they are installed:
the runtime extra, the python_env role (every node) and the sandbox's wheelhouse (where the
nodes get them)."""

from __future__ import annotations

import tomllib

from mcpctl.sandbox.wheelhouse import REQUIREMENTS
from tests.unit.roles import REPO, defaults


def _pins(requirements: list[str] | tuple[str, ...]) -> dict[str, str]:
    return dict(line.split("==", 1) for line in requirements if "==" in line)


def test_the_nodes_get_the_gateways_packages_at_the_runtime_extras_versions():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    runtime = _pins(project["project"]["optional-dependencies"]["runtime"])
    role = defaults("python_env")["python_env_ingress_packages"]

    assert role == {name: runtime[name] for name in role}
    assert set(role) == {"httptools", "msgspec", "uvloop", "confluent-kafka"}
    assert all(_pins(REQUIREMENTS)[name] == version for name, version in role.items())
