"""The committed inventory/example/ is exactly what `mcpctl inventory` renders from its spec."""

from __future__ import annotations

import subprocess

from mcpctl.inventory import render_inventory
from mcpctl.spec import load_spec
from tests.unit.roles import REPO

EXAMPLE = REPO / "inventory/example"


def test_the_committed_example_is_what_mcpctl_renders(run_cli, monkeypatch):
    monkeypatch.chdir(REPO)
    rendered = render_inventory(load_spec(EXAMPLE / "cluster.yaml"))

    assert {path: (EXAMPLE / path).read_text() for path in rendered} == rendered
    # Rendering it in place (the default directory of this spec) finds nothing to write.
    result = run_cli("inventory", "-f", "inventory/example/cluster.yaml")
    assert result.code == 0, result.err
    assert f"{EXAMPLE}: up to date" in result.out


def test_git_ignores_rendered_inventories_but_the_example():
    ignored = subprocess.run(
        [
            "git",
            "check-ignore",
            "--no-index",
            "inventory/lab/hosts.yml",
            "inventory/example/hosts.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )

    assert ignored.stdout.split() == ["inventory/lab/hosts.yml"]
