"""Progress of a playbook run, folded from ansible-runner's events, and its summary table.

Events in, views out: nothing here touches a terminal or a process, so recorded events replay
exactly. `RunProgress.apply` turns each event into `Notice`s (lines a log keeps); `live_view`
is what a terminal redraws in place (mcpctl.console draws it); `summary_cells` are the final
per-host table's rows (mcpctl.tables prints them).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from mcpctl.tables import Cell, CellValue, Column

NoticeKind = Literal["heading", "result", "report", "problem"]
# A playbook's debug messages are its report to the operator (health tables, "skipped: no GPU").
_REPORT_ACTIONS = frozenset({"debug", "ansible.builtin.debug"})

# Plays on the controller (health.yml's summary) run as this host, which is no node.
CONTROLLER = "localhost"

# Ansible's own wording for a no_log result; a result carrying it says nothing else.
NO_LOG_TEXT = "output hidden (no_log)"
MESSAGE_LIMIT = 400
# Enough of ansible's own output to explain a run that ended before any host ran a task
# (syntax error, no host matched --limit...).
OUTPUT_TAIL_LINES = 15

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Notice:
    """A line worth keeping: a play or task heading, one host's result, or a problem."""

    kind: NoticeKind
    text: str


@dataclass
class HostTally:
    """Per-host counts with the meaning of Ansible's recap: `ok` includes `changed`."""

    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0

    def counts_text(self) -> str:
        return (
            f"ok={self.ok} changed={self.changed} failed={self.failed} "
            f"unreachable={self.unreachable} skipped={self.skipped}"
        )


@dataclass(frozen=True)
class SummaryRow:
    host: str
    tally: HostTally


@dataclass
class _HostState:
    tally: HostTally = field(default_factory=HostTally)
    running: bool = False
    down: Literal["", "failed", "unreachable"] = ""


