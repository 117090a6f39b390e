"""bench/gpu_check.py, the checks for a bare GPU machine, run here the way it runs there but
without a GPU: no Ray importable, the role's detection through a real ansible-playbook, the
models on CPU, and everything GPU-bound skipped with the reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.unit.roles import REPO

SCRIPT = REPO / "bench/gpu_check.py"
# The device machine has no Ray: the script, and what it imports, must do without it.
WITHOUT_RAY = """
import runpy, sys
sys.modules["ray"] = None
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_check(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, str(SCRIPT), *options],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU path")
def test_without_a_gpu_it_runs_what_it_can_and_says_what_it_skipped():
    result = run_check("--no-install", "--items", "1024")

    assert result.returncode == 0, result.stdout + result.stderr
    *table, last = result.stdout.strip().splitlines()
    report = json.loads(last)
    assert report["ok"] is True and report["failures"] == []
    figures, skipped = report["figures"], report["skipped"]
    # The role's detection ran for real, against this machine's sysfs.
    assert figures["enabled"] is False
    assert figures["skip_reason"] == "no NVIDIA GPU found (PCI vendor 10de)"
    assert figures["flavor_reason"] == "no NVIDIA GPU was found"
    assert skipped["role verify"] == f"the role skips this host: {figures['skip_reason']}"
    # The models' wrapper ran on CPU, both ways, in full batches.
    assert figures["infer_many_cpu_items_per_s"] > 0
    assert figures["infer_concurrent_cpu_items_per_s"] > 0
    assert figures["infer_concurrent_cpu_mean_batch"] > 1
    assert skipped["models on CUDA"] == "torch.cuda.is_available() is False"
    assert skipped["memory fraction"] == "no CUDA device"
    assert "gpu sampler" in skipped
    assert skipped["install"] == "--no-install: using what is importable"
    # Every figure and every skip is in the table too, before the JSON line.
    assert {line.split()[0] for line in table} >= set(figures)
    assert sum(line.startswith("skipped: ") for line in table) == len(skipped)


def test_without_wheels_the_install_step_says_how_to_make_them(tmp_path, monkeypatch):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    monkeypatch.setattr(gpu_check, "WHEELS", tmp_path / "none")
    report = gpu_check.Report()

    assert gpu_check.install(report, tmp_path, no_install=False) == []
    assert "make them with scripts/gpu-wheels" in report.skipped["install"]


def test_gpu_sampling_and_the_model_wrapper_import_without_ray():
    probe = (
        "import sys; sys.modules['ray'] = None\n"
        "from agent_runtime.gpu import GpuSampler\n"
        "from agent_runtime.models import BatchedModel, select_device\n"
        "print(select_device(), GpuSampler().sample())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    if not torch.cuda.is_available():
        assert result.stdout.split() == ["cpu", "[]"]
