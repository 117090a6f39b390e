"""Is every node ready for a playbook? One SSH round trip per node gathers the facts; the
checks (supported OS and architecture, free disk, memory, python3, passwordless sudo, GPUs vs
the spec's `gpu:`) then run here, against the requirements the common role enforces (read from
roles/common/defaults/main.yml), so preflight passes exactly the nodes that deploy accepts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Literal, TextIO

from mcpctl.remote import run_on_nodes
from mcpctl.roledata import literal_default, role_file
from mcpctl.spec import ClusterSpec, NodeSpec
from mcpctl.tables import Cell, CellValue, Column, print_table

MIB = 1024**2
GIB = 1024**3

# How Ansible's setup names the distributions (its `distribution` fact) whose os-release ID
# is on the left: the role's platform list is keyed by those names.
ANSIBLE_DISTRIBUTION = {
    "almalinux": "AlmaLinux",
    "centos": "CentOS",
    "debian": "Debian",
    "fedora": "Fedora",
    "ol": "OracleLinux",
    "rhel": "RedHat",
    "rocky": "Rocky",
    "ubuntu": "Ubuntu",
}


@dataclass(frozen=True)
class Requirements:
    """What the common role's preflight asks of a node, in the role's own units."""

    platforms: Mapping[str, tuple[str, ...]]  # Ansible distribution name -> versions
    architectures: tuple[str, ...]
    min_memory_mb: int
    min_disk_gb: float
    min_python: tuple[int, ...]

    def describe_platforms(self) -> str:
        return ", ".join(
            f"{name} {'/'.join(versions)}" for name, versions in self.platforms.items()
        )


@cache
def requirements() -> Requirements:
    platforms = literal_default("common", "common_supported_platforms")
    return Requirements(
        platforms={
            name: tuple(str(version) for version in versions)
            for family in platforms.values()
            for name, versions in family.items()
        },
        architectures=tuple(literal_default("common", "common_supported_architectures")),
        min_memory_mb=int(literal_default("common", "common_min_memory_mb")),
        min_disk_gb=float(literal_default("common", "common_min_disk_gb")),
        min_python=_version(str(literal_default("common", "common_min_python_version"))),
    )


# POSIX sh, no python3 needed (whether it is there is one of the checks). One key=value per
# line. The GPU count is the nvidia_driver role's own script, run in a subshell without
# arguments (it takes its sysfs directory from $1).
_PROBE_HEAD = r"""
( . /etc/os-release 2>/dev/null
  echo "os_id=${ID:-}"; echo "os_version=${VERSION_ID:-}"; echo "os_like=${ID_LIKE:-}"
  echo "os_name=${PRETTY_NAME:-}" )
echo "architecture=$(uname -m)"
df -Pk / 2>/dev/null | awk 'NR == 2 { print "disk_free_kib=" $4 }'
awk '/^MemTotal:/ { print "memory_kib=" $2 }' /proc/meminfo
if command -v python3 >/dev/null 2>&1; then
  echo "python3=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
fi
if sudo -n true >/dev/null 2>&1; then echo "sudo=yes"; else echo "sudo=no"; fi
"""
GPU_SCRIPT = "files/nvidia-gpus.sh"


@cache
def probe_script() -> str:
    gpus = role_file("nvidia_driver", GPU_SCRIPT).read_text(encoding="utf-8")
    return f"{_PROBE_HEAD}( set --\n{gpus}\n)\n"


Status = Literal["ok", "warn", "fail"]
CHECK_NAMES = ("ssh", "os", "arch", "disk", "memory", "python3", "sudo", "gpus")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    value: str  # what the table shows
    problem: str = ""  # why it is not ok, and what to do


@dataclass(frozen=True)
class NodeReport:
    node: str
    address: str
    checks: list[Check]
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.status != "fail" for check in self.checks)


def check_nodes(spec: ClusterSpec, nodes: Sequence[NodeSpec], timeout: float) -> list[NodeReport]:
    results = run_on_nodes(spec, nodes, probe_script(), timeout)
    reports = []
    for node, result in zip(nodes, results, strict=True):
        if result.error is not None or result.timed_out:
            problem = result.outcome(timeout)
            reports.append(
                NodeReport(node.name, node.address, [Check("ssh", "fail", "no", problem)])
            )
            continue
        facts = parse_facts(result.stdout)
        reports.append(NodeReport(node.name, node.address, evaluate(node, facts), facts))
    return reports


def parse_facts(output: str) -> dict[str, str]:
    facts = {}
    for line in output.splitlines():
        key, separator, value = line.partition("=")
        if separator:
            facts[key.strip()] = value.strip()
    return facts


def evaluate(node: NodeSpec, facts: Mapping[str, str]) -> list[Check]:
    """The checks of one node that answered over SSH, from the probe's facts."""
    return [
        Check("ssh", "ok", "ok"),
        _os_check(facts),
        _architecture_check(facts),
        _disk_check(facts),
        _memory_check(facts),
        _python_check(facts),
        _sudo_check(facts),
        _gpu_check(node, facts),
    ]


def _os_check(facts: Mapping[str, str]) -> Check:
    os_id, version = facts.get("os_id", ""), facts.get("os_version", "")
    shown = f"{os_id} {version}".strip() or "unknown"
    wanted = requirements()
    # As the role matches: the full version ("22.04") or the major one ("9" for "9.4").
    versions = wanted.platforms.get(ANSIBLE_DISTRIBUTION.get(os_id, os_id), ())
    if version in versions or version.split(".")[0] in versions:
        return Check("os", "ok", shown)
    name = facts.get("os_name") or shown
    return Check(
        "os",
        "fail",
        shown,
        f"{name} is not supported (supported: {wanted.describe_platforms()})",
    )


