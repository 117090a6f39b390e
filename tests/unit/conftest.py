"""Helpers shared by the unit tests: real files in tmp_path, the real CLI entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from spec_samples import VALID_SPEC

from mcpctl.cli import main


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return self.err.strip().splitlines()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    def run(*argv: str) -> CliResult:
        code = main(list(argv))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in tmp_path so messages name files as the user typed them (cluster.yaml:LINE)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def valid_spec() -> str:
    return VALID_SPEC


@pytest.fixture
def write_spec(tmp_path: Path):
    def write(text: str, name: str = "cluster.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
