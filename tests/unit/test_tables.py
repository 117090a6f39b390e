"""The one table helper: plain aligned text without escape codes off a terminal (what logs
and tests read), rich's table with colours on one."""

from __future__ import annotations

import io

import pytest

from mcpctl.sandbox.cluster import print_status
from mcpctl.tables import Cell, Column, print_table

COLUMNS = [Column("NODE"), Column("CPU%", numeric=True), Column("STATUS")]
ROWS = [["node1", "7", Cell("healthy", "green")], ["gpu-node-10", "100", Cell("dead", "red")]]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_tables_are_aligned_text_without_escape_codes():
    out = io.StringIO()

    print_table(COLUMNS, ROWS, out)

    assert out.getvalue() == (
        "NODE         CPU%  STATUS\nnode1           7  healthy\ngpu-node-10   100  dead\n"
    )


def test_plain_tables_never_wrap(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "20")
    out = io.StringIO()

    print_table([Column("A"), Column("B")], [["x" * 60, "y" * 60]], out)

    assert out.getvalue().splitlines()[1] == "x" * 60 + "  " + "y" * 60


def test_a_terminal_gets_colours(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = _Terminal()

    print_table(COLUMNS, ROWS, out)

    assert "\x1b[" in out.getvalue() and "healthy" in out.getvalue()


def test_a_dumb_terminal_is_plain(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TERM", "dumb")
    out = _Terminal()

    print_table(COLUMNS, ROWS, out)

    assert "\x1b" not in out.getvalue()


def test_the_sandbox_status_table():
    state = {
        "up": True,
        "nodes": [{"node": "node1", "address": "10.77.0.129", "state": "running"}],
        "services": {"apt-cacher-ng": 41, "gateway": None},
        "apt_proxy": "http://10.77.0.1:3142",
        "wheelhouse": "http://10.77.0.1:8081/",
        "wheelhouse_filled": False,
        "spec": "/s/cluster.yaml",
        "inventory": "/s/inventory/hosts.yml",
        "known_hosts": "/s/ssh/known_hosts",
    }
    out = io.StringIO()

    print_status(state, out)

    assert out.getvalue().splitlines() == [
        "NODE   ADDRESS      STATE",
        "node1  10.77.0.129  running",
        "service apt-cacher-ng: running, pid 41",
        "service gateway: stopped",
        "apt proxy:   http://10.77.0.1:3142",
        "wheelhouse:  http://10.77.0.1:8081/ (empty)",
        "spec:        /s/cluster.yaml",
        "inventory:   /s/inventory/hosts.yml",
        "known_hosts: /s/ssh/known_hosts",
    ]


def test_sandbox_status_as_json_when_down(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MCP_SANDBOX_STATE", str(tmp_path / "none"))

    assert run_cli("sandbox", "status", "-o", "json").out == '{\n  "up": false\n}\n'
    assert run_cli("sandbox", "status").out == "sandbox: down\n"


def test_no_color_is_honoured_on_a_terminal(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()

    print_table(COLUMNS, ROWS, out)

    assert "\x1b[32m" not in out.getvalue()  # no green, though bold may stay
