"""How the roles are put together: one dispatch on `<role>_state`, OS differences in
per-family files, tags set once per import or include rather than on each task."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.roles import REPO, defaults, load

ROLES = sorted(path.name for path in (REPO / "roles").iterdir())
STATEFUL = [role for role in ROLES if f"{role}_state" in defaults(role)]
INCLUDES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks")


def task_files() -> list[Path]:
    return sorted((REPO / "roles").glob("*/tasks/*.yml"))


def tasks_in(tasks: list[dict]) -> list[dict]:
    """Every task of a file, blocks opened."""
    found = []
    for task in tasks or []:
        found.append(task)
        for section in ("block", "rescue", "always"):
            found.extend(tasks_in(task.get(section, [])))
    return found


def test_the_roles_with_a_state_are_the_ones_that_can_remove_themselves():
    assert STATEFUL == ["agent_runtime", "gcs_redis", "nvidia_driver", "python_env", "ray_cluster"]


@pytest.mark.parametrize("role", STATEFUL)
def test_main_dispatches_once_on_the_state(role):
    (dispatch,) = load(f"roles/{role}/tasks/main.yml")
    spec = load(f"roles/{role}/meta/argument_specs.yml")["argument_specs"]["main"]["options"]

    assert dispatch["ansible.builtin.include_tasks"]["file"] == f"{{{{ {role}_state }}}}.yml"
    assert spec[f"{role}_state"]["choices"] == ["present", "absent"]
    assert (REPO / f"roles/{role}/tasks/present.yml").is_file()
    assert (REPO / f"roles/{role}/tasks/absent.yml").is_file()


@pytest.mark.parametrize("path", task_files(), ids=lambda path: f"{path.parts[-3]}/{path.name}")
def test_no_task_tests_the_state_or_the_os_family_itself(path):
    text = path.read_text()

    assert "_state ==" not in text and "_state !=" not in text
    assert "['os_family'] ==" not in text and "['os_family'] !=" not in text


@pytest.mark.parametrize("path", task_files(), ids=lambda path: f"{path.parts[-3]}/{path.name}")
def test_tags_are_set_on_imports_includes_and_blocks_only(path):
    tagged = [
        task["name"]
        for task in tasks_in(load(str(path.relative_to(REPO))))
        if "tags" in task and "block" not in task and not any(key in task for key in INCLUDES)
    ]
    # The OS data is loaded for every tag (it is data the other tasks need, not a concern).
    assert tagged in ([], ["Load OS family data"])


def test_time_sync_has_a_task_file_per_os_family():
    families = {path.stem for path in (REPO / "roles/common/vars").glob("*.yml")}
    timesync = {
        path.stem.removeprefix("timesync-")
        for path in (REPO / "roles/common/tasks").glob("timesync-*.yml")
    }

    assert timesync == families
