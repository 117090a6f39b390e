"""What ansible-runner makes of a PlaybookRun: the ansible-playbook command line and its
environment, built by ansible-runner's own RunnerConfig (nothing is run)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest
from ansible_runner.config.runner import RunnerConfig

from mcpctl.runner import (
    CANCEL_CHECK_SECONDS,
    KEEP_RUNS,
    PlaybookRun,
    _runner_arguments,
    _write_runner_settings,
)

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path: Path) -> PlaybookRun:
    inventory = tmp_path / "inventory" / "hosts.yml"
    inventory.parent.mkdir()
    inventory.write_text("all: {}\n")
    return PlaybookRun(
        name="deploy",
        playbook=PROJECT / "tests" / "fixtures" / "playbooks" / "deploy.yml",
        inventory=inventory,
        project_dir=PROJECT,
        runs_dir=tmp_path / "runs" / "lab",
        limit="mcp_workers",
        tags="ray",
        skip_tags="nvidia",
        check=True,
        diff=True,
        extra_vars={"node": "w1", "note": "it's"},
        verbosity=2,
    )


def prepared(run: PlaybookRun) -> RunnerConfig:
    _write_runner_settings(run.runs_dir)
    config = RunnerConfig(**_runner_arguments(run, "ident-1"))
    config.prepare()
    return config


def test_the_command_line_carries_every_option(run):
    command = prepared(run).command

    assert command[0] == "ansible-playbook"
    assert command[-1] == str(run.playbook)
    options = command[1:-1]
    pairs = set(itertools.pairwise(options))
    assert {
        ("-i", str(run.inventory)),
        ("--limit", "mcp_workers"),
        ("--tags", "ray"),
        ("--skip-tags", "nvidia"),
    } <= pairs
    assert {"--check", "--diff", "-vv"} <= set(options)
    assert json.loads(options[options.index("-e") + 1]) == {"node": "w1", "note": "it's"}


def test_the_environment_keeps_the_projects_settings(run):
    env = prepared(run).env

    assert env["ANSIBLE_CONFIG"] == str(PROJECT / "ansible.cfg")
    assert env["ANSIBLE_ROLES_PATH"] == str(PROJECT / "roles")
    # Strict host keys, and no fact cache kept across runs.
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
    assert "ANSIBLE_CACHE_PLUGIN_CONNECTION" not in env
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)


def test_cancel_is_checked_often_and_artifacts_rotate(run):
    config = prepared(run)

    assert config.pexpect_timeout == CANCEL_CHECK_SECONDS
    assert config.rotate_artifacts == KEEP_RUNS
    assert Path(config.artifact_dir) == run.runs_dir / "artifacts" / "ident-1"


def test_extra_vars_are_not_left_on_disk_for_later_runs(run):
    prepared(run)

    assert sorted(path.name for path in (run.runs_dir / "env").iterdir()) == ["settings"]
