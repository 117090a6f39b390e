"""Where a message goes: consistent hashing for keyed work, weighted choice for the rest,
and a bound on calls in flight per replica so a slow replica pushes back on its callers
instead of piling up thousands of pending Ray calls.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from agent_runtime.constants import (
    REDELIVERY_DEADLINE_S,
    REDELIVERY_FIRST_DELAY_S,
    REDELIVERY_MAX_DELAY_S,
)


class Backpressure(RuntimeError):
    """Every eligible replica has `max_in_flight` calls outstanding and the caller chose not
    to wait (or waited past its timeout). Slow down or add replicas."""


@dataclass(frozen=True, slots=True)
class Moved:
    """A replica's answer to a keyed message whose key it has handed to `owner` (the ring
    changed while the message was on its way): send it there instead. Not an error; the
    message was not applied."""

    owner: str


class Redelivery:
    """The back-off between deliveries of one message that must go again (its replica died,
    or its key moved), within a deadline."""

    def __init__(self) -> None:
        self._deadline = time.monotonic() + REDELIVERY_DEADLINE_S
        self._delay = REDELIVERY_FIRST_DELAY_S

    def expired(self) -> bool:
        return time.monotonic() > self._deadline

    async def pause(self) -> None:
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, REDELIVERY_MAX_DELAY_S)


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing with virtual nodes.

    Each replica owns `vnodes * weight` points on a 64-bit ring; a key belongs to the first
    point clockwise of its hash. Adding a replica takes over only the arcs before its own
    points, about 1/(N+1) of the keys; many points per replica keep the shares even.
    """

    def __init__(self, vnodes: int = 512) -> None:
        self.vnodes = vnodes
        self._weights: dict[str, float] = {}
        self._points: list[int] = []
        self._owners: list[str] = []

    def set(self, weights: Mapping[str, float]) -> None:
        self._weights = dict(weights)
        ring = sorted(
            (_hash(f"{replica}#{i}"), replica)
            for replica, weight in self._weights.items()
            for i in range(max(1, round(self.vnodes * weight)))
        )
        self._points = [point for point, _ in ring]
        self._owners = [owner for _, owner in ring]

    def add(self, replica: str, weight: float = 1.0) -> None:
        self.set({**self._weights, replica: weight})

    def remove(self, replica: str) -> None:
        self.set({name: w for name, w in self._weights.items() if name != replica})

    def lookup(self, key: str) -> str:
        if not self._points:
            raise LookupError("hash ring is empty")
        index = bisect.bisect(self._points, _hash(key))
        return self._owners[index % len(self._owners)]


class Router:
    """Picks a replica per message and bounds the calls in flight to each.

    Keyed messages always go to the key's owner (so its state stays in one place) and wait
    for that replica's slots; unkeyed ones go to a replica with a free slot, chosen at random
    in proportion to its weight.
    """

    def __init__(
        self,
        max_in_flight: int,
        *,
        vnodes: int = 512,
        block: bool = True,
        timeout_s: float | None = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.block = block
        self.timeout_s = timeout_s
        self._ring = HashRing(vnodes)
        self._weights: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._rng = rng or random.Random()
        self._changed: asyncio.Condition | None = None

    def in_flight(self, replica: str) -> int:
        return self._in_flight.get(replica, 0)

    def set_replicas(self, weights: Mapping[str, float]) -> None:
        self._weights = dict(weights)
        self._ring.set(self._weights)
        for replica in self._weights:
            self._in_flight.setdefault(replica, 0)

    def owner(self, key: str) -> str:
        return self._ring.lookup(key)

    def _free(self, replica: str) -> bool:
        return self._in_flight.get(replica, 0) < self.max_in_flight

    def choose(self, key: str | None) -> str | None:
        """The replica for this message if it has a free slot now, else None."""
        if key is not None:
            owner = self.owner(key)
            return owner if self._free(owner) else None
        candidates = [replica for replica in self._weights if self._free(replica)]
        if not candidates:
            return None
        weights = [self._weights[replica] for replica in candidates]
        return self._rng.choices(candidates, weights)[0]

    @asynccontextmanager
    async def slot(self, key: str | None) -> AsyncIterator[str]:
        """Hold one in-flight slot on the chosen replica for the duration of a call."""
        if not self._weights:
            raise LookupError("router has no replicas")
        replica = self.choose(key)
        if replica is None:
            replica = await self._wait_for_slot(key)
        self._in_flight[replica] = self._in_flight.get(replica, 0) + 1
        try:
            yield replica
        finally:
            self._in_flight[replica] -= 1
            if self._changed is not None:
                async with self._changed:
                    self._changed.notify_all()

    async def _wait_for_slot(self, key: str | None) -> str:
        if not self.block:
            raise Backpressure(self._describe(key))
        if self._changed is None:
            self._changed = asyncio.Condition()
        chosen: list[str] = []

        def ready() -> bool:
            replica = self.choose(key)
            if replica is not None:
                chosen.append(replica)
            return replica is not None

        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(ready), self.timeout_s)
        except TimeoutError:
            raise Backpressure(f"{self._describe(key)} for {self.timeout_s}s") from None
        return chosen[-1]

    def _describe(self, key: str | None) -> str:
        target = f"replica {self.owner(key)!r}" if key is not None else "every replica"
        return f"{target} has {self.max_in_flight} calls in flight"
