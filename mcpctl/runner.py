"""Run one playbook through ansible-runner: live progress while it runs, a per-host table after.

ansible-runner runs in a worker thread and hands its events to the main thread through a
queue; the main thread folds them into a `RunProgress` and draws it. SIGINT/SIGTERM stop
ansible-playbook (see `_PlaybookStopper`), and the summary shows the counts so far.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import ansible_runner

from mcpctl.console import ProgressDisplay, display_for
from mcpctl.errors import McpError
from mcpctl.proctree import Process, descendants, kill_with_group, send
from mcpctl.progress import (
    SUMMARY_COLUMNS,
    Notice,
    RunProgress,
    live_view,
    summary_cells,
    summary_document,
)
from mcpctl.tables import print_table

KEEP_RUNS = 10
# ansible-runner looks at the cancel request once per wait for output (5 s by default).
CANCEL_CHECK_SECONDS = 0.5
# How long ansible-playbook gets to stop its workers after SIGINT before everything is killed.
STOP_GRACE_SECONDS = 10.0
REDRAW_SECONDS = 0.25
_RUN_ENDED = object()


@dataclass(frozen=True)
class PlaybookRun:
    """What to run: `name` is the mcpctl command (deploy, scale...), `hosts` the spec's node
    names in order (for the output), `runs_dir` where the run's artifacts go."""

    name: str
    playbook: Path
    inventory: Path
    project_dir: Path
    runs_dir: Path
    hosts: tuple[str, ...] = ()
    limit: str | None = None
    tags: str | None = None
    skip_tags: str | None = None
    check: bool = False
    diff: bool = False
    extra_vars: Mapping[str, str] = field(default_factory=dict)
    verbosity: int = 0


@dataclass(frozen=True)
class RunOutcome:
    name: str
    progress: RunProgress
    status: str  # ansible-runner's: successful, failed, canceled, timeout
    artifact_dir: Path
    stopped_by: int | None  # the signal that stopped the run, if one did

    @property
    def succeeded(self) -> bool:
        progress = self.progress
        return (
            self.status == "successful"
            and not progress.failed_hosts()
            and not progress.unreachable_hosts()
        )

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return 0 if self.succeeded else 1


@dataclass
class _Interruption:
    signal: int | None = None


def run_playbook(run: PlaybookRun, stream: TextIO | None = None) -> RunOutcome:
    """Run the playbook to its end (or until SIGINT/SIGTERM), drawing progress on `stream`."""
    out = stream or sys.stdout
    ident = f"{time.strftime('%Y%m%d-%H%M%S')}-{run.name}-{os.getpid()}"
    artifact_dir = run.runs_dir / "artifacts" / ident
    _write_runner_settings(run.runs_dir)
    out.write(
        f"{run.name}: {run.playbook.name} on {_hosts_text(run)}"
        f"{' (check mode)' if run.check else ''}; log in {artifact_dir}\n"
    )
    out.flush()

    progress = RunProgress(run.hosts)
    display = display_for(out, verbose=run.verbosity > 0)
    events: queue.Queue[Any] = queue.Queue()
    cancel = threading.Event()
    ended: list[Any] = []

    def keep_event(event: dict[str, Any]) -> bool:
        events.put(event)
        return True  # and let ansible-runner store it under job_events/

    def work() -> None:
        try:
            ended.append(
                ansible_runner.run(
                    **_runner_arguments(run, ident),
                    event_handler=keep_event,
                    cancel_callback=cancel.is_set,
                )
            )
        # Reported by the main thread, which owns the terminal. SystemExit included:
        # ansible-runner exits on some configuration errors.
        except BaseException as error:
            ended.append(error)
        finally:
            events.put(_RUN_ENDED)

    stopper = _PlaybookStopper(cancel)
    with _signals_interrupt() as interruption:
        worker = threading.Thread(target=work, name="ansible-runner", daemon=True)
        worker.start()
        _follow(events, progress, display, run.name, interruption, stopper)
        worker.join()
    if interruption.signal is not None:
        stopper.kill_leftovers()
    display.close()

    result = ended[0]
    if isinstance(result, BaseException):
        raise McpError(f"{run.name}: ansible-runner could not run the playbook: {result!r}")
    return RunOutcome(run.name, progress, result.status, artifact_dir, interruption.signal)


def _hosts_text(run: PlaybookRun) -> str:
    count = f"{len(run.hosts)} host{'' if len(run.hosts) == 1 else 's'}"
    return f"{count} limited to '{run.limit}'" if run.limit else count


def _runner_arguments(run: PlaybookRun, ident: str) -> dict[str, Any]:
    flags = [flag for flag, wanted in (("--check", run.check), ("--diff", run.diff)) if wanted]
    return {
        "private_data_dir": str(run.runs_dir),
        "project_dir": str(run.project_dir),
        "playbook": str(run.playbook),
        "inventory": str(run.inventory),
        "ident": ident,
        "rotate_artifacts": KEEP_RUNS,
        "limit": run.limit,
        "tags": run.tags,
        "skip_tags": run.skip_tags,
        "cmdline": " ".join(flags) or None,
        "extravars": dict(run.extra_vars) or None,
        "verbosity": run.verbosity or None,
        "roles_path": str(run.project_dir / "roles"),
        "envvars": _environment(run),
        # Otherwise ansible-runner keeps facts across runs in its artifacts, which ansible.cfg
        # avoids on purpose: a run gathers each host's facts once, fresh.
        "fact_cache_type": None,
        # Extra vars would otherwise be written to env/ and, if that file exists, reused by
        # later runs instead of theirs.
        "suppress_env_files": True,
        "quiet": True,
    }


