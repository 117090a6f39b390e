"""exec's pieces that need no network: the command line, output lines, outcomes, jump hosts.
SSH itself (strict host keys, timeouts, failures) is tested on the sandbox."""

from __future__ import annotations

import subprocess
import time

import pytest
from fabric import Connection

from mcpctl.remote import KILL_GRACE_SECONDS, NodeResult, _bounded, _LineWriter, connect
from mcpctl.spec import parse_spec


def test_without_a_timeout_the_command_is_sent_as_is():
    assert _bounded("echo 'a b' | wc -c", None) == "echo 'a b' | wc -c"


def test_with_a_timeout_the_node_ends_the_command_itself():
    command = _bounded('echo "it\'s" $((1 + 1)); sleep 5; echo late', 0.5)
    started = time.monotonic()

    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env={"SHELL": "/bin/sh"}
    )

    assert done.returncode == 124
    assert done.stdout == "it's 2\n"
    assert time.monotonic() - started < KILL_GRACE_SECONDS


def test_output_reaches_the_sink_one_whole_line_at_a_time():
    lines = []
    writer = _LineWriter("node1", "out", lambda node, stream, line: lines.append((node, line)))

    writer.write("first li")
    writer.write("ne\r\nsecond\nthi")
    assert lines == [("node1", "first line"), ("node1", "second")]
    writer.end()

    assert lines[-1] == ("node1", "thi")


@pytest.mark.parametrize(
    ("result", "ok", "outcome"),
    [
        (NodeResult("n", exit_code=0), True, "exit 0"),
        (NodeResult("n", exit_code=3), False, "exit 3"),
        (NodeResult("n", exit_code=124, timed_out=True), False, "timed out after 2.5s"),
        (NodeResult("n", error="unreachable: No route to host"), False, "unreachable: No route"),
    ],
)
def test_node_results(result, ok, outcome):
    assert result.ok is ok
    assert result.outcome(2.5).startswith(outcome)


def test_connections_use_the_spec_and_hop_through_the_jump_host(tmp_path):
    spec = parse_spec(
        f"""\
name: lab
ssh: {{user: deploy, key: {tmp_path}/key, port: 2222, jump_host: "admin@[fd00::9]:2200"}}
nodes: [{{name: n1, address: 10.0.0.1, role: head}}]
"""
    )

    connection = connect(spec, spec.nodes[0])

    assert (connection.host, connection.port, connection.user) == ("10.0.0.1", 2222, "deploy")
    assert connection.connect_kwargs["key_filename"] == [f"{tmp_path}/key"]
    assert connection.connect_kwargs["look_for_keys"] is False
    assert isinstance(connection.gateway, Connection)
    assert (connection.gateway.host, connection.gateway.port) == ("fd00::9", 2200)
    assert connection.gateway.user == "admin"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--"], "exec: no command given"),
        ([], "exec: no command given"),
        (["--timeout", "-1", "--", "true"], "--timeout -1: give seconds, or 0 for no limit"),
        (["--limit", "node7", "--", "true"], "'node7' matches no node of cluster 'lab'"),
    ],
)
def test_exec_refuses_bad_input_before_connecting(run_cli, write_spec, valid_spec, args, message):
    result = run_cli("exec", "-f", str(write_spec(valid_spec)), *args)

    assert result.code == 2
    assert message in result.err
