"""Time `mcpctl --help` and check that start-up imports nothing heavy (target: under 0.3 s).

    .venv/bin/python bench/cli_startup.py [--runs 20]

Prints figures only; nothing is asserted about time. Exits 1 if a heavy module (ray, torch,
ansible, fabric, paramiko, pydantic, jinja2, yaml, rich) is imported while parsing arguments or
printing help: the CLI must import those only inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3
HEAVY_MODULES = (
    "ray",
    "torch",
    "ansible",
    "ansible_runner",
    "fabric",
    "paramiko",
    "pydantic",
    "jinja2",
    "yaml",
    "rich",
)
HELP_COMMANDS = (
    ["--help"],
    ["init", "--help"],
    ["validate", "--help"],
    ["inventory", "--help"],
    ["deploy", "--help"],
    ["exec", "--help"],
    ["status", "--help"],
    ["dashboard", "--help"],
)

# Runs the CLI's --help in-process, then reports which top-level modules got imported.
_IMPORTED_MODULES_PROBE = """
import json, sys
from mcpctl.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""


def mcpctl_command() -> list[str]:
    script = Path(sys.executable).parent / "mcpctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mcpctl"]


def timed_run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def heavy_imports(arguments: list[str]) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", _IMPORTED_MODULES_PROBE, *arguments],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = set(json.loads(completed.stderr.strip().splitlines()[-1]))
    return sorted(imported.intersection(HEAVY_MODULES))


def slowest_imports(count: int) -> list[tuple[int, str]]:
    """The modules with the largest cumulative import time (microseconds) for --help."""
    code = "from mcpctl.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in completed.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if not name.startswith(" "):
                rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    python_alone = [timed_run([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    samples = [timed_run([*mcpctl_command(), "--help"]) for _ in range(args.runs)]
    walls = [wall for wall, _ in samples]
    cpus = [cpu for _, cpu in samples]
    median_wall = statistics.median(walls)
    print(f"mcpctl --help, {args.runs} runs:")
    print(
        f"  wall: best {min(walls) * 1000:6.1f} ms   median {median_wall * 1000:6.1f} ms   "
        f"(cpu median {statistics.median(cpus) * 1000:6.1f} ms)"
    )
    print(
        f"  bare 'python -c pass' for comparison: best "
        f"{min(wall for wall, _ in python_alone) * 1000:6.1f} ms"
    )
    verdict = "ok" if median_wall < TARGET_SECONDS else "OVER TARGET"
    print(f"  target < {TARGET_SECONDS} s: {verdict}")

    print("largest cumulative imports for --help (-X importtime):")
    for microseconds, name in slowest_imports(6):
        print(f"  {microseconds / 1000:7.1f} ms  {name}")

    failed = False
    for arguments in HELP_COMMANDS:
        heavy = heavy_imports(arguments)
        shown = " ".join(arguments)
        print(f"heavy modules imported by 'mcpctl {shown}': {', '.join(heavy) or 'none'}")
        failed = failed or bool(heavy)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
