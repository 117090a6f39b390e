"""The one PCI GPU count: roles/nvidia_driver/files/nvidia-gpus.sh, which the role's
detect.yml and `mcpctl preflight` both run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mcpctl.preflight import parse_facts, probe_script
from tests.unit.roles import REPO, load

SCRIPT = REPO / "roles/nvidia_driver/files/nvidia-gpus.sh"

# (address, vendor, class, device): what sysfs shows for a small NVIDIA server.
DEVICES = [
    ("0000:00:02.0", "0x8086", "0x030000", "0x3e92"),  # Intel VGA: not NVIDIA
    ("0000:17:00.0", "0x10de", "0x030200", "0x2335"),  # H200 (3D controller)
    ("0000:65:00.0", "0x10de", "0x030000", "0x1b80"),  # GTX 1080, Pascal (VGA)
    ("0000:65:00.1", "0x10de", "0x040300", "0x10f0"),  # its HDMI audio function
    ("0000:b0:00.0", "0x10de", "0x068000", "0x22a3"),  # NVSwitch bridge
    ("0000:b1:00.0", "0x10de", "0x068000", "0x22a3"),  # another one
]


def fake_sysfs(root: Path, devices: list[tuple[str, str, str, str]]) -> Path:
    for address, vendor, device_class, device_id in devices:
        device = root / address
        device.mkdir(parents=True)
        (device / "vendor").write_text(f"{vendor}\n")
        (device / "class").write_text(f"{device_class}\n")
        (device / "device").write_text(f"{device_id}\n")
    return root


def count(devices_dir: Path) -> dict[str, str]:
    result = subprocess.run(
        ["sh", str(SCRIPT), str(devices_dir)], capture_output=True, text=True, check=True
    )
    assert result.stderr == ""
    return parse_facts(result.stdout)


def test_only_nvidia_display_controllers_are_gpus_and_bridges_are_nvswitches(tmp_path):
    assert count(fake_sysfs(tmp_path, DEVICES)) == {
        "pci_devices": "6",
        "nvidia_gpus": "2",
        "nvidia_gpu_ids": "0x2335 0x1b80",
        "nvidia_gpu_ids_pre_turing": "0x1b80",
        "nvswitches": "2",
        "turing_first_device_id": "0x1e00",
    }


def test_a_host_without_pci_reports_none(tmp_path):
    assert count(tmp_path / "missing") == {
        "pci_devices": "0",
        "nvidia_gpus": "0",
        "nvidia_gpu_ids": "",
        "nvidia_gpu_ids_pre_turing": "",
        "nvswitches": "0",
        "turing_first_device_id": "0x1e00",
    }


@pytest.mark.parametrize(
    ("device_id", "pre_turing"),
    [
        ("0x1db4", True),  # V100 (Volta)
        ("0x1dff", True),
        ("0x1e00", False),  # the first Turing id
        ("0x1eb8", False),  # T4
        ("0x20b0", False),  # A100
        ("0x2335", False),  # H200
        ("0x2901", False),  # B200
    ],
)
def test_gpus_before_turing_are_named(tmp_path, device_id, pre_turing):
    facts = count(fake_sysfs(tmp_path, [("0000:17:00.0", "0x10de", "0x030200", device_id)]))

    assert facts["nvidia_gpu_ids_pre_turing"] == (device_id if pre_turing else "")


def test_the_role_runs_the_script_file():
    (probe,) = [
        task
        for task in load("roles/nvidia_driver/tasks/detect.yml")
        if "ansible.builtin.script" in task
    ]

    # The devices directory is passed on, so tests can point detection at a fake tree.
    assert probe["ansible.builtin.script"]["cmd"].split()[0] == SCRIPT.name
    assert "nvidia_driver_pci_devices_dir" in probe["ansible.builtin.script"]["cmd"]
    assert probe["check_mode"] is False


def test_preflight_runs_the_same_script():
    assert SCRIPT.read_text() in probe_script()
