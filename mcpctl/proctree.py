"""The processes under this one, and how to end them, through psutil.

A stopped playbook must leave no process behind, and killing ansible-playbook's process group
is not enough: each of its workers calls setsid() and leads a session of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ProcessLookupError)


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    group: int
    # When it started: with the pid, this tells the process apart from a later one that
    # reuses its pid.
    started: float
    command: str


def _snapshot(process: psutil.Process) -> Process | None:
    try:
        with process.oneshot():
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return None
            return Process(
                pid=process.pid,
                parent=process.ppid(),
                group=os.getpgid(process.pid),
                started=process.create_time(),
                command=" ".join(process.cmdline()),
            )
    except _GONE:
        return None


def read_process(pid: int) -> Process | None:
    """The process `pid`, or None if there is none (or only its zombie)."""
    try:
        return _snapshot(psutil.Process(pid))
    except _GONE:
        return None


def descendants(pid: int) -> list[Process]:
    """Every live process below `pid`, parents before their children."""
    try:
        below = psutil.Process(pid).children(recursive=True)
    except _GONE:
        return []
    return [process for child in below if (process := _snapshot(child)) is not None]


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
    _signal_with_group(process, signal.SIGKILL)


def terminate_with_group(process: Process, grace_s: float = 5.0) -> None:
    """SIGTERM `process` (and its group when it leads one); SIGKILL what is left after
    `grace_s`. Our own children are reaped so that they do not linger as zombies."""
    _signal_with_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(process.pid)
        if not is_running(process):
            return
        time.sleep(0.05)
    kill_with_group(process)
    _reap(process.pid)


def _signal_with_group(process: Process, number: signal.Signals) -> None:
    if not is_running(process):
        return
    with contextlib.suppress(ProcessLookupError):
        if process.group == process.pid:
            os.killpg(process.pid, number)
        else:
            os.kill(process.pid, number)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
