"""Deploy times on a sandbox of its own, measured in one run:

- the first deploy.yml (bare hosts to a Ray cluster; packages from the sandbox's apt proxy and
  wheelhouse),
- idempotent re-runs with the project's ansible.cfg and with Ansible's defaults (an empty
  ANSIBLE_CONFIG), alternating, and their ratio,
- adding one node (`mcpctl sandbox up --nodes N+1`, then scale.yml).

Needs root and `make system-deps`; removes its sandbox at the end.

    .venv/bin/python bench/deploy.py [--nodes 3] [--rounds 1]
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
SANDBOX_ENV = {"MCP_SANDBOX_NAME": "mcp-bench", "MCP_SANDBOX_SUBNET": "10.72.0.0/24"}


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    # Ansible's warnings (interpreter discovery under the defaults...) only on failure.
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    os.environ.update(SANDBOX_ENV)
    from mcpctl.sandbox.paths import SandboxLayout

    inventory = SandboxLayout.default().inventory_dir / "hosts.yml"
    mcpctl = str(BIN / "mcpctl")

    def playbook(name: str) -> list[str]:
        return [str(BIN / "ansible-playbook"), "-i", str(inventory), f"playbooks/{name}"]

    try:
        subprocess.run(
            [mcpctl, "sandbox", "up", "--nodes", str(args.nodes)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with tempfile.TemporaryDirectory() as empty:
            defaults_cfg = Path(empty) / "ansible.cfg"
            defaults_cfg.write_text("[defaults]\n")
            envs = {
                config: {
                    **os.environ,
                    "ANSIBLE_CONFIG": str(config),
                    "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
                }
                for config in (REPO / "ansible.cfg", defaults_cfg)
            }
            project_env, defaults_env = envs[REPO / "ansible.cfg"], envs[defaults_cfg]
            first = _timed(playbook("deploy.yml"), project_env)
            timings: dict[str, list[float]] = {"project": [], "defaults": []}
            for _ in range(args.rounds):
                timings["defaults"].append(_timed(playbook("deploy.yml"), defaults_env))
                timings["project"].append(_timed(playbook("deploy.yml"), project_env))
            up = _timed([mcpctl, "sandbox", "up", "--nodes", str(args.nodes + 1)], project_env)
            scale = _timed(playbook("scale.yml"), project_env)
    finally:
        subprocess.run([mcpctl, "sandbox", "down"], check=False, stdout=subprocess.DEVNULL)

    project = statistics.median(timings["project"])
    defaults = statistics.median(timings["defaults"])
    print(f"deploy.yml on {args.nodes} sandbox hosts ({os.cpu_count()} CPUs on this machine)")
    print(f"  first deploy (bare hosts to Ray cluster):   {first:6.1f} s")
    print(f"  idempotent re-run, project ansible.cfg:     {project:6.1f} s")
    print(f"  idempotent re-run, Ansible defaults:        {defaults:6.1f} s")
    print(f"  speed-up from ansible.cfg:                  {defaults / project:6.2f}x")
    print(f"  add one node (sandbox up {up:.1f} s + scale.yml): {up + scale:6.1f} s")


if __name__ == "__main__":
    main()
