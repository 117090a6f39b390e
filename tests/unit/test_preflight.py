"""preflight's checks from the facts a node reports, and its table and JSON."""

from __future__ import annotations

import io
import json
import subprocess

import pytest

from mcpctl.preflight import (
    Check,
    NodeReport,
    evaluate,
    parse_facts,
    print_report,
    probe_script,
    render_json,
    requirements,
)
from mcpctl.spec import NodeSpec
from tests.unit.roles import REPO, defaults

GPU_SCRIPT = REPO / "roles/nvidia_driver/files/nvidia-gpus.sh"

GIB_IN_KIB = 1024 * 1024
GOOD_FACTS = {
    "os_id": "debian",
    "os_version": "12",
    "os_like": "",
    "os_name": "Debian GNU/Linux 12 (bookworm)",
    "architecture": "x86_64",
    "disk_free_kib": str(50 * GIB_IN_KIB),
    "memory_kib": str(16 * GIB_IN_KIB),
    "python3": "3.11.2",
    "nvidia_gpus": "0",
    "sudo": "yes",
}


def node(gpu: object = "auto") -> NodeSpec:
    return NodeSpec(name="n1", address="10.0.0.1", gpu=gpu)


def check(name: str, facts: dict[str, str], gpu: object = "auto") -> Check:
    return next(check for check in evaluate(node(gpu), facts) if check.name == name)


def test_a_good_node_passes_every_check():
    checks = evaluate(node(), GOOD_FACTS)

    assert [(check.name, check.status, check.value) for check in checks] == [
        ("ssh", "ok", "ok"),
        ("os", "ok", "debian 12"),
        ("arch", "ok", "x86_64"),
        ("disk", "ok", "50.0 GiB"),
        ("memory", "ok", "16.0 GiB"),
        ("python3", "ok", "3.11.2"),
        ("sudo", "ok", "yes"),
        ("gpus", "ok", "0 (gpu: auto)"),
    ]


@pytest.mark.parametrize(
    ("os_id", "version", "like", "status"),
    [
        ("debian", "12", "", "ok"),
        ("debian", "11", "", "fail"),
        ("ubuntu", "22.04", "debian", "ok"),
        ("ubuntu", "24.04", "debian", "ok"),
        ("ubuntu", "20.04", "debian", "fail"),
        ("rhel", "9.4", "fedora", "ok"),
        ("rocky", "9.3", "rhel centos fedora", "ok"),
        ("almalinux", "9.4", "rhel centos fedora", "ok"),
        ("ol", "9.2", "fedora", "fail"),
        ("centos", "9", "rhel fedora", "fail"),
        ("rocky", "8.9", "rhel centos fedora", "fail"),
        ("fedora", "40", "", "fail"),
        ("", "", "", "fail"),
    ],
)
def test_supported_operating_systems(os_id, version, like, status):
    facts = {**GOOD_FACTS, "os_id": os_id, "os_version": version, "os_like": like}

    assert check("os", facts).status == status


def test_an_unsupported_os_says_what_is_supported():
    facts = {**GOOD_FACTS, "os_id": "ubuntu", "os_version": "20.04", "os_name": "Ubuntu 20.04"}

    assert check("os", facts).problem == (
        "Ubuntu 20.04 is not supported "
        "(supported: Debian 12, Ubuntu 22.04/24.04, RedHat 9, Rocky 9, AlmaLinux 9)"
    )


@pytest.mark.parametrize(
    ("architecture", "status"),
    [("x86_64", "ok"), ("aarch64", "ok"), ("armv7l", "fail"), ("", "fail")],
)
def test_the_architecture_must_be_one_ray_ships_for(architecture, status):
    assert check("arch", {**GOOD_FACTS, "architecture": architecture}).status == status


def test_the_requirements_are_the_common_roles():
    common = defaults("common")
    wanted = requirements()

    assert wanted.platforms == {
        name: tuple(versions)
        for family in common["common_supported_platforms"].values()
        for name, versions in family.items()
    }
    assert wanted.architectures == tuple(common["common_supported_architectures"])
    assert wanted.min_memory_mb == common["common_min_memory_mb"]
    assert wanted.min_disk_gb == common["common_min_disk_gb"]
    assert ".".join(map(str, wanted.min_python)) == common["common_min_python_version"]


# 9.96 GiB is 10.0 rounded to a tenth, as the role compares it: ok there, so ok here.
@pytest.mark.parametrize(
    ("free_kib", "status"),
    [
        (10 * GIB_IN_KIB, "ok"),
        (int(9.96 * GIB_IN_KIB), "ok"),
        (int(9.94 * GIB_IN_KIB), "fail"),
        ("", "fail"),
    ],
)
def test_free_disk_needs_10_gib(free_kib, status):
    assert check("disk", {**GOOD_FACTS, "disk_free_kib": str(free_kib)}).status == status


@pytest.mark.parametrize(
    ("memory_kib", "status"), [(2048 * 1024, "ok"), (2048 * 1024 - 1, "fail"), ("", "fail")]
)
def test_memory_needs_2048_mib(memory_kib, status):
    assert check("memory", {**GOOD_FACTS, "memory_kib": str(memory_kib)}).status == status


