"""deploy/scale/remove-node/upgrade/reset/health: flags and spec become one PlaybookRun, or
bad input ends the command (exit 2) before anything runs. The run itself is stubbed here;
tests/integration/test_runner.py runs real playbooks."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mcpctl import runner
from mcpctl.commands import lifecycle
from mcpctl.commands.lifecycle import parse_extra_vars
from mcpctl.progress import RunProgress
from mcpctl.runner import PlaybookRun, RunOutcome

COMMANDS = ("deploy", "scale", "remove-node", "upgrade", "reset", "health")


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    directory = tmp_path / "playbooks"
    directory.mkdir()
    for name in COMMANDS:
        (directory / f"{name}.yml").write_text("---\n")
    return directory


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[PlaybookRun]:
    """The runs the handlers ask for; each 'ends' with the exit code in `runs.exit_code`."""
    started: list[PlaybookRun] = []
    monkeypatch.setattr(lifecycle, "inventory_dir", lambda spec_file, name: tmp_path / "inv" / name)
    monkeypatch.setattr(lifecycle, "runs_dir", lambda name: tmp_path / "runs" / name)

    def fake_run(run: PlaybookRun) -> SimpleNamespace:
        started.append(run)
        return SimpleNamespace(exit_code=0)

    monkeypatch.setattr(runner, "run_playbook", lambda run, stream=None: fake_run(run))
    monkeypatch.setattr(runner, "print_summary", lambda outcome: None)
    return started


@pytest.fixture
def spec(write_spec, valid_spec) -> Path:
    return write_spec(valid_spec)


def test_deploy_turns_flags_into_one_playbook_run(run_cli, spec, playbooks, runs, tmp_path):
    result = run_cli(
        "deploy",
        *("-f", str(spec), "--playbook-dir", str(playbooks)),
        *("--limit", "workers", "--tags", "ray,python", "--skip-tags", "nvidia"),
        *("--check", "--diff", "-e", "ray_debug=1", "-e", "note=a=b", "-vv"),
    )

    assert result.code == 0, result.err
    (run,) = runs
    assert run.name == "deploy"
    assert run.playbook == playbooks / "deploy.yml"
    assert run.inventory == tmp_path / "inv" / "lab" / "hosts.yml"
    assert run.inventory.is_file()
    assert run.runs_dir == tmp_path / "runs" / "lab"
    assert run.hosts == ("node1", "node2", "node3")
    assert run.limit == "mcp_workers"
    assert (run.tags, run.skip_tags) == ("ray,python", "nvidia")
    assert run.check and run.diff
    assert run.extra_vars == {"ray_debug": "1", "note": "a=b"}
    assert run.verbosity == 2


@pytest.mark.parametrize("command", ["deploy", "scale", "upgrade", "health"])
def test_each_command_runs_its_own_playbook(run_cli, spec, playbooks, runs, command):
    assert run_cli(command, "-f", str(spec), "--playbook-dir", str(playbooks)).code == 0
    assert [run.playbook.name for run in runs] == [f"{command}.yml"]


def test_the_playbook_dir_can_come_from_the_environment(
    run_cli, spec, playbooks, runs, monkeypatch
):
    monkeypatch.setenv("MCP_PLAYBOOK_DIR", str(playbooks))

    assert run_cli("health", "-f", str(spec)).code == 0
    assert runs[0].playbook == playbooks / "health.yml"


def test_the_exit_code_is_the_runs(run_cli, spec, playbooks, monkeypatch):
    monkeypatch.setattr(lifecycle, "inventory_dir", lambda spec_file, name: spec.parent / "inv")
    monkeypatch.setattr(
        runner, "run_playbook", lambda run, stream=None: SimpleNamespace(exit_code=1)
    )
    monkeypatch.setattr(runner, "print_summary", lambda outcome: None)

    assert run_cli("deploy", "-f", str(spec), "--playbook-dir", str(playbooks)).code == 1


def test_a_bad_spec_exits_2_and_runs_nothing(run_cli, write_spec, valid_spec, playbooks, runs):
    spec = write_spec(valid_spec.replace("10.0.0.2", "10.0.0.1"))

    result = run_cli("deploy", "-f", str(spec), "--playbook-dir", str(playbooks))

    assert result.code == 2
    assert "duplicate address 10.0.0.1" in result.err
    assert runs == []


@pytest.mark.parametrize("value", ["novalue", "=x", "1abc=x", "a-b=x", "a b=x"])
def test_a_bad_extra_var_exits_2_and_runs_nothing(run_cli, spec, playbooks, runs, value):
    result = run_cli("deploy", "-f", str(spec), "--playbook-dir", str(playbooks), "-e", value)

    assert result.code == 2
    assert f"-e {value!r}: expected KEY=VALUE" in result.err
    assert runs == []


def test_extra_vars_stay_strings_and_the_last_one_wins():
    assert parse_extra_vars(["a=1", "b=", "a=two", "c=x=y"]) == {"a": "two", "b": "", "c": "x=y"}


def test_a_missing_playbook_is_named(run_cli, spec, tmp_path, runs):
    empty = tmp_path / "empty"
    empty.mkdir()

    result = run_cli("scale", "-f", str(spec), "--playbook-dir", str(empty))

    assert result.code == 1
    assert f"{empty / 'scale.yml'}: no such playbook" in result.err
    assert runs == []


def test_a_missing_playbook_dir_is_named(run_cli, spec, tmp_path, runs, monkeypatch):
    monkeypatch.setenv("MCP_PLAYBOOK_DIR", str(tmp_path / "nowhere"))

    result = run_cli("deploy", "-f", str(spec))

    assert result.code == 1
    assert "nowhere: no such directory (from MCP_PLAYBOOK_DIR)" in result.err


def test_remove_node_passes_the_node_as_an_extra_var(run_cli, spec, playbooks, runs):
    result = run_cli(
        "remove-node", "-f", str(spec), "--playbook-dir", str(playbooks), "--node", "node3"
    )

    assert result.code == 0, result.err
    assert runs[0].playbook.name == "remove-node.yml"
    assert runs[0].extra_vars == {"node": "node3"}


def test_remove_node_needs_node(run_cli, spec, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli("remove-node", "-f", str(spec))

    assert exit_.value.code == 2
    assert "--node" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ("node9", "--node 'node9': cluster 'lab' has no such node (it has node1, node2, node3)"),
        ("node1", "--node 'node1' is the head node"),
    ],
)
def test_remove_node_refuses_what_it_cannot_remove(run_cli, spec, playbooks, runs, node, message):
    result = run_cli(
        "remove-node", "-f", str(spec), "--playbook-dir", str(playbooks), "--node", node
    )

    assert result.code == 2
    assert message in result.err
    assert runs == []


class _NotATerminal:
    def isatty(self) -> bool:
        return False


class _Terminal:
    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        if self.answer is None:
            return ""
        return self.answer + "\n"


def test_reset_without_a_terminal_or_yes_refuses(run_cli, spec, playbooks, runs, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _NotATerminal())

    result = run_cli("reset", "-f", str(spec), "--playbook-dir", str(playbooks))

    assert result.code == 2
    assert "stdin is not a terminal — pass --yes" in result.err
    assert runs == []


@pytest.mark.parametrize("flag", ["--yes", "--check"])
def test_reset_with_yes_or_in_check_mode_does_not_ask(
    run_cli, spec, playbooks, runs, monkeypatch, flag
):
    monkeypatch.setattr(sys, "stdin", _NotATerminal())

    result = run_cli("reset", "-f", str(spec), "--playbook-dir", str(playbooks), flag)

    assert result.code == 0, result.err
    assert [run.playbook.name for run in runs] == ["reset.yml"]


def test_reset_runs_once_the_cluster_name_is_typed(run_cli, spec, playbooks, runs, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Terminal("lab"))

    result = run_cli("reset", "-f", str(spec), "--playbook-dir", str(playbooks))

    assert result.code == 0, result.err
    assert "reset tears down what deploy set up on all 3 nodes of cluster 'lab'" in result.out
    assert len(runs) == 1


@pytest.mark.parametrize("answer", ["y", "", None])
def test_reset_without_the_cluster_name_runs_nothing(
    run_cli, spec, playbooks, runs, monkeypatch, answer
):
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))

    result = run_cli("reset", "-f", str(spec), "--playbook-dir", str(playbooks))

    assert result.code == 1
    assert "reset not confirmed: nothing was run" in result.err
    assert runs == []


def _outcome(status: str, stopped_by: int | None = None, failed: bool = False) -> RunOutcome:
    progress = RunProgress()
    progress.apply({"event": "runner_on_ok", "event_data": {"host": "a", "res": {}}})
    if failed:
        progress.apply({"event": "runner_on_failed", "event_data": {"host": "b", "res": {}}})
    return RunOutcome("deploy", progress, status, Path("/runs/x"), stopped_by)


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (_outcome("successful"), 0),
        (_outcome("failed", failed=True), 1),
        (_outcome("failed"), 1),  # e.g. a syntax error: no host failed, ansible did
        (_outcome("failed", stopped_by=2), 130),
        (_outcome("canceled", stopped_by=15), 143),
    ],
)
def test_run_outcome_exit_codes(outcome, code):
    assert outcome.exit_code == code


def _health_outcome() -> RunOutcome:
    # health.yml on 3 nodes, then its summary play on the controller (localhost).
    progress = RunProgress(("node1", "node2", "node3"))
    for host in ("node1", "node2", "node3", "localhost"):
        progress.apply({"event": "runner_on_ok", "event_data": {"host": host, "res": {}}})
    stats = {"ok": {"node1": 1, "node2": 1, "node3": 1, "localhost": 1}}
    progress.apply({"event": "playbook_on_stats", "event_data": stats})
    return RunOutcome("health", progress, "successful", Path("/runs/x"), None)


def test_the_summary_counts_the_clusters_hosts_not_the_controller():
    out = io.StringIO()

    runner.print_summary(_health_outcome(), out)

    assert out.getvalue() == (
        "\n"
        "HOST   OK  CHANGED  FAILED  UNREACHABLE  SKIPPED\n"
        "node1   1        0       0            0        0\n"
        "node2   1        0       0            0        0\n"
        "node3   1        0       0            0        0\n"
        "health: ok on 3 hosts\n"
        "log: /runs/x/stdout\n"
    )


def test_the_summary_as_json():
    out = io.StringIO()

    runner.print_summary_json(_health_outcome(), out)

    document = json.loads(out.getvalue())
    assert document["ok"] is True and document["verdict"] == "ok on 3 hosts"
    assert [host["host"] for host in document["hosts"]] == ["node1", "node2", "node3"]
    assert document["hosts"][0] == {"host": "node1", "ok": 1, "changed": 0, "failed": 0,
                                    "unreachable": 0, "skipped": 0}  # fmt: skip


def test_output_json_prints_only_json_on_stdout(run_cli, spec, playbooks, monkeypatch):
    monkeypatch.setattr(lifecycle, "inventory_dir", lambda spec_file, name: spec.parent / "inv")
    streams = []

    def fake_run(run: PlaybookRun, stream=None) -> RunOutcome:
        streams.append(stream)
        return _health_outcome()

    monkeypatch.setattr(runner, "run_playbook", fake_run)

    result = run_cli("health", "-f", str(spec), "--playbook-dir", str(playbooks), "-o", "json")

    assert result.code == 0
    assert json.loads(result.out)["verdict"] == "ok on 3 hosts"
    assert streams == [sys.stderr]
