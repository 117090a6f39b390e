"""The one PCI GPU count: roles/nvidia_driver/files/nvidia-gpus.sh, which the role's
detect.yml and `mcpctl preflight` both run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mcpctl.preflight import parse_facts, probe_script
from tests.unit.roles import REPO, load

SCRIPT = REPO / "roles/nvidia_driver/files/nvidia-gpus.sh"

# (address, vendor, class): what sysfs shows for a typical 2-GPU NVIDIA server.
DEVICES = [
    ("0000:00:02.0", "0x8086", "0x030000"),  # Intel VGA: not NVIDIA
    ("0000:17:00.0", "0x10de", "0x030200"),  # data-centre GPU (3D controller)
    ("0000:65:00.0", "0x10de", "0x030000"),  # workstation GPU (VGA)
    ("0000:65:00.1", "0x10de", "0x040300"),  # its HDMI audio function
    ("0000:b0:00.0", "0x10de", "0x068000"),  # NVSwitch bridge
]


def fake_sysfs(root: Path, devices: list[tuple[str, str, str]]) -> Path:
    for address, vendor, device_class in devices:
        device = root / address
        device.mkdir(parents=True)
        (device / "vendor").write_text(f"{vendor}\n")
        (device / "class").write_text(f"{device_class}\n")
    return root


def count(devices_dir: Path) -> dict[str, str]:
    result = subprocess.run(
        ["sh", str(SCRIPT), str(devices_dir)], capture_output=True, text=True, check=True
    )
    assert result.stderr == ""
    return parse_facts(result.stdout)


def test_only_nvidia_display_controllers_are_gpus(tmp_path):
    assert count(fake_sysfs(tmp_path, DEVICES)) == {"pci_devices": "5", "nvidia_gpus": "2"}


def test_a_host_without_pci_reports_none(tmp_path):
    assert count(tmp_path / "missing") == {"pci_devices": "0", "nvidia_gpus": "0"}


def test_the_role_runs_the_script_file():
    (probe,) = [
        task
        for task in load("roles/nvidia_driver/tasks/detect.yml")
        if "ansible.builtin.script" in task
    ]

    assert probe["ansible.builtin.script"]["cmd"] == SCRIPT.name
    assert probe["check_mode"] is False


def test_preflight_runs_the_same_script():
    assert SCRIPT.read_text() in probe_script()
