"""Handlers of `mcpctl exec` and `mcpctl preflight`: straight to the nodes over SSH."""

from __future__ import annotations

import argparse
import json
import sys

from mcpctl.errors import UsageError
from mcpctl.nodeselect import select_nodes
from mcpctl.remote import NodeResult, StreamName, run_on_nodes
from mcpctl.spec import load_spec
from mcpctl.tables import Cell, Column, print_table


def cmd_exec(args: argparse.Namespace) -> int:
    """Run the command on the selected nodes in parallel; exit 1 unless it exited 0 on all."""
    words = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not words:
        raise UsageError("exec: no command given — e.g. mcpctl exec -- uptime")
    if args.timeout < 0:
        raise UsageError(f"--timeout {args.timeout:g}: give seconds, or 0 for no limit")
    spec = load_spec(args.spec)
    nodes = select_nodes(spec, args.limit)
    # As ssh does: the words form one command line for the node's login shell.
    command = " ".join(words)
    timeout = args.timeout or None
    if args.output == "json":
        results = run_on_nodes(spec, nodes, command, timeout)
        print(json.dumps([_result_document(result, timeout) for result in results], indent=2))
    else:
        width = max(len(node.name) for node in nodes)

        def print_line(node: str, stream: StreamName, line: str) -> None:
            target = sys.stdout if stream == "out" else sys.stderr
            target.write(f"{node:<{width}} | {line}\n")
            target.flush()

        results = run_on_nodes(spec, nodes, command, timeout, sink=print_line)
        _print_outcomes(results, timeout)
    return 0 if all(result.ok for result in results) else 1


def _result_document(result: NodeResult, timeout: float | None) -> dict[str, object]:
    return {"node": result.node, "ok": result.ok, "outcome": result.outcome(timeout),
            "exit_code": result.exit_code, "timed_out": result.timed_out, "error": result.error,
            "seconds": round(result.seconds, 3), "stdout": result.stdout,
            "stderr": result.stderr}  # fmt: skip


def _print_outcomes(results: list[NodeResult], timeout: float | None) -> None:
    sys.stdout.flush()
    sys.stdout.write("\n")
    rows = [
        [
            result.node,
            result.outcome(timeout) if result.ok else Cell(result.outcome(timeout), "bold red"),
        ]
        for result in results
    ]
    print_table([Column("NODE"), Column("OUTCOME")], rows)
    failed = sum(1 for result in results if not result.ok)
    verdict = f"{failed} of {len(results)} failed" if failed else f"ok on {len(results)}"
    sys.stdout.write(f"exec: {verdict}\n")


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check every selected node; exit 1 if any check failed on any node."""
    from mcpctl.preflight import check_nodes, print_report, render_json

    spec = load_spec(args.spec)
    nodes = select_nodes(spec, args.limit)
    reports = check_nodes(spec, nodes, args.timeout)
    if args.output == "json":
        print(render_json(reports))
    else:
        print_report(reports)
        failed = [report.node for report in reports if not report.ok]
        print(
            f"preflight: {len(failed)} of {len(reports)} nodes failed ({', '.join(failed)})"
            if failed
            else f"preflight: ok on {len(reports)} nodes"
        )
    return 0 if all(report.ok for report in reports) else 1
