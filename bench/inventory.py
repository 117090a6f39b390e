"""Time `mcpctl inventory` on a generated 5,000-node spec (target: under 2 s end to end).

    .venv/bin/python bench/inventory.py [--nodes 5000] [--runs 5]

Prints figures only; nothing is asserted. The in-process part splits the work into YAML
parsing, spec validation, rendering and writing, to show where the time goes.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_SECONDS = 2.0


def generate_spec(nodes: int) -> str:
    """A spec with one head and nodes-1 workers, a third of them GPU nodes with labels."""
    lines = [
        "name: bench",
        "ssh:",
        "  user: ansible",
        "  key: ~/.ssh/id_ed25519",
        "  known_hosts: ./known_hosts",
        "nodes:",
    ]
    for index in range(nodes):
        lines += [
            f"  - name: node{index:05d}",
            f"    address: 10.{index // 65536}.{index // 256 % 256}.{index % 256}",
            f"    role: {'head' if index == 0 else 'worker'}",
            f"    gpu: {'true' if index % 3 == 0 else 'auto'}",
            f"    labels: {{rack: r{index // 40}, zone: z{index % 4}}}",
        ]
    lines += ["apt_proxy: http://10.89.0.1:3142", ""]
    return "\n".join(lines)


def mcpctl_command() -> list[str]:
    script = Path(sys.executable).parent / "mcpctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mcpctl"]


def best_and_median(samples: list[float]) -> str:
    return (
        f"best {min(samples) * 1000:7.1f} ms   median {statistics.median(samples) * 1000:7.1f} ms"
    )


def time_runs(runs: int, action: Callable[[], object], before: Callable[[], object]) -> list[float]:
    """Wall seconds of `action`, run `runs` times with `before` (not timed) ahead of each."""
    samples = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return samples


def bench_end_to_end(spec_path: Path, out_dir: Path, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `mcpctl inventory` runs, each into a fresh directory (an
    unchanged inventory is not rewritten, which would be faster)."""
    command = [*mcpctl_command(), "inventory", "-f", str(spec_path), "-o", str(out_dir)]
    walls, cpus = [], []
    for _ in range(runs):
        shutil.rmtree(out_dir, ignore_errors=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def bench_in_process(spec_path: Path, out_dir: Path, runs: int) -> dict[str, list[float]]:
    from mcpctl.inventory import render_inventory, write_files_atomically
    from mcpctl.spec import ClusterSpec, load_spec
    from specfile.yamlmap import parse_yaml

    text = spec_path.read_text()
    spec = load_spec(spec_path)
    document = parse_yaml(text, str(spec_path))
    files = render_inventory(spec)
    context = {"base_dir": str(spec_path.parent)}
    nothing = lambda: None  # noqa: E731
    return {
        "parse YAML (compose + line map)": time_runs(
            runs, lambda: parse_yaml(text, "spec"), nothing
        ),
        "validate (pydantic + checks)": time_runs(
            runs, lambda: ClusterSpec.model_validate(document.data, context=context), nothing
        ),
        "load_spec (read + both above)": time_runs(runs, lambda: load_spec(spec_path), nothing),
        "render_inventory": time_runs(runs, lambda: render_inventory(spec), nothing),
        "write (2 files, atomic)": time_runs(
            runs,
            lambda: write_files_atomically(out_dir, files),
            lambda: shutil.rmtree(out_dir, ignore_errors=True),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mcp-bench-") as temporary:
        directory = Path(temporary)
        spec_path = directory / "cluster.yaml"
        spec_path.write_text(generate_spec(args.nodes))
        out_dir = directory / "inventory"
        size_kib = spec_path.stat().st_size / 1024
        print(f"spec: {args.nodes} nodes, {size_kib:.0f} KiB; {args.runs} runs each")

        walls, cpus = bench_end_to_end(spec_path, out_dir, args.runs)
        hosts_kib = (out_dir / "hosts.yml").stat().st_size / 1024
        print("in process:")
        for name, samples in bench_in_process(spec_path, out_dir, args.runs).items():
            print(f"  {name:34} {best_and_median(samples)}")
        verdict = "ok" if statistics.median(walls) < TARGET_SECONDS else "OVER TARGET"
        print(f"mcpctl inventory, subprocess, end to end (hosts.yml {hosts_kib:.0f} KiB):")
        print(f"  wall {best_and_median(walls)}")
        print(f"  cpu  {best_and_median(cpus)}")
        print(f"  target < {TARGET_SECONDS:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
