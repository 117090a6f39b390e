"""`mcpctl agents status` shows a deployment's stream consumers, their lag and dead letters."""

from __future__ import annotations

import argparse

from mcpctl.commands import agents

NODE = "9e0b7c1d2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b"


def test_status_lists_each_consumer_with_its_lag(monkeypatch, capsys):
    consumer = {
        "id": "source.0.0", "reachable": True, "source": "transactions", "consumer": 0,
        "agent": "flow", "node_id": NODE, "partitions": [0, 2], "lag": 120,
        "processed": 5000, "dead_lettered": 3, "paused": True,
    }  # fmt: skip
    report = {
        "nodes": [],
        "deployments": [
            {"deployment": "risk", "agents": [], "replicas": [],
             "sources": [consumer, {"id": "source.0.1", "reachable": False}]},
        ],
    }  # fmt: skip
    monkeypatch.setattr(agents, "_ask", lambda args, request: report)

    agents.cmd_status(argparse.Namespace(output="text", name=None))

    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:] == [
        "SOURCE                  NODE          PARTITIONS  LAG  PROCESSED  DEAD  PAUSED",
        "transactions.0 -> flow  9e0b7c1d2a3f  0,2         120       5000     3  paused",
        "source.0.1              -             -             -          -     -  -",
    ]