class RunProgress:
    """The state of one playbook run so far, for the hosts its events name. `host_order` (the
    spec's) orders them; hosts not in it follow in the order they appeared."""

    def __init__(self, host_order: Sequence[str] = ()) -> None:
        self.play: str | None = None
        self.task: str | None = None
        self.task_started: datetime | None = None
        self.stats: dict[str, Any] | None = None
        self._order = {host: index for index, host in enumerate(host_order)}
        self._hosts: dict[str, _HostState] = {}
        self._output_tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)

    # --- folding events -------------------------------------------------------------------

    def apply(self, event: Mapping[str, Any]) -> list[Notice]:
        name = event.get("event", "")
        data: Mapping[str, Any] = event.get("event_data") or {}
        self._keep_output(event)
        if name == "playbook_on_play_start":
            self.play = data.get("play") or data.get("name") or "(unnamed play)"
            self.task = None
            return [Notice("heading", f"PLAY [{self.play}]")]
        if name in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            return self._task_started(event, data, handler=name.endswith("handler_task_start"))
        if name == "runner_on_start":
            self._host(data["host"]).running = True
            return []
        if name == "runner_retry":
            attempt = f"{data.get('res', {}).get('attempts', '?')}"
            return [Notice("result", f"  {data['host']}: retrying (attempt {attempt})")]
        if name in _RESULT_EVENTS:
            return self._result(name, data)
        if name in ("playbook_on_no_hosts_matched", "playbook_on_no_hosts_remaining"):
            what = "matched" if name.endswith("matched") else "remaining"
            return [Notice("problem", f"no hosts {what}")]
        if name == "playbook_on_stats":
            self.stats = dict(data)
            for state in self._hosts.values():
                state.running = False
        return []

    def _task_started(
        self, event: Mapping[str, Any], data: Mapping[str, Any], handler: bool
    ) -> list[Notice]:
        self.task = data.get("task") or data.get("name") or "(unnamed task)"
        self.task_started = _timestamp(event)
        for state in self._hosts.values():
            state.running = False
        return [Notice("heading", f"{'HANDLER' if handler else 'TASK'} [{self.task}]")]

    def _result(self, name: str, data: Mapping[str, Any]) -> list[Notice]:
        host = data["host"]
        state = self._host(host)
        state.running = False
        tally = state.tally
        result: Mapping[str, Any] = data.get("res") or {}
        if name == "runner_on_unreachable":
            tally.unreachable += 1
            state.down = "unreachable"
            message = failure_message(result)
            return [Notice("problem", f"{host}: UNREACHABLE: {message}")]
        if name == "runner_on_failed" and not data.get("ignore_errors"):
            tally.failed += 1
            state.down = "failed"
            where = f"task [{data.get('task') or self.task}]"
            return [Notice("problem", f"{host}: FAILED {where}: {failure_message(result)}")]
        if name == "runner_on_skipped":
            tally.skipped += 1
            outcome = "skipped"
        else:
            # Ansible counts a failure under ignore_errors as ok (and as "ignored").
            tally.ok += 1
            outcome = "failed (ignored)" if name == "runner_on_failed" else "ok"
            if result.get("changed"):
                tally.changed += 1
                outcome = "changed" if name == "runner_on_ok" else outcome
        notices = [Notice("result", f"  {host}: {outcome:<8} {tally.counts_text()}")]
        return notices + _report(host, data, result)

    def _host(self, host: str) -> _HostState:
        return self._hosts.setdefault(host, _HostState())

    def _keep_output(self, event: Mapping[str, Any]) -> None:
        text = _ANSI_ESCAPE.sub("", event.get("stdout") or "")
        self._output_tail.extend(line.rstrip() for line in text.splitlines() if line.strip())

    # --- reading the state ----------------------------------------------------------------

    @property
    def hosts(self) -> list[str]:
        return self._ordered(self._hosts)

    def _ordered(self, hosts: Iterable[str]) -> list[str]:
        # sorted() is stable: hosts outside the spec keep the order they appeared in.
        return sorted(hosts, key=lambda host: self._order.get(host, len(self._order)))

    def host_rows(self) -> list[SummaryRow]:
        """Per-host counts: the final stats once the run ended, else the counts so far. The
        controller counts only where it failed: it is no node of the cluster."""
        return [row for row in self._all_rows() if not self._is_quiet_controller(row)]

    def _is_quiet_controller(self, row: SummaryRow) -> bool:
        return (
            row.host == CONTROLLER
            and row.host not in self._order
            and not (row.tally.failed or row.tally.unreachable)
        )

    def _all_rows(self) -> list[SummaryRow]:
        if self.stats is None:
            return [SummaryRow(host, self._hosts[host].tally) for host in self.hosts]
        rows = []
        for host in self._stats_hosts(self.stats):
            rows.append(
                SummaryRow(
                    host,
                    HostTally(
                        ok=_count(self.stats, "ok", host),
                        changed=_count(self.stats, "changed", host),
                        failed=_count(self.stats, "failures", host),
                        unreachable=_count(self.stats, "dark", host),
                        skipped=_count(self.stats, "skipped", host),
                    ),
                )
            )
        return rows

    def _stats_hosts(self, stats: Mapping[str, Any]) -> list[str]:
        named = dict.fromkeys(self._hosts)
        for key in ("processed", "ok", "changed", "failures", "dark", "skipped"):
            named.update(dict.fromkeys(stats.get(key) or {}))
        return self._ordered(named)

    def failed_hosts(self) -> list[str]:
        return [row.host for row in self.host_rows() if row.tally.failed]

    def unreachable_hosts(self) -> list[str]:
        return [row.host for row in self.host_rows() if row.tally.unreachable]

    def output_tail(self) -> list[str]:
        """The last lines ansible printed, for a run that failed before reaching any host."""
        return list(self._output_tail)

    def host_status(self, host: str) -> str:
        state = self._hosts[host]
        if state.down:
            return state.down.upper()
        return "running" if state.running else ""


