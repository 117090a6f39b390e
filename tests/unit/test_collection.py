"""galaxy.yml: the roles and playbooks build and install as the collection mcp.cluster, and
its playbooks load both from the checkout and from the installed collection."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.roles import REPO, load

BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(path.name for path in (REPO / "playbooks").glob("*.yml"))


@dataclass(frozen=True)
class Installed:
    tarball: Path
    collections: Path  # the collections path it is installed in

    @property
    def root(self) -> Path:
        return self.collections / "ansible_collections/mcp/cluster"


def tool(name: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    if env is not None:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("ANSIBLE_") and key != "PYTHONPATH"
        }
        env = {**inherited, **env}
    result = subprocess.run(
        [str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, f"{name} {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("collection")
    tool("ansible-galaxy", "collection", "build", "--output-path", str(work), str(REPO), cwd=work)
    (tarball,) = work.glob("mcp-cluster-*.tar.gz")
    installed = Installed(tarball, work / "collections")
    # In the user's setting too: ansible-galaxy skips a collection it finds installed in any
    # configured path (Molecule and ansible-lint put this one in ~/.ansible/collections).
    tool(
        "ansible-galaxy", "collection", "install", "-p", str(installed.collections), str(tarball),
        cwd=work, env=outside_the_checkout(installed, work),
    )  # fmt: skip
    return installed


def outside_the_checkout(installed: Installed, home: Path) -> dict[str, str]:
    """A user's setting with only the installed collection: no checkout ansible.cfg, no roles
    path, and none of the calling environment's ANSIBLE_* settings or Python path."""
    config = home / "ansible.cfg"
    config.write_text("[defaults]\n")
    return {
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_COLLECTIONS_PATH": str(installed.collections),
        "ANSIBLE_ROLES_PATH": "",
        "HOME": str(home),
    }


def tool_outside_the_checkout(installed: Installed, *args: str, cwd: Path) -> str:
    env = outside_the_checkout(installed, cwd)
    listing = tool("ansible-galaxy", "collection", "list", "mcp.cluster", cwd=cwd, env=env)
    assert str(installed.collections) in listing, listing
    return tool(*args, cwd=cwd, env=env)


def test_the_version_is_the_python_projects():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    assert load("galaxy.yml")["version"] == project["version"]


def test_the_tarball_holds_roles_playbooks_and_python_sources_only(installed):
    with tarfile.open(installed.tarball) as archive:
        names = {member.name for member in archive.getmembers()}

    assert {
        "roles/common/defaults/main.yml",
        "roles/nvidia_driver/files/nvidia-gpus.sh",
        "playbooks/deploy.yml",
        "meta/runtime.yml",
        # python_env builds this project's wheel from the collection's root.
        "pyproject.toml",
        "mcpctl/preflight.py",
        "agent_runtime/__init__.py",
    } <= names
    left_out = ("tests", "molecule", "inventory", "bench", "plugins", ".venv", ".git")
    assert not [name for name in names if name.split("/")[0] in left_out]
    assert not [name for name in names if "__pycache__" in name]


def test_every_playbook_loads_from_the_checkout():
    tool(
        "ansible-playbook", "--syntax-check", *(f"playbooks/{name}" for name in PLAYBOOKS), cwd=REPO
    )


def test_every_playbook_loads_from_the_installed_collection(installed, tmp_path):
    # By FQCN where the name allows one (a dash does not), by path otherwise.
    references = [
        f"mcp.cluster.{Path(name).stem}"
        if "-" not in name
        else str(installed.root / "playbooks" / name)
        for name in PLAYBOOKS
    ]

    output = tool_outside_the_checkout(
        installed, "ansible-playbook", "--syntax-check", *references, cwd=tmp_path
    )

    assert output.count(f"playbook: {installed.root}/playbooks/") == len(PLAYBOOKS)


def test_a_role_of_the_collection_runs_in_check_mode(installed, tmp_path):
    playbook = tmp_path / "detect.yml"
    playbook.write_text(
        """\
- name: Detect GPUs with the installed collection's role
  hosts: all
  gather_facts: false
  tasks:
    - name: Detect
      ansible.builtin.include_role:
        name: mcp.cluster.nvidia_driver
        tasks_from: detect.yml
    - name: Report
      ansible.builtin.debug:
        msg: "gpus={{ nvidia_driver_gpu_count }} of {{ nvidia_driver_pci_counts.pci_devices }}"
"""
    )

    output = tool_outside_the_checkout(
        installed,
        "ansible-playbook",
        *("-i", "localhost,", "-c", "local", "--check"),
        *("-e", f"ansible_python_interpreter={sys.executable}"),
        str(playbook),
        cwd=tmp_path,
    )

    assert "mcp.cluster.nvidia_driver : Count the NVIDIA GPUs and NVSwitches on PCI" in output
    assert "gpus=" in output and "failed=0" in output
