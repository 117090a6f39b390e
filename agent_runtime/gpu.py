"""NVML readings of a node's GPUs, without Ray: the health probe (agent_runtime.health) takes
them on every node, and bench/gpu_check.py on a bare GPU machine that has no Ray."""

from __future__ import annotations

import contextlib
import glob
from dataclasses import dataclass
from typing import Any


@dataclass
class GpuSample:
    index: int
    name: str
    temperature_c: float | None = None
    memory_percent: float | None = None
    utilization_percent: float | None = None
    ecc_uncorrected: int | None = None
    xid_errors: int = 0


def nvidia_devices() -> list[str]:
    """The GPU device nodes the NVIDIA driver made (/dev/nvidia0...), none on a CPU node."""
    return sorted(glob.glob("/dev/nvidia[0-9]*"))


class GpuSampler:
    """NVML readings, or a clean "no GPU" when the library or the driver is absent."""

    def __init__(self) -> None:
        self.error: str | None = None
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._events: Any = None
        self._xid: dict[int, int] = {}
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
        except Exception as error:  # ImportError, NVMLError_LibraryNotFound, DriverNotLoaded
            # Without an NVIDIA device node this is a CPU node and there is nothing to
            # report; with one, NVML failing to read it is a fault worth showing.
            self.error = _describe(error) if nvidia_devices() else None
            return
        self._register_xid_events()

    def _register_xid_events(self) -> None:
        nvml = self._nvml
        try:
            self._events = nvml.nvmlEventSetCreate()
            for handle in self._handles:
                nvml.nvmlDeviceRegisterEvents(
                    handle, nvml.nvmlEventTypeXidCriticalError, self._events
                )
        except nvml.NVMLError:
            self._events = None  # not supported on this GPU/driver: XID counts stay 0

    def _drain_xid_events(self) -> None:
        nvml = self._nvml
        while self._events is not None:
            try:
                event = nvml.nvmlEventSetWait(self._events, 0)
            except nvml.NVMLError:
                return  # timeout: no pending events
            index = nvml.nvmlDeviceGetIndex(event.device)
            self._xid[index] = self._xid.get(index, 0) + 1

    def sample(self) -> list[GpuSample]:
        if self._nvml is None:
            return []
        self._drain_xid_events()
        return [self._sample_one(i, handle) for i, handle in enumerate(self._handles)]

    def _sample_one(self, index: int, handle: Any) -> GpuSample:
        nvml = self._nvml
        gpu = GpuSample(
            index, str(nvml.nvmlDeviceGetName(handle)), xid_errors=self._xid.get(index, 0)
        )
        readings = {
            "temperature_c": lambda: nvml.nvmlDeviceGetTemperature(
                handle, nvml.NVML_TEMPERATURE_GPU
            ),
            "memory_percent": lambda: _percent(nvml.nvmlDeviceGetMemoryInfo(handle)),
            "utilization_percent": lambda: nvml.nvmlDeviceGetUtilizationRates(handle).gpu,
            "ecc_uncorrected": lambda: nvml.nvmlDeviceGetTotalEccErrors(
                handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
            ),
        }
        for name, read in readings.items():
            # e.g. ECC on consumer GPUs: leave that reading None rather than fail the sample.
            with contextlib.suppress(nvml.NVMLError):
                setattr(gpu, name, read())
        return gpu


def _describe(error: Exception) -> str:
    # pynvml's class for NVML_ERROR_LIB_RM_VERSION_MISMATCH: the driver's libraries were
    # upgraded under the running kernel module, which only a reboot (or a reload) replaces.
    if type(error).__name__ == "NVMLError_LibRmVersionMismatch":
        return (
            f"reboot needed: NVML reports a driver/library version mismatch ({error}); "
            "the driver was upgraded and the old kernel module is still loaded"
        )
    return f"NVML cannot read the GPUs: {error}"


def _percent(memory: Any) -> float:
    return 100.0 * memory.used / memory.total