_RESULT_EVENTS = frozenset(
    {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
)


def _report(host: str, data: Mapping[str, Any], result: Mapping[str, Any]) -> list[Notice]:
    message = result.get("msg")
    if data.get("task_action") not in _REPORT_ACTIONS or result.get("_ansible_no_log"):
        return []
    if not isinstance(message, str) or not message or message == "Hello world!":
        return []
    return [Notice("report", f"  {host}: {line}") for line in message.splitlines()]


def failure_message(result: Mapping[str, Any]) -> str:
    """One line saying why a task failed, from its result; nothing of a no_log result."""
    if result.get("_ansible_no_log") or "censored" in result:
        return NO_LOG_TEXT
    parts = []
    message = _first_and_last_line(str(result.get("msg") or ""))
    if message:
        parts.append(message)
    if isinstance(result.get("rc"), int) and result.get("rc") != 0:
        parts.append(f"rc={result['rc']}")
    stderr = _last_line(str(result.get("stderr") or ""))
    if stderr:
        parts.append(f"stderr: {stderr}")
    parts.extend(_failed_item_messages(result.get("results")))
    text = "; ".join(parts) or "failed (no message)"
    if len(text) <= MESSAGE_LIMIT:
        return text
    # The end says most (ssh's "Host key verification failed."): cut the middle.
    half = (MESSAGE_LIMIT - 3) // 2
    return f"{text[:half]} … {text[-half:]}"


def _failed_item_messages(items: object) -> Iterable[str]:
    if not isinstance(items, list):
        return []
    messages = []
    for item in items:
        if isinstance(item, Mapping) and item.get("failed"):
            label = item.get("_ansible_item_label", item.get("item", "?"))
            # An item's label can be the item itself, secrets and all, under no_log.
            shown = NO_LOG_TEXT if item.get("_ansible_no_log") else failure_message(item)
            messages.append(f"item {_one_line(str(label))}: {shown}")
    return messages


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _first_and_last_line(text: str) -> str:
    """A long multi-line message (ssh's banners) as its first and last lines."""
    lines = [_one_line(line) for line in text.splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} … {lines[-1]}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _count(stats: Mapping[str, Any], key: str, host: str) -> int:
    return int((stats.get(key) or {}).get(host, 0))


def _timestamp(event: Mapping[str, Any]) -> datetime | None:
    created = event.get("created")
    try:
        return datetime.fromisoformat(created) if isinstance(created, str) else None
    except ValueError:
        return None


# --- views ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveHost:
    host: str
    tally: HostTally
    status: str  # "", "running", "FAILED", "UNREACHABLE"


@dataclass(frozen=True)
class LiveView:
    """What a terminal shows while the run goes: where it is, then one row per host; `more`
    counts the hosts that did not fit."""

    heading: str
    hosts: list[LiveHost]
    more: str = ""


def live_view(progress: RunProgress, title: str, now: datetime, height: int) -> LiveView:
    """The current play and task with the task's elapsed time, and each host's counts. With
    more hosts than `height` lines allow, the rest are counted on a last line."""
    where = " · ".join(
        part
        for part in (
            f"PLAY [{progress.play}]" if progress.play else "starting",
            f"TASK [{progress.task}]" if progress.task else "",
            _elapsed(progress.task_started, now) if progress.task else "",
        )
        if part
    )
    hosts = progress.hosts
    # The heading, the table's header and rule, the "more" line and the cursor's own line.
    room = max(height - 5, 1)
    shown = hosts if len(hosts) <= room else hosts[:room]
    tallies = {row.host: row.tally for row in progress.host_rows()}
    rows = [
        LiveHost(host, tallies.get(host, HostTally()), progress.host_status(host)) for host in shown
    ]
    more = ""
    if len(shown) < len(hosts):
        rest = hosts[len(shown) :]
        down = sum(1 for host in rest if progress.host_status(host) in ("FAILED", "UNREACHABLE"))
        more = f"… {len(rest)} more hosts ({down} failed or unreachable)"
    return LiveView(f"{title}: {where}", rows, more)


def _elapsed(started: datetime | None, now: datetime) -> str:
    if started is None:
        return ""
    return elapsed_text(max((now - started).total_seconds(), 0.0))


def elapsed_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


COUNT_COLUMNS = (
    Column("OK", numeric=True),
    Column("CHANGED", numeric=True),
    Column("FAILED", numeric=True),
    Column("UNREACHABLE", numeric=True),
    Column("SKIPPED", numeric=True),
)
SUMMARY_COLUMNS = (Column("HOST"), *COUNT_COLUMNS)


def count_cells(tally: HostTally) -> list[CellValue]:
    """A host's counts, the ones that need attention coloured (on a terminal)."""
    return [
        str(tally.ok),
        Cell(str(tally.changed), "yellow" if tally.changed else ""),
        Cell(str(tally.failed), "bold red" if tally.failed else ""),
        Cell(str(tally.unreachable), "bold red" if tally.unreachable else ""),
        Cell(str(tally.skipped), "cyan" if tally.skipped else ""),
    ]


def summary_cells(rows: Sequence[SummaryRow]) -> list[list[CellValue]]:
    """HOST OK CHANGED FAILED UNREACHABLE SKIPPED, one row per host."""
    return [[row.host, *count_cells(row.tally)] for row in rows]


def summary_document(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    return [{"host": row.host, **asdict(row.tally)} for row in rows]
