"""The process tree under a process, read from /proc, on real processes."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from mcpctl.proctree import Process, descendants, is_running, kill_with_group, read_process, send
from mcpctl.sandbox import services

TREE_COMMANDS = ["sh -c sleep 61 & wait", "sleep 60", "sleep 61"]


def commands(processes: list[Process]) -> list[str]:
    return sorted(process.command for process in processes)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """sh -> (sleep, a new session leader sh -> sleep), like ansible-playbook and its workers."""
    shell = subprocess.Popen(
        ["sh", "-c", "sleep 60 & setsid sh -c 'sleep 61 & wait' & wait"],
        start_new_session=True,
    )
    # Until each has exec'd its final command (setsid first runs as itself).
    wait_for(lambda: commands(descendants(shell.pid)) == TREE_COMMANDS)
    yield shell
    for process in descendants(shell.pid):
        kill_with_group(process)
    os.killpg(shell.pid, signal.SIGKILL)
    shell.wait()


def test_descendants_include_children_in_other_sessions(tree):
    below = descendants(tree.pid)

    assert commands(below) == TREE_COMMANDS
    session_leader = next(process for process in below if process.command.startswith("sh"))
    assert session_leader.group == session_leader.pid != tree.pid


def test_kill_with_group_reaches_what_a_kill_of_the_parent_group_misses(tree):
    below = descendants(tree.pid)
    os.killpg(tree.pid, signal.SIGKILL)
    tree.wait()

    def survivors() -> list[Process]:
        return [process for process in below if is_running(process)]

    # SIGKILL lands a moment later; the other session is never reached.
    wait_for(lambda: commands(survivors()) == ["sh -c sleep 61 & wait", "sleep 61"])

    for process in survivors():
        kill_with_group(process)
    wait_for(lambda: survivors() == [])


def test_a_pid_reused_by_another_process_is_left_alone():
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        current = read_process(sleeper.pid)
        assert current is not None and is_running(current)
        earlier = dataclasses.replace(current, started=current.started - 1)

        assert not is_running(earlier)
        send(earlier, signal.SIGKILL)
        kill_with_group(earlier)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.fixture
def layout(tmp_path):
    import ipaddress

    from mcpctl.sandbox.paths import SandboxLayout

    layout = SandboxLayout(
        tmp_path / "state", tmp_path / "cache", ipaddress.ip_network("10.9.0.0/24")
    )
    layout.services_dir.mkdir(parents=True)
    return layout


def test_sandbox_services_find_and_stop_their_process_through_this_module(layout):
    """The sandbox's pid files hold what read_process reports: one process-tree reader."""
    name = services.SERVICE_NAMES[0]
    sleeper = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True)
    try:
        wait_for(lambda: commands(descendants(sleeper.pid)) == ["sleep 60"])
        process = read_process(sleeper.pid)
        assert process is not None
        services.pidfile(layout, name).write_text(f"{process.pid} {process.started:.2f}\n")
        assert services.running_pid(layout, name) == sleeper.pid
        child = descendants(sleeper.pid)[0]

        services.stop_all(layout)

        assert sleeper.poll() is not None
        # The group's other members get the signal too, a moment later.
        wait_for(lambda: not is_running(child))
        assert not services.pidfile(layout, name).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sleeper.pid, signal.SIGKILL)
        sleeper.wait()


def test_a_pid_file_of_an_earlier_process_with_that_pid_is_not_trusted(layout):
    name = services.SERVICE_NAMES[0]
    current = read_process(os.getpid())
    assert current is not None
    services.pidfile(layout, name).write_text(f"{os.getpid()} {current.started - 5:.2f}\n")
    assert services.running_pid(layout, name) is None
