"""The project's ansible.cfg against Ansible's defaults, side by side on the sandbox.

Runs playbooks/deploy.yml once to converge the sandbox, then alternates idempotent re-runs
with each configuration (alternating, so machine noise hits both alike) and prints the times
and their ratio. Needs root and `make system-deps`; brings the sandbox up if it is not.

    .venv/bin/python bench/ansible_cfg.py [--rounds 3] [--nodes 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _playbook(inventory: Path, config: Path) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_ROLES_PATH": str(REPO / "roles")}
    started = time.perf_counter()
    subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/deploy.yml"],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()

    from mcpctl.sandbox.paths import SandboxLayout

    subprocess.run(
        [str(BIN / "mcpctl"), "sandbox", "up", "--nodes", str(args.nodes), "--no-wheelhouse"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    inventory = SandboxLayout.default().inventory_dir / "hosts.yml"
    project_cfg = REPO / "ansible.cfg"
    with tempfile.TemporaryDirectory() as empty:
        defaults_cfg = Path(empty) / "ansible.cfg"
        defaults_cfg.write_text("[defaults]\n")
        first = _playbook(inventory, project_cfg)
        timings: dict[str, list[float]] = {"project": [], "defaults": []}
        for _ in range(args.rounds):
            timings["defaults"].append(_playbook(inventory, defaults_cfg))
            timings["project"].append(_playbook(inventory, project_cfg))

    project = statistics.median(timings["project"])
    defaults = statistics.median(timings["defaults"])
    print(f"deploy.yml on {args.nodes} sandbox hosts, {args.rounds} alternating rounds")
    print(f"  first run (converge, project cfg):     {first:6.1f} s")
    print(
        f"  idempotent re-run, Ansible defaults:   {defaults:6.1f} s  (runs: "
        + ", ".join(f"{t:.1f}" for t in timings["defaults"])
        + ")"
    )
    print(
        f"  idempotent re-run, project ansible.cfg:{project:6.1f} s  (runs: "
        + ", ".join(f"{t:.1f}" for t in timings["project"])
        + ")"
    )
    print(f"  speed-up from ansible.cfg:             {defaults / project:6.2f}x")


if __name__ == "__main__":
    main()
