from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from agent_runtime.routing import Backpressure, HashRing, Router

KEYS = [f"key-{i}" for i in range(50_000)]


@pytest.mark.parametrize("n", [3, 8, 16])
def test_adding_a_replica_moves_about_one_in_n_plus_one_keys(n):
    ring = HashRing()
    ring.set({f"r{i}": 1.0 for i in range(n)})
    before = [ring.lookup(key) for key in KEYS]
    ring.add(f"r{n}")
    after = [ring.lookup(key) for key in KEYS]
    moved = [b for b, a in zip(before, after, strict=True) if a != b]
    assert abs(len(moved) / len(KEYS) * (n + 1) - 1) < 0.10
    # Keys only move to the new replica, never between old ones.
    assert all(
        ring.lookup(key) == f"r{n}" for key, b, a in zip(KEYS, before, after, strict=True) if a != b
    )


def test_removing_a_replica_moves_only_its_keys():
    ring = HashRing()
    ring.set({f"r{i}": 1.0 for i in range(5)})
    before = {key: ring.lookup(key) for key in KEYS}
    ring.remove("r2")
    assert all(ring.lookup(key) == owner for key, owner in before.items() if owner != "r2")


def test_ring_shares_follow_weights():
    ring = HashRing()
    ring.set({"big": 3.0, "small": 1.0})
    shares = Counter(ring.lookup(key) for key in KEYS)
    assert shares["big"] / len(KEYS) == pytest.approx(0.75, abs=0.05)


def test_unkeyed_choice_is_capacity_weighted():
    router = Router(max_in_flight=10, rng=random.Random(1))
    router.set_replicas({"gpu": 4.0, "cpu": 1.0})
    picks = Counter(router.choose(None) for _ in range(20_000))
    assert picks["gpu"] / 20_000 == pytest.approx(0.8, abs=0.02)


def test_full_replicas_raise_backpressure_when_not_blocking():
    router = Router(max_in_flight=2, block=False)
    router.set_replicas({"only": 1.0})

    async def scenario():
        async with router.slot("k"), router.slot("k"):
            assert router.in_flight("only") == 2
            with pytest.raises(Backpressure, match="2 calls in flight"):
                async with router.slot("k"):
                    pass
        assert router.in_flight("only") == 0

    asyncio.run(scenario())


def test_blocking_caller_waits_for_a_free_slot_then_times_out():
    router = Router(max_in_flight=1, timeout_s=0.2)
    router.set_replicas({"a": 1.0, "b": 1.0})

    async def scenario():
        order = []

        async def hold(key, seconds):
            async with router.slot(key) as replica:
                order.append(replica)
                await asyncio.sleep(seconds)

        # Two slots total: the third unkeyed call waits for the first release.
        await asyncio.gather(hold(None, 0.05), hold(None, 0.1), hold(None, 0.01))
        assert sorted(order[:2]) == ["a", "b"] and len(order) == 3
        async with router.slot(None), router.slot(None):
            with pytest.raises(Backpressure, match=r"0\.2s"):
                async with router.slot(None):
                    pass

    asyncio.run(scenario())


def test_keyed_calls_wait_for_their_owner_even_if_others_are_free():
    router = Router(max_in_flight=1, block=False)
    router.set_replicas({"a": 1.0, "b": 1.0})
    key = KEYS[0]

    async def scenario():
        async with router.slot(key) as owner:
            assert owner == router.owner(key)
            with pytest.raises(Backpressure, match=owner):
                async with router.slot(key):
                    pass

    asyncio.run(scenario())
