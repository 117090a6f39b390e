"""The processes under this one, read from /proc (Linux).

A stopped playbook must leave no process behind, and killing ansible-playbook's process group
is not enough: each of its workers calls setsid() and leads a session of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    group: int
    # Clock ticks after boot when it started: with the pid, this tells the process apart
    # from a later one that reuses its pid.
    started: int
    command: str


def read_process(pid: int) -> Process | None:
    """The process `pid`, or None if there is none (or only its zombie)."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        command = (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The name in brackets may hold spaces and brackets: the fields start after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return Process(
        pid=pid,
        parent=int(fields[1]),
        group=int(fields[2]),
        started=int(fields[19]),
        command=command.strip(),
    )


def descendants(pid: int) -> list[Process]:
    """Every live process below `pid`, parents before their children."""
    processes = [
        process
        for entry in _PROC.iterdir()
        if entry.name.isdigit() and (process := read_process(int(entry.name))) is not None
    ]
    children: dict[int, list[Process]] = {}
    for process in processes:
        children.setdefault(process.parent, []).append(process)
    found: list[Process] = []
    frontier = [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found.extend(below)
        frontier.extend(process.pid for process in below)
    return found


def is_running(process: Process) -> bool:
    current = read_process(process.pid)
    return current is not None and current.started == process.started


def send(process: Process, number: signal.Signals) -> None:
    """Signal `process` if it still runs (and is still the same process)."""
    if is_running(process):
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, number)


def kill_with_group(process: Process) -> None:
    """SIGKILL `process`, and its whole process group when it leads one (ssh children...)."""
    if not is_running(process):
        return
    with contextlib.suppress(ProcessLookupError):
        if process.group == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)
