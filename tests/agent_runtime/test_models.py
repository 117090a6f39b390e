from __future__ import annotations

import asyncio
import time

import pytest
import ray
import torch

from agent_runtime.models import BatchedModel, load_module, select_device

pytestmark = pytest.mark.ray


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))


@ray.remote(num_cpus=0.1)
class Host:
    """Batching is measured inside an actor, where the runtime uses it."""

    def __init__(self, max_wait_ms: float) -> None:
        self.model = BatchedModel(_mlp(), max_batch_size=64, max_wait_ms=max_wait_ms)

    async def burst(self, n: int) -> tuple[bool, int, int, str]:
        inputs = torch.randn(n, 8)
        outputs = await asyncio.gather(*(self.model.infer(x) for x in inputs))
        same = torch.allclose(torch.stack(outputs), self.model.forward(inputs), atol=1e-6)
        return same, self.model.batches, self.model.items, str(self.model.device)

    async def single_latency_ms(self) -> float:
        started = time.perf_counter()
        await self.model.infer(torch.randn(8))
        return (time.perf_counter() - started) * 1000


def test_concurrent_calls_are_batched_and_match_unbatched(ray_cluster):
    host = Host.remote(max_wait_ms=5.0)
    same, batches, items, device = ray.get(host.burst.remote(200))
    assert same and items == 200
    assert batches <= 200 // 64 + 2  # full batches of 64, not 200 forwards
    assert device == "cpu"  # this machine has no GPU: placement gave none


def test_a_lone_request_waits_at_most_max_wait(ray_cluster):
    host = Host.remote(max_wait_ms=20.0)
    ray.get(host.single_latency_ms.remote())  # warm-up
    latency = ray.get(host.single_latency_ms.remote())
    assert 15 <= latency < 100


def test_select_device_is_cpu_without_a_gpu(ray_cluster):
    assert select_device() == torch.device("cpu")


def test_load_module_state_dict_and_exported_program(tmp_path):
    model = _mlp()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    batch = {0: torch.export.Dim.DYNAMIC}
    exported = torch.export.export(model, (torch.randn(4, 8),), dynamic_shapes=(batch,))
    torch.export.save(exported, str(tmp_path / "model.pt2"))
    x = torch.randn(3, 8)
    expected = model(x)
    assert torch.allclose(load_module(tmp_path / "weights.pt", _mlp)(x), expected)
    assert torch.allclose(load_module(tmp_path / "model.pt2")(x), expected, atol=1e-6)
