"""The checkout's roles, read as plain YAML: the tests compare what mcpctl, the sandbox and
Molecule use against the one definition in a role."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def load(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text(encoding="utf-8"))


def defaults(role: str) -> dict[str, Any]:
    return load(f"roles/{role}/defaults/main.yml")