def test_little_memory_says_what_is_needed():
    result = check("memory", {**GOOD_FACTS, "memory_kib": str(GIB_IN_KIB)})

    assert (result.status, result.problem) == ("fail", "1.0 GiB of memory, needs 2048 MiB")


@pytest.mark.parametrize(
    ("version", "status"), [("3.9.18", "ok"), ("3.9", "ok"), ("3.8.20", "fail"), ("", "fail")]
)
def test_python3_must_be_there_and_recent_enough(version, status):
    facts = {**GOOD_FACTS, "python3": version} if version else {**GOOD_FACTS, "python3": ""}

    assert check("python3", facts).status == status


def test_sudo_must_not_ask_for_a_password():
    assert check("sudo", {**GOOD_FACTS, "sudo": "no"}).status == "fail"


@pytest.mark.parametrize(
    ("gpu", "count", "status"),
    [
        ("auto", "0", "ok"),
        ("auto", "4", "ok"),
        (True, "8", "ok"),
        (True, "0", "fail"),
        (False, "0", "ok"),
        (False, "2", "warn"),
        ("auto", "", "fail"),
    ],
)
def test_gpus_on_pci_against_the_spec(gpu, count, status):
    assert check("gpus", {**GOOD_FACTS, "nvidia_gpus": count}, gpu=gpu).status == status


def test_a_warning_does_not_fail_the_node():
    report = NodeReport("n1", "10.0.0.1", evaluate(node(False), {**GOOD_FACTS, "nvidia_gpus": "2"}))

    assert report.ok


def test_parse_facts_reads_key_value_lines():
    output = "os_id=debian\nos_name=Debian GNU/Linux 12 (bookworm)\nnoise\nx = y=z\n"

    assert parse_facts(output) == {
        "os_id": "debian",
        "os_name": "Debian GNU/Linux 12 (bookworm)",
        "x": "y=z",
    }


REPORTS = [
    NodeReport("head", "10.0.0.1", evaluate(node(), GOOD_FACTS), GOOD_FACTS),
    NodeReport(
        "worker-10",
        "10.0.0.20",
        evaluate(node(True), {**GOOD_FACTS, "disk_free_kib": str(GIB_IN_KIB)}),
    ),
    NodeReport("w3", "10.0.0.3", [Check("ssh", "fail", "no", "unreachable: No route to host")]),
]


def test_the_table_has_a_column_per_check_and_a_line_per_problem():
    out = io.StringIO()

    print_report(REPORTS, out)

    assert out.getvalue().splitlines() == [
        "NODE       ADDRESS    SSH     OS         ARCH    DISK         MEMORY    PYTHON3  SUDO  "
        "GPUS               RESULT",
        "head       10.0.0.1   ok      debian 12  x86_64  50.0 GiB     16.0 GiB  3.11.2   yes   "
        "0 (gpu: auto)      ok",
        "worker-10  10.0.0.20  ok      debian 12  x86_64  1.0 GiB (x)  16.0 GiB  3.11.2   yes   "
        "0 (gpu: true) (x)  FAIL",
        "w3         10.0.0.3   no (x)  -          -       -            -         -        -     "
        "-                  FAIL",
        "",
        "worker-10: disk: only 1.0 GiB free on /, needs 10 GiB",
        "worker-10: gpus: gpu: true but no NVIDIA GPU on PCI: set gpu: false or auto",
        "w3: ssh: unreachable: No route to host",
    ]


def test_json_for_scripts():
    document = json.loads(render_json(REPORTS))

    assert document["ok"] is False
    assert [(entry["node"], entry["ok"]) for entry in document["nodes"]] == [
        ("head", True),
        ("worker-10", False),
        ("w3", False),
    ]
    assert document["nodes"][0]["checks"]["os"] == {
        "name": "os",
        "status": "ok",
        "value": "debian 12",
        "problem": "",
    }
    assert document["nodes"][0]["facts"]["python3"] == "3.11.2"


def test_the_probe_script_runs_in_posix_sh_and_reports_every_fact():
    probe = subprocess.run(
        ["sh", "-c", probe_script(), "sh", "/nonexistent"], capture_output=True, text=True
    )
    facts = parse_facts(probe.stdout)

    assert (probe.returncode, probe.stderr) == (0, "")
    assert {
        "os_id",
        "os_version",
        "architecture",
        "disk_free_kib",
        "memory_kib",
        "nvidia_gpus",
        "sudo",
    } <= set(facts)
    assert facts["disk_free_kib"].isdigit() and facts["memory_kib"].isdigit()
    assert facts["nvidia_gpus"].isdigit()
    # The role's GPU script ran on this machine's sysfs, not on the outer script's argument.
    alone = parse_facts(
        subprocess.run(["sh", str(GPU_SCRIPT)], capture_output=True, text=True).stdout
    )
    assert (facts["pci_devices"], facts["nvidia_gpus"]) == (
        alone["pci_devices"],
        alone["nvidia_gpus"],
    )
    assert facts["sudo"] in ("yes", "no")
