"""The autoscaling decision, on a clock the test moves."""

from __future__ import annotations

import pytest

from agent_runtime.scaling import Scaler
from agent_runtime.spec import Autoscaling

POLICY = Autoscaling(
    min_replicas=1,
    max_replicas=8,
    target_in_flight=10,
    upscale_after_s=1.0,
    downscale_after_s=5.0,
)


@pytest.mark.parametrize(
    ("load", "wanted"), [(0, 1), (1, 1), (10, 1), (10.5, 2), (35, 4), (79, 8), (500, 8)]
)
def test_wanted_is_load_over_target_within_bounds(load, wanted):
    assert Scaler(POLICY).wanted(load) == wanted


def test_up_only_once_the_load_has_held_and_to_the_latest_count():
    scaler = Scaler(POLICY)

    assert scaler.decide(2, 45, now=0.0) is None
    assert scaler.decide(2, 60, now=0.9) is None
    assert scaler.decide(2, 70, now=1.0) == 7


def test_a_dip_restarts_the_wait_before_scaling_up():
    scaler = Scaler(POLICY)

    assert scaler.decide(2, 45, now=0.0) is None
    assert scaler.decide(2, 15, now=0.5) is None  # content with 2 again
    assert scaler.decide(2, 45, now=1.2) is None
    assert scaler.decide(2, 45, now=2.2) == 5


def test_down_after_a_quiet_spell_to_the_most_wanted_during_it():
    scaler = Scaler(POLICY)

    assert scaler.decide(6, 5, now=0.0) is None
    assert scaler.decide(6, 38, now=2.0) is None  # wanted 4 for a moment
    assert scaler.decide(6, 0, now=4.9) is None
    assert scaler.decide(6, 0, now=5.0) == 4
    # Decided: the next spell starts afresh.
    assert scaler.decide(4, 0, now=5.5) is None
    assert scaler.decide(4, 0, now=10.5) == 1


def test_a_burst_during_the_quiet_spell_keeps_the_replicas():
    scaler = Scaler(POLICY)

    assert scaler.decide(6, 5, now=0.0) is None
    assert scaler.decide(6, 200, now=3.0) is None  # wants more: the spell is over
    assert scaler.decide(6, 5, now=6.0) is None
    assert scaler.decide(6, 5, now=10.9) is None
    assert scaler.decide(6, 5, now=11.0) == 1
