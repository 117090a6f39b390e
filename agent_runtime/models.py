"""Torch models inside agents: placement-aware device choice and dynamic micro-batching.

An actor call costs far more than a small forward pass, so concurrent `infer` calls are
gathered into one batch: up to `max_batch_size` items, waiting at most `max_wait_ms` after
the first one arrives. Under light load a request waits at most that long; under heavy
load batches fill immediately.

`max_wait_ms=0` waits for nothing: a batch is whatever is queued when the model is free, so
requests that arrive during a forward pass form the next batch. Prefer it for latency. Any
wait above 0 costs a lone request at least about 1 ms, whatever its value: the asyncio event
loop sleeps through epoll, whose timeout is whole milliseconds, rounded up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

# Without Ray (bench/gpu_check.py on a bare GPU machine) the model runs on the device it is
# given, and batch sizes go unrecorded: the metrics are Ray's.
try:
    import ray

    from agent_runtime import metrics
except ImportError:
    ray = None
    metrics = None


def select_device() -> torch.device:
    """CUDA when this actor was given a GPU, else CPU.

    Ray sets CUDA_VISIBLE_DEVICES to the actor's GPUs, so the first visible one is ours. A
    fractional share (num_gpus: 0.25) becomes the process's cap on that GPU's memory, so
    replicas packed on one GPU cannot starve each other.
    """
    if (
        ray is None
        or not ray.is_initialized()
        or not ray.get_gpu_ids()
        or not torch.cuda.is_available()
    ):
        return torch.device("cpu")
    share = ray.get_runtime_context().get_assigned_resources().get("GPU", 1.0)
    device = torch.device("cuda", 0)
    if share < 1.0:
        torch.cuda.set_per_process_memory_fraction(share, device)
    return device


def load_module(
    path: str | Path, build: Callable[[], torch.nn.Module] | None = None
) -> torch.nn.Module:
    """A local model file: a state dict for `build()`'s architecture, or a torch.export
    program (.pt2; export the batch dimension as dynamic so any batch size runs)."""
    if build is None:
        return torch.export.load(str(path)).module()
    module = build()
    module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return module


class BatchedModel:
    """Wrap a module; `await infer(x)` for one item, batched with concurrent callers."""

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        max_batch_size: int = 256,
        max_wait_ms: float = 2.0,
        device: torch.device | None = None,
        name: str = "model",
    ) -> None:
        self.device = device or select_device()
        self.module = module.to(self.device).eval()
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self.name = name
        self.batches = 0
        self.items = 0
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """One unbatched-path call; also what each batch runs."""
        with torch.inference_mode():
            return self.module(batch.to(self.device)).cpu()

    def infer_many(self, items: Sequence[Any]) -> list[torch.Tensor]:
        """Items already gathered by the caller: run them now, `max_batch_size` at a time."""
        outputs: list[torch.Tensor] = []
        for start in range(0, len(items), self.max_batch_size):
            chunk = items[start : start + self.max_batch_size]
            outputs.extend(self.forward(_stack(list(chunk))).unbind(0))
            self._count(len(chunk))
        return outputs

    def _count(self, size: int) -> None:
        self.batches += 1
        self.items += size
        if metrics is not None:
            metrics.batch_size().observe(size, tags={"model": self.name})

    async def infer(self, item: torch.Tensor | Sequence[float]) -> torch.Tensor:
        """One item (a tensor, or a list of numbers: cheaper to batch) -> its output row."""
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.ensure_future(self._serve())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _serve(self) -> None:
        while True:
            batch = await self._collect()
            try:
                # Run inline: small forwards take microseconds, less than a thread hand-off.
                outputs = self.forward(_stack([item for item, _ in batch]))
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._count(len(batch))
            for (_, future), output in zip(batch, outputs.unbind(0), strict=True):
                if not future.done():  # the caller may have been cancelled
                    future.set_result(output)


def _stack(items: list[Any]) -> torch.Tensor:
    if isinstance(items[0], torch.Tensor):
        return torch.stack(items)
    # One conversion for the whole batch instead of a tensor per item.
    return torch.tensor(items, dtype=torch.float32)