def _environment(run: PlaybookRun) -> dict[str, str]:
    return {
        "ANSIBLE_CONFIG": str(run.project_dir / "ansible.cfg"),
        # ansible-runner sets this to False unless told otherwise; ansible's ssh plugin would
        # then put StrictHostKeyChecking=no before the inventory's =yes, and ssh keeps the first.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        # ansible-playbook from the environment mcpctl runs in, whether or not it is on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _write_runner_settings(runs_dir: Path) -> None:
    # ansible-runner drops its settings= argument when env/settings is missing: use the file.
    settings = runs_dir / "env" / "settings"
    text = json.dumps({"pexpect_timeout": CANCEL_CHECK_SECONDS}) + "\n"
    settings.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not settings.exists() or settings.read_text() != text:
        settings.write_text(text)


@contextmanager
def _signals_interrupt() -> Iterator[_Interruption]:
    """SIGINT and SIGTERM only record themselves; the main loop then stops the playbook."""
    interruption = _Interruption()

    def record(signum: int, frame: FrameType | None) -> None:
        interruption.signal = interruption.signal or signum

    previous = {number: signal.signal(number, record) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interruption
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _PlaybookStopper:
    """Stops ansible-playbook as Ctrl-C in its own terminal would: SIGINT to its main process,
    which passes it on to its workers and exits. ansible-runner's own cancel only kills the
    main process group, which would orphan the workers (each leads its own session), so it
    is the fallback: what still runs STOP_GRACE_SECONDS later is killed, group and all."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._deadline: float | None = None
        self._seen: list[Process] = []

    def start(self) -> None:
        me = os.getpid()
        self._seen = descendants(me)
        playbooks = [
            process
            for process in self._seen
            if process.parent == me and "ansible-playbook" in process.command
        ]
        if not playbooks:  # not started yet: ansible-runner's kill has nothing to miss
            self._cancel.set()
            return
        for process in playbooks:
            send(process, signal.SIGINT)
        self._deadline = time.monotonic() + STOP_GRACE_SECONDS

    def poll(self) -> None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            self._deadline = None
            self.kill_leftovers()
            self._cancel.set()

    def kill_leftovers(self) -> None:
        for process in [*self._seen, *descendants(os.getpid())]:
            kill_with_group(process)


def _follow(
    events: queue.Queue[Any],
    progress: RunProgress,
    display: ProgressDisplay,
    title: str,
    interruption: _Interruption,
    stopper: _PlaybookStopper,
) -> None:
    stopping = False
    while True:
        batch = _next_events(events)
        if interruption.signal and not stopping:
            display.show([Notice("problem", "interrupted: stopping the playbook…")])
            stopper.start()
            stopping = True
        if stopping:
            stopper.poll()
        for event in batch:
            if event is _RUN_ENDED:
                return
            display.show(progress.apply(event))
        if display.live:
            display.redraw(live_view(progress, title, datetime.now(UTC), display.height()))


def _next_events(events: queue.Queue[Any]) -> list[Any]:
    """Everything queued, waiting at most one redraw interval for the first."""
    try:
        batch = [events.get(timeout=REDRAW_SECONDS)]
    except queue.Empty:
        return []
    while True:
        try:
            batch.append(events.get_nowait())
        except queue.Empty:
            return batch


def print_summary(outcome: RunOutcome, stream: TextIO | None = None) -> None:
    """The per-host table, one line with the verdict, and where the full log is."""
    out = stream or sys.stdout
    rows = outcome.progress.host_rows()
    if rows:
        out.write("\n")
        print_table(SUMMARY_COLUMNS, summary_cells(rows), out)
    tail = outcome.progress.output_tail() if _failed_before_any_host(outcome) else []
    if tail:
        out.write("ansible-playbook said:\n" + "".join(f"  {line}\n" for line in tail))
    out.write(f"{outcome.name}: {verdict(outcome)}\n")
    out.write(f"log: {outcome.artifact_dir / 'stdout'}\n")
    out.flush()


def print_summary_json(outcome: RunOutcome, stream: TextIO | None = None) -> None:
    """The same summary as one JSON document, for scripts."""
    out = stream or sys.stdout
    progress = outcome.progress
    document = {
        "command": outcome.name,
        "ok": outcome.succeeded and outcome.stopped_by is None,
        "status": outcome.status,
        "verdict": verdict(outcome),
        "hosts": summary_document(progress.host_rows()),
        "failed": progress.failed_hosts(),
        "unreachable": progress.unreachable_hosts(),
        "output_tail": progress.output_tail() if _failed_before_any_host(outcome) else [],
        "log": str(outcome.artifact_dir / "stdout"),
    }
    out.write(json.dumps(document, indent=2) + "\n")
    out.flush()


def verdict(outcome: RunOutcome) -> str:
    progress = outcome.progress
    failed, unreachable = progress.failed_hosts(), progress.unreachable_hosts()
    if outcome.stopped_by is not None:
        return "interrupted: the playbook was stopped; the counts are those so far"
    if outcome.succeeded:
        count = len(progress.host_rows())
        return f"ok on {count} host{'' if count == 1 else 's'}"
    parts = [f"failed on {', '.join(failed)}" if failed else ""]
    parts.append(f"unreachable: {', '.join(unreachable)}" if unreachable else "")
    return "; ".join(part for part in parts if part) or f"ansible-playbook {outcome.status}"


def _failed_before_any_host(outcome: RunOutcome) -> bool:
    """Ended badly with no host to blame: what ansible printed says why."""
    progress = outcome.progress
    return (
        outcome.stopped_by is None
        and not outcome.succeeded
        and not progress.failed_hosts()
        and not progress.unreachable_hosts()
    )
