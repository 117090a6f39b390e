"""The project's GPU checks on one bare GPU machine, in one run of a few minutes.

    python3 bench/gpu_check.py [--no-install] [--items N]

For a machine with an NVIDIA GPU, its driver, Python 3.12 with torch (CUDA), nvidia-ml-py,
jinja2, pyyaml and psutil, and no network, Ray or Ansible. From the checkout it:

1. installs ansible-core and this project from the wheels in `.gpu-wheels/` (made here with
   `scripts/gpu-wheels`; ignored by git, carried with the tree) into a scratch directory;
   `--no-install` uses what is importable instead (this checkout, an installed ansible-core);
2. runs the nvidia_driver role against localhost (local connection): its detection, its
   verification, and the install path in check mode, which changes nothing;
3. samples the GPUs as the health probe does (agent_runtime.gpu.GpuSampler, NVML);
4. runs the models' micro-batching wrapper (agent_runtime.models.BatchedModel) on CPU and on
   CUDA, under torch.cuda.set_per_process_memory_fraction(0.25), and checks that cap holds:
   an allocation within it succeeds, one beyond it fails with CUDA's out-of-memory error.

Prints a table of figures, what it skipped and why (everything GPU-bound, on a machine without
one), and last one line of JSON with the same. Exits 1 if a check that ran failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".gpu-wheels"
MEMORY_FRACTION = 0.25
# The whole run must fit a device lease of a few minutes: each playbook gets this long.
PLAYBOOK_TIMEOUT_S = 150
FACTS = (
    "nvidia_driver_gpu_count",
    "nvidia_driver_gpu_device_ids",
    "nvidia_driver_nvswitch_count",
    "nvidia_driver_enabled",
    "nvidia_driver_skip_reason",
    "nvidia_driver_flavor_resolved",
    "nvidia_driver_flavor_reason",
)


class Report:
    def __init__(self) -> None:
        self.figures: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.failures: list[str] = []

    def figure(self, name: str, value: Any) -> None:
        self.figures[name] = value

    def skip(self, name: str, why: str) -> None:
        self.skipped[name] = why

    def fail(self, name: str, why: str) -> None:
        self.failures.append(f"{name}: {why}")


def install(report: Report, scratch: Path, no_install: bool) -> list[Path]:
    """Directories to put first on the import path: ansible-core's and this project's."""
    if no_install:
        report.skip("install", "--no-install: using what is importable")
        return []
    wheels = sorted(WHEELS.glob("*.whl"))
    if not wheels:
        report.skip("install", f"no wheels in {WHEELS} (make them with scripts/gpu-wheels)")
        return []
    project = [wheel for wheel in wheels if wheel.name.startswith("mcp_cluster-")]
    sites = {"ansible": scratch / "ansible", "project": scratch / "project"}
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index"]
    started = time.monotonic()
    commands = [
        [*pip, "--find-links", str(WHEELS), "--target", str(sites["ansible"]), "ansible-core"],
        # Only its code: its own dependencies (Ansible, Ray, ...) are what this machine lacks.
        [*pip, "--no-deps", "--target", str(sites["project"]), *map(str, project[-1:])],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            report.fail("install", (result.stderr or result.stdout).strip()[-500:])
            return []
    report.figure("install_s", round(time.monotonic() - started, 1))
    return [sites["project"], sites["ansible"]]


def ansible_env(scratch: Path, sites: list[Path]) -> dict[str, str]:
    # Not the checkout's ansible.cfg: it asks for Mitogen, which this machine lacks.
    config = scratch / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        f"roles_path = {REPO / 'roles'}\n"
        f"local_tmp = {scratch / 'ansible-tmp'}\n"
        "interpreter_python = auto_silent\n"
    )
    path = os.pathsep.join([*map(str, sites), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(scratch / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONPATH": path,
    }


def run_role(
    scratch: Path,
    env: dict[str, str],
    name: str,
    tasks: list[dict],
    report: dict[str, str],
    *options: str,
) -> dict[str, Any]:
    """Run `tasks` on localhost; return `report` (name: expression) evaluated after them, with
    ok true, or ok false and the failed task's name and message. Written by the playbook
    itself, since ansible-core alone has no machine-readable output callback."""
    result_file = scratch / f"{name}.json"
    # Written in check mode too: it is this script's output, not the role's doing.
    write = {"dest": str(result_file), "mode": "0600"}
    outcome = "{{ {" + ", ".join(f"{key!r}: ({expr})" for key, expr in report.items()) + "} "
    block = {
        "block": [
            *tasks,
            {
                "name": "gpu_check result",
                "ansible.builtin.copy": {
                    **write,
                    "content": outcome + "| combine({'ok': true}) | to_json }}",
                },
                "check_mode": False,
            },
        ],
        "rescue": [
            {
                "name": "gpu_check failure",
                "ansible.builtin.copy": {
                    **write,
                    "content": "{{ {'ok': false, 'task': ansible_failed_task.name, "
                    "'msg': ansible_failed_result.msg | default('')} | to_json }}",
                },
                "check_mode": False,
            }
        ],
    }
    play = {"name": name, "hosts": "localhost", "connection": "local", "tasks": [block]}
    playbook = scratch / f"{name}.yml"
    playbook.write_text(json.dumps([play]))  # JSON is YAML
    command = [sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,", *options]
    command += ["-e", json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=scratch, timeout=PLAYBOOK_TIMEOUT_S
    )
    if not result_file.exists():
        raise RuntimeError((result.stderr or result.stdout).strip()[-800:])
    return json.loads(result_file.read_text())


def role_task(tasks_from: str = "main.yml", **variables: Any) -> dict:
    include = {"name": "nvidia_driver", "tasks_from": tasks_from}
    return {"ansible.builtin.include_role": include, "vars": variables}


def check_role(report: Report, scratch: Path, sites: list[Path]) -> None:
    env = ansible_env(scratch, sites)
    probe = subprocess.run(
        [sys.executable, "-c", "import ansible.release as r; print(r.__version__)"],
        capture_output=True,
        text=True,
        env=env,
    )
    if probe.returncode != 0:
        report.skip("role", "ansible-core is not importable (no wheels installed, none here)")
        return
    report.figure("ansible_core", probe.stdout.strip())

    started = time.monotonic()
    facts = run_role(
        scratch, env, "detect", [role_task("detect.yml")], {name: name for name in FACTS}
    )
    report.figure("role_detect_s", round(time.monotonic() - started, 1))
    if not facts["ok"]:
        report.fail("role detection", f"{facts['task']}: {facts['msg']}")
        return
    for name in FACTS:
        report.figure(name.removeprefix("nvidia_driver_"), facts[name])
    if not facts["nvidia_driver_enabled"]:
        reason = f"the role skips this host: {facts['nvidia_driver_skip_reason']}"
        report.skip("role verify", reason)
        report.skip("role install (check mode)", reason)
        return

    # Read-only: what a converge's verify.yml would say of the driver installed here.
    started = time.monotonic()
    tasks = [
        role_task("detect.yml"),
        role_task("os.yml"),
        role_task("verify.yml", nvidia_driver_reboot_pending=False),
    ]
    verified = run_role(scratch, env, "verify", tasks, {"version": "nvidia_driver_version"})
    report.figure("role_verify_s", round(time.monotonic() - started, 1))
    # A driver installed outside the role, or on another branch: what verify says is the
    # figure, not a failure of this check.
    if verified["ok"]:
        report.figure("verified_driver", verified["version"])
    else:
        report.figure("verify_message", f"{verified['task']}: {verified['msg']}")

    started = time.monotonic()
    variables = {"nvidia_driver_gpu_mode": "true", "nvidia_driver_reboot_allowed": False}
    plan = {
        "install_changed": "nvidia_driver_install_changed | default(None)",
        "packages_plan": "nvidia_driver_packages_plan.msg | default(None)",
        "fabricmanager_plan": "nvidia_driver_fabricmanager_plan.msg | default(None)",
        "reboot_pending": "nvidia_driver_reboot_pending | default(None)",
    }
    checked = run_role(scratch, env, "install", [role_task(**variables)], plan, "--check")
    report.figure("role_check_mode_s", round(time.monotonic() - started, 1))
    if checked["ok"]:
        for key in plan:
            report.figure(f"check_mode_{key}", checked[key])
    else:
        report.figure("check_mode_message", f"{checked['task']}: {checked['msg']}")


def check_gpu_sampler(report: Report) -> None:
    from agent_runtime.gpu import GpuSampler

    started = time.monotonic()
    sampler = GpuSampler()
    report.figure("nvml_init_ms", round(1000 * (time.monotonic() - started), 1))
    started = time.monotonic()
    samples = sampler.sample()
    report.figure("nvml_sample_ms", round(1000 * (time.monotonic() - started), 1))
    if sampler.error:
        report.fail("gpu sampler", sampler.error)
    if not samples:
        report.skip("gpu sampler", sampler.error or "NVML sees no GPU (or nvidia-ml-py is absent)")
        return
    report.figure("nvml_gpus", [vars(sample) for sample in samples])


def check_models(report: Report, items: int) -> None:
    import torch

    from agent_runtime.models import BatchedModel

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(), torch.nn.Linear(1024, 8),
    )  # fmt: skip
    inputs = list(torch.randn(items, 64).unbind(0))
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        device = torch.device("cuda", 0)
        # Set before the model runs, as select_device does for a fractional share.
        torch.cuda.set_per_process_memory_fraction(MEMORY_FRACTION, device)
        report.figure("cuda_device", torch.cuda.get_device_name(device))
        devices.append(device)
    else:
        report.skip("models on CUDA", "torch.cuda.is_available() is False")
        report.skip("memory fraction", "no CUDA device")
    reference = None
    for device in devices:
        model = BatchedModel(module, max_batch_size=256, max_wait_ms=0, device=device)
        model.infer_many(inputs[:256])  # warm-up: CUDA context, kernels, allocator
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.monotonic()
        outputs = model.infer_many(inputs)
        elapsed = time.monotonic() - started
        report.figure(f"infer_many_{device.type}_items_per_s", round(items / elapsed))
        model.batches = model.items = 0
        started = time.monotonic()
        asyncio.run(_concurrent(model, inputs))
        elapsed = time.monotonic() - started
        report.figure(f"infer_concurrent_{device.type}_items_per_s", round(items / elapsed))
        mean_batch = round(model.items / model.batches, 1)
        report.figure(f"infer_concurrent_{device.type}_mean_batch", mean_batch)
        first = torch.stack(outputs[:64])
        if reference is None:
            reference = first
        elif not torch.allclose(reference, first, atol=1e-3, rtol=1e-3):
            report.fail("models", f"{device} outputs differ from CPU's beyond 1e-3")
    if torch.cuda.is_available():
        check_memory_fraction(report, torch)


async def _concurrent(model: Any, inputs: list) -> None:
    await asyncio.gather(*(model.infer(item) for item in inputs))


def check_memory_fraction(report: Report, torch: Any) -> None:
    device = torch.device("cuda", 0)
    total = torch.cuda.get_device_properties(device).total_memory
    report.figure("cuda_total_gib", round(total / 2**30, 1))
    report.figure("memory_fraction", MEMORY_FRACTION)
    torch.cuda.empty_cache()
    within = int(total * (MEMORY_FRACTION - 0.05))
    try:
        block = torch.empty(within, dtype=torch.uint8, device=device)
        del block
        report.figure("alloc_within_fraction_gib", round(within / 2**30, 1))
    except torch.cuda.OutOfMemoryError as error:
        report.fail("memory fraction", f"{within / 2**30:.1f} GiB within the cap failed: {error}")
    torch.cuda.empty_cache()
    beyond = int(total * (MEMORY_FRACTION + 0.05))
    try:
        block = torch.empty(beyond, dtype=torch.uint8, device=device)
        del block
        report.fail("memory fraction", f"{beyond / 2**30:.1f} GiB beyond the cap was allocated")
    except torch.cuda.OutOfMemoryError:
        report.figure("alloc_beyond_fraction_oom", True)
    torch.cuda.empty_cache()


def print_table(report: Report) -> None:
    rows = [(name, json.dumps(value) if not isinstance(value, str) else value)
            for name, value in report.figures.items()]  # fmt: skip
    rows += [(f"skipped: {name}", why) for name, why in report.skipped.items()]
    rows += [("FAILED", why) for why in report.failures]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-install", action="store_true", help="use what is importable")
    parser.add_argument("--items", type=int, default=50_000, help="items per throughput run")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report = Report()
    scratch = Path(tempfile.mkdtemp(prefix="mcp-gpu-check-"))
    try:
        sites = install(report, scratch, args.no_install)
        # The installed project first, else this checkout.
        sys.path[:0] = [str(site) for site in sites] or [str(REPO)]
        steps = [
            ("role", lambda: check_role(report, scratch, sites)),
            ("gpu sampler", lambda: check_gpu_sampler(report)),
            ("models", lambda: check_models(report, args.items)),
        ]
        for name, step in steps:
            try:
                step()
            except Exception as error:  # one broken step must not hide the others' figures
                report.fail(name, f"{type(error).__name__}: {error}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report.figure("elapsed_s", round(time.monotonic() - started, 1))
    print_table(report)
    print(
        json.dumps(
            {
                "figures": report.figures,
                "skipped": report.skipped,
                "failures": report.failures,
                "ok": not report.failures,
            },
            default=str,
        )
    )
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