def _architecture_check(facts: Mapping[str, str]) -> Check:
    architecture = facts.get("architecture", "")
    supported = requirements().architectures
    if architecture in supported:
        return Check("arch", "ok", architecture)
    return Check(
        "arch",
        "fail",
        architecture or "?",
        f"architecture {architecture or 'unknown'} is not supported "
        f"(supported: {', '.join(supported)})",
    )


def _disk_check(facts: Mapping[str, str]) -> Check:
    free = _kib_to_bytes(facts.get("disk_free_kib"))
    if free is None:
        return Check("disk", "fail", "?", "could not read the free space on / (df -Pk /)")
    shown = _gib(free)
    needed = requirements().min_disk_gb
    # The role compares GiB rounded to one decimal; so does this.
    if round(free / GIB, 1) < needed:
        return Check("disk", "fail", shown, f"only {shown} free on /, needs {needed:g} GiB")
    return Check("disk", "ok", shown)


def _memory_check(facts: Mapping[str, str]) -> Check:
    total = _kib_to_bytes(facts.get("memory_kib"))
    if total is None:
        return Check("memory", "fail", "?", "could not read MemTotal from /proc/meminfo")
    shown = _gib(total)
    needed = requirements().min_memory_mb
    # Ansible's memtotal_mb, which the role compares, is MemTotal in whole MiB.
    if total // MIB < needed:
        return Check("memory", "fail", shown, f"{shown} of memory, needs {needed} MiB")
    return Check("memory", "ok", shown)


def _python_check(facts: Mapping[str, str]) -> Check:
    version = facts.get("python3")
    if not version:
        return Check("python3", "fail", "missing", "no python3: install it (Ansible needs it)")
    try:
        numbers = _version(version)
    except ValueError:
        return Check("python3", "fail", version, f"python3 reports version {version!r}")
    wanted = requirements().min_python
    if numbers < wanted:
        oldest = ".".join(map(str, wanted))
        return Check("python3", "fail", version, f"python3 {version} is older than {oldest}")
    return Check("python3", "ok", version)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _sudo_check(facts: Mapping[str, str]) -> Check:
    if facts.get("sudo") == "yes":
        return Check("sudo", "ok", "yes")
    return Check(
        "sudo", "fail", "no", "sudo asks for a password: give the SSH user passwordless sudo"
    )


def _gpu_check(node: NodeSpec, facts: Mapping[str, str]) -> Check:
    try:
        count = int(facts.get("nvidia_gpus", ""))
    except ValueError:
        return Check("gpus", "fail", "?", "could not count PCI devices")
    setting = "auto" if node.gpu == "auto" else str(node.gpu).lower()
    shown = f"{count} (gpu: {setting})"
    if node.gpu is True and count == 0:
        return Check(
            "gpus", "fail", shown, "gpu: true but no NVIDIA GPU on PCI: set gpu: false or auto"
        )
    if node.gpu is False and count > 0:
        return Check(
            "gpus",
            "warn",
            shown,
            f"{count} NVIDIA GPU{'s' if count > 1 else ''} on PCI but gpu: false: "
            "they will not be used (set gpu: auto to use them)",
        )
    return Check("gpus", "ok", shown)


def _kib_to_bytes(value: str | None) -> int | None:
    return int(value) * 1024 if value and value.isdigit() else None


def _gib(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


# --- output -------------------------------------------------------------------------------


PREFLIGHT_COLUMNS = (
    Column("NODE"),
    Column("ADDRESS"),
    *(Column(name.upper()) for name in CHECK_NAMES),
    Column("RESULT"),
)
_MARKS = {"ok": "", "warn": " (!)", "fail": " (x)"}
_STYLES = {"ok": "", "warn": "yellow", "fail": "bold red"}


def print_report(reports: Sequence[NodeReport], stream: TextIO | None = None) -> None:
    """NODE ADDRESS, one column per check, RESULT; then one line per problem."""
    out = stream or sys.stdout
    rows = []
    for report in reports:
        by_name = {check.name: check for check in report.checks}
        values = [_cell(by_name.get(name)) for name in CHECK_NAMES]
        result = Cell("ok", "green") if report.ok else Cell("FAIL", "bold red")
        rows.append([report.node, report.address, *values, result])
    print_table(PREFLIGHT_COLUMNS, rows, out)
    problems = [
        f"{report.node}: {check.name}: {check.problem}"
        + (" (warning)" if check.status == "warn" else "")
        for report in reports
        for check in report.checks
        if check.problem
    ]
    if problems:
        out.write("\n" + "".join(f"{problem}\n" for problem in problems))


def _cell(check: Check | None) -> CellValue:
    if check is None:
        return "-"
    # The marks stay in plain text too: a log has no colours to tell a failure by.
    return Cell(check.value + _MARKS[check.status], _STYLES[check.status])


def render_json(reports: Sequence[NodeReport]) -> str:
    document = {
        "ok": all(report.ok for report in reports),
        "nodes": [
            {
                "node": report.node,
                "address": report.address,
                "ok": report.ok,
                "checks": {check.name: asdict(check) for check in report.checks},
                "facts": report.facts,
            }
            for report in reports
        ],
    }
    return json.dumps(document, indent=2)
