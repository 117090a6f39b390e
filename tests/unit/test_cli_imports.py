"""Start-up stays light: parsing arguments and --help import none of the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = {
    "ray",
    "torch",
    "ansible",
    "ansible_runner",
    "fabric",
    "invoke",
    "paramiko",
    "pydantic",
    "jinja2",
    "yaml",
    "rich",
    "requests",
}

PROBE = """
import json, sys
from mcpctl.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["init", "--help"],
        ["inventory", "--help"],
        ["deploy", "--help"],
        ["remove-node", "--help"],
        ["exec", "--help"],
        ["preflight", "--help"],
        ["status", "--help"],
        ["dashboard", "--help"],
        ["agents", "deploy", "--help"],
        ["sandbox", "status", "--help"],
    ],
)
def test_help_imports_nothing_heavy(argv):
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )

    imported = set(json.loads(completed.stdout.strip().splitlines()[-1]))

    assert "mcpctl" in imported
    assert imported.isdisjoint(HEAVY), sorted(imported & HEAVY)


def test_handlers_import_what_they_need(tmp_path):
    # The probe above must be able to see heavy imports, or it would prove nothing.
    spec = tmp_path / "c.yaml"
    spec.write_text("name: x\nnodes: [{name: h, address: 10.0.0.1, role: head}]\n")
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, "validate", "-f", str(spec)],
        capture_output=True,
        text=True,
        check=True,
    )

    imported = set(json.loads(completed.stdout.strip().splitlines()[-1]))

    assert {"pydantic", "yaml"} <= imported
