"""Progress and summary from real ansible-runner events, recorded on the sandbox.

The fixtures in tests/fixtures/runner_events/ come from tests/fixtures/record_runner_events.py:
- mixed: 4 nodes; node2 fails a task, node3 is down (unreachable), node4 fails a no_log task
  whose command holds the secret "hunter2-not-shown"; node1 succeeds.
- interrupted: `--tags slow --limit node1,node2`, stopped with SIGINT during the slow task.
- no-hosts-matched: `--limit nosuchnode`: ansible-playbook exits before any play.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from mcpctl.console import LineDisplay, LiveDisplay, live_renderable
from mcpctl.progress import (
    NO_LOG_TEXT,
    SUMMARY_COLUMNS,
    HostTally,
    LiveHost,
    Notice,
    RunProgress,
    SummaryRow,
    failure_message,
    live_view,
    summary_cells,
)
from mcpctl.tables import print_table

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "runner_events"
SECRET = "hunter2-not-shown"
SPEC_ORDER = ("node1", "node2", "node3", "node4")


def recorded(name: str) -> list[dict]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def replay(name: str, until: int | None = None) -> tuple[RunProgress, list[Notice]]:
    progress = RunProgress(SPEC_ORDER)
    notices = []
    for event in recorded(name)[:until]:
        notices.extend(progress.apply(event))
    return progress, notices


def test_the_summary_of_a_finished_run_is_ansibles_recap():
    progress, _ = replay("mixed")

    rows = {row.host: row.tally for row in progress.host_rows()}

    assert list(rows) == ["node1", "node2", "node3", "node4"]
    assert rows["node1"] == HostTally(ok=3, changed=1, failed=0, unreachable=0, skipped=3)
    assert rows["node2"] == HostTally(ok=3, changed=1, failed=1, unreachable=0, skipped=1)
    assert rows["node3"] == HostTally(ok=0, changed=0, failed=0, unreachable=1, skipped=0)
    assert rows["node4"] == HostTally(ok=3, changed=2, failed=1, unreachable=0, skipped=2)
    assert progress.failed_hosts() == ["node2", "node4"]
    assert progress.unreachable_hosts() == ["node3"]


def test_counts_folded_from_events_agree_with_the_final_stats():
    events = recorded("mixed")
    assert events[-1]["event"] == "playbook_on_stats"
    live, _ = replay("mixed", until=-1)
    final, _ = replay("mixed")

    assert live.stats is None
    assert live.host_rows() == final.host_rows()


def test_notices_name_the_play_the_tasks_and_each_host_result():
    _, notices = replay("mixed")
    texts = [notice.text for notice in notices]

    assert texts[0] == "PLAY [Fixture play]"
    assert "TASK [Reach the host]" in texts
    assert "  node1: changed  ok=2 changed=1 failed=0 unreachable=0 skipped=0" in texts
    assert all(notice.kind == "heading" for notice in notices if notice.text.startswith("TASK"))


def test_failed_and_unreachable_hosts_print_their_message():
    _, notices = replay("mixed")
    problems = [notice.text for notice in notices if notice.kind == "problem"]

    assert problems == [
        "node3: UNREACHABLE: Task failed: Data could not be sent to remote host "
        '"10.79.0.13". Make sure this host can be reached over ssh: ssh: connect to host '
        "10.79.0.13 port 22: No route to host",
        "node2: FAILED task [Fail where asked]: fixture failure on node2",
        f"node4: FAILED task [Fail with a secret]: {NO_LOG_TEXT}",
    ]


def test_no_log_results_and_their_secrets_are_never_shown():
    progress, notices = replay("mixed")
    shown = "\n".join(
        [
            *(notice.text for notice in notices),
            rendered(live_renderable(live_view(progress, "deploy", datetime.now(UTC), 50))),
            plain_table(progress.host_rows()),
            *progress.output_tail(),
        ]
    )

    assert SECRET not in json.dumps(recorded("mixed"))  # ansible itself kept it out
    assert SECRET not in shown
    no_log_failure = next(
        event
        for event in recorded("mixed")
        if event["event_data"].get("host") == "node4" and event["event"] == "runner_on_failed"
    )
    assert "censored" in no_log_failure["event_data"]["res"]


def test_an_interrupted_run_reports_the_counts_so_far_of_the_hosts_it_reached():
    progress, notices = replay("interrupted")

    assert progress.stats is None
    assert [row.host for row in progress.host_rows()] == ["node1", "node2"]
    assert progress.task == "Sleep until interrupted"
    assert [progress.host_status(host) for host in progress.hosts] == ["running", "running"]
    assert notices[-1].text == "TASK [Sleep until interrupted]"


def test_a_run_that_reached_no_host_keeps_what_ansible_said():
    progress, notices = replay("no-hosts-matched")

    assert progress.host_rows() == []
    assert notices == []
    assert progress.output_tail() == [
        "[WARNING]: Could not match supplied host pattern, ignoring: nosuchnode",
        "[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts "
        "to target.",
    ]


def rendered(renderable: object, width: int = 200) -> str:
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def plain_table(rows: list[SummaryRow]) -> str:
    stream = io.StringIO()
    print_table(SUMMARY_COLUMNS, summary_cells(rows), stream)
    return stream.getvalue()


def test_the_live_view_shows_play_task_elapsed_time_and_per_host_counts():
    events = recorded("mixed")
    # Up to node2's failure: the "Fail where asked" task is under way.
    cut = next(
        index + 1 for index, event in enumerate(events) if event["event"] == "runner_on_failed"
    )
    progress, _ = replay("mixed", until=cut)
    started = progress.task_started
    assert started is not None

    view = live_view(progress, "deploy", started + timedelta(seconds=75), 50)

    assert view.heading == "deploy: PLAY [Fixture play] · TASK [Fail where asked] · 1m15s"
    assert view.hosts == [
        LiveHost("node1", HostTally(ok=3, changed=1, skipped=2), ""),
        LiveHost("node2", HostTally(ok=3, changed=1, failed=1, skipped=1), "FAILED"),
        LiveHost("node3", HostTally(unreachable=1), "UNREACHABLE"),
        LiveHost("node4", HostTally(ok=3, changed=2, skipped=1), "running"),
    ]
    assert view.more == ""
    assert [line.rstrip() for line in rendered(live_renderable(view)).splitlines()] == [
        "deploy: PLAY [Fixture play] · TASK [Fail where asked] · 1m15s",
        "HOST    OK   CHANGED   FAILED   UNREACHABLE   SKIPPED",
        "─" * 67,
        "node1    3         1        0             0         2",
        "node2    3         1        1             0         1   FAILED",
        "node3    0         0        0             1         0   UNREACHABLE",
        "node4    3         2        0             0         1   running",
    ]


def test_the_live_view_fits_the_terminal():
    progress, _ = replay("mixed")

    view = live_view(progress, "deploy", datetime.now(UTC), 7)

    assert [host.host for host in view.hosts] == ["node1", "node2"]
    assert view.more == "… 2 more hosts (2 failed or unreachable)"
    lines = rendered(live_renderable(view), width=40).splitlines()
    assert len(lines) == 6  # room for the cursor's line below the block
    assert all(len(line) <= 40 for line in lines)


def test_the_summary_table_aligns_the_numbers_under_their_headings():
    rows = [
        SummaryRow("head", HostTally(ok=12, changed=3)),
        SummaryRow("worker-10", HostTally(ok=1, failed=1, skipped=140)),
    ]

    assert plain_table(rows) == (
        "HOST       OK  CHANGED  FAILED  UNREACHABLE  SKIPPED\n"
        "head       12        3       0            0        0\n"
        "worker-10   1        0       1            0      140\n"
    )


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"msg": "boom", "changed": False}, "boom"),
        (
            {"msg": "non-zero return code", "rc": 2, "stderr": "warning\nE: no such package\n"},
            "non-zero return code; rc=2; stderr: E: no such package",
        ),
        ({"msg": "secret", "_ansible_no_log": True}, NO_LOG_TEXT),
        ({"censored": "the output has been hidden"}, NO_LOG_TEXT),
        (
            {
                "msg": "One or more items failed",
                "results": [
                    {"failed": False, "item": "a"},
                    {"failed": True, "item": "b", "msg": "bad b"},
                    {"failed": True, "item": "pw", "_ansible_no_log": True, "msg": "pw=x"},
                ],
            },
            f"One or more items failed; item b: bad b; item pw: {NO_LOG_TEXT}",
        ),
        ({}, "failed (no message)"),
        ({"msg": "line one\n  line two"}, "line one line two"),
    ],
)
def test_failure_message(result, message):
    assert failure_message(result) == message


def test_long_failure_messages_keep_their_start_and_their_end():
    banner = "\n".join(
        [
            'Data could not be sent to remote host "10.0.0.1": @@@@@@@@@@@@@@@@@@@@@@@@@',
            "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
            *["It is also possible that a host key has just been changed."] * 3,
            "Host key verification failed.",
        ]
    )
    long = "start " + "x" * 5000 + " end"

    assert failure_message({"msg": banner, "unreachable": True}) == (
        'Data could not be sent to remote host "10.0.0.1": @@@@@@@@@@@@@@@@@@@@@@@@@ … '
        "Host key verification failed."
    )
    assert len(failure_message({"msg": long})) <= 400
    assert failure_message({"msg": long}).startswith("start x")
    assert failure_message({"msg": long}).endswith("x end")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def live_display(verbose: bool) -> tuple[LiveDisplay, _Terminal]:
    stream = _Terminal()
    console = Console(file=stream, force_terminal=True, width=100, height=30)
    return LiveDisplay(console, verbose=verbose), stream


def test_line_display_prints_every_notice():
    stream = io.StringIO()
    display = LineDisplay(stream)
    _, notices = replay("mixed")

    display.show(notices)
    display.redraw(live_view(RunProgress(), "deploy", datetime.now(UTC), 10))

    assert stream.getvalue().splitlines() == [notice.text for notice in notices]
    assert "\x1b" not in stream.getvalue()


def test_the_live_display_keeps_problems_and_redraws_the_view_in_place():
    display, stream = live_display(verbose=False)
    progress, notices = replay("mixed")

    display.show(notices)
    display.redraw(live_view(progress, "deploy", datetime.now(UTC), 30))
    display.close()

    written = stream.getvalue()
    assert "node2: FAILED task [Fail where asked]" in written
    assert "TASK [Reach the host]\n" not in written  # headings only in the view
    assert "deploy: PLAY [Fixture play]" in written
    assert "\x1b[2K" in written  # the view was erased in place when it closed


def test_a_verbose_live_display_keeps_every_notice():
    display, stream = live_display(verbose=True)

    display.show([Notice("heading", "TASK [x]"), Notice("result", "  node1: ok")])
    display.close()

    assert "TASK [x]" in stream.getvalue() and "node1: ok" in stream.getvalue()


def _debug_result(msg: str, *, no_log: bool = False) -> dict:
    res = {"msg": msg, "changed": False}
    if no_log:
        res = {"censored": NO_LOG_TEXT, "_ansible_no_log": True, "changed": False}
    return {
        "event": "runner_on_ok",
        "event_data": {"host": "node1", "task_action": "ansible.builtin.debug", "res": res},
    }


def test_debug_messages_are_the_playbooks_report_and_reach_a_terminal():
    progress = RunProgress(SPEC_ORDER)
    notices = progress.apply(_debug_result("node  ray\nnode1 active"))
    reports = [n.text for n in notices if n.kind == "report"]
    assert reports == ["  node1: node  ray", "  node1: node1 active"]
    terminal, out = live_display(verbose=False)
    terminal.show(notices)
    terminal.close()
    assert "node1 active" in out.getvalue()
    assert "ok=1" not in out.getvalue()  # plain results stay in the live view only


def test_a_no_log_debug_result_reports_nothing():
    notices = RunProgress(SPEC_ORDER).apply(_debug_result("", no_log=True))
    assert [n for n in notices if n.kind == "report"] == []


def _ok(host: str) -> dict:
    return {"event": "runner_on_ok", "event_data": {"host": host, "res": {"changed": False}}}


def test_the_controllers_own_play_is_no_host_of_the_cluster():
    # health.yml ends with a play on localhost: 3 nodes are 3 hosts, not 4.
    progress = RunProgress(("node1", "node2", "node3"))
    for host in ("node1", "node2", "node3", "localhost"):
        progress.apply(_ok(host))
    stats = {"ok": {"node1": 1, "node2": 1, "node3": 1, "localhost": 1}}
    progress.apply({"event": "playbook_on_stats", "event_data": stats})

    assert [row.host for row in progress.host_rows()] == ["node1", "node2", "node3"]


def test_a_controller_that_failed_is_shown():
    progress = RunProgress(("node1",))
    progress.apply(_ok("node1"))
    progress.apply(
        {"event": "runner_on_failed", "event_data": {"host": "localhost", "res": {"msg": "x"}}}
    )

    assert progress.failed_hosts() == ["localhost"]
