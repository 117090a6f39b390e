"""agent_runtime.gpu's NVML sampler without a GPU: a fake pynvml stands for the library, so
the probe's answers to a CPU node and to a driver upgraded without a reboot are checked."""

from __future__ import annotations

import sys
import types

import pytest

from agent_runtime import gpu


def fake_pynvml(error: type[Exception]) -> types.ModuleType:
    module = types.ModuleType("pynvml")

    def init() -> None:
        raise error("RM has detected an NVML/RM version mismatch.")

    module.nvmlInit = init
    return module


# pynvml makes one exception class per NVML error code, named after it.
class NVMLError_LibRmVersionMismatch(Exception):
    pass


class NVMLError_DriverNotLoaded(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "devices", "expected"),
    [
        (NVMLError_LibRmVersionMismatch, ["/dev/nvidia0"], "reboot needed: NVML reports a driver"),
        (NVMLError_DriverNotLoaded, ["/dev/nvidia0"], "NVML cannot read the GPUs: "),
        (NVMLError_DriverNotLoaded, [], None),  # a CPU node: nothing to report
    ],
)
def test_nvml_failures_are_reported_only_where_there_are_gpus(
    monkeypatch, error, devices, expected
):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(error))
    monkeypatch.setattr(gpu, "nvidia_devices", lambda: devices)

    sampler = gpu.GpuSampler()

    assert sampler.sample() == []
    if expected is None:
        assert sampler.error is None
    else:
        assert sampler.error.startswith(expected)
