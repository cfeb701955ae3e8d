"""The search's reward (soft MnasNet, hard, AutoQKeras forgiving) and the target checks."""

from __future__ import annotations

import math

import pytest

from zenml_quant.search.reward import meets_targets, missed_targets, reward
from zenml_quant.search.types import RewardOptions, Targets

ORIGINAL = 0.95
#: An original within a point of the figures' 0.9: the default accuracy floor (1 point below
#: the original) holds, so only the resource targets move the reward.
CLOSE = 0.905
SIZE = Targets(max_size_bytes=12_000)
SIZE_AND_LATENCY = Targets(max_size_bytes=12_000, max_latency_ms=2.0)
SOFT, HARD, FORGIVING = (RewardOptions(mode=m) for m in ("soft", "hard", "forgiving"))


def figures(accuracy=0.9, size=10_000, latency=1.5, memory=None, energy=None):
    return {
        "accuracy": accuracy,
        "size_bytes": size,
        "peak_memory_bytes": memory,
        "latency_ms": latency,
        "energy_uj": energy,
    }


# -- soft (MnasNet) ------------------------------------------------------------------------------


def test_meeting_a_target_is_not_penalised_nor_rewarded():
    for size in (1_000, 6_000, 12_000):  # far below, below, exactly at the target
        assert reward(figures(size=size), SIZE, CLOSE) == 0.9
    assert reward(figures(size=12_000), SIZE, CLOSE, SOFT) == 0.9


def test_missing_a_target_costs_in_proportion():
    assert reward(figures(size=24_000), SIZE, CLOSE) == pytest.approx(0.9 * 0.5)
    assert reward(figures(size=24_000), SIZE, CLOSE, RewardOptions(penalty=2.0)) == (
        pytest.approx(0.9 * 0.25)
    )
    # Two missed targets multiply: size 1.5x over, latency 2x over.
    both = reward(figures(size=18_000, latency=4.0), SIZE_AND_LATENCY, CLOSE)
    assert both == pytest.approx(0.9 / 1.5 / 2.0)
    # penalty 0 ignores resources entirely.
    assert reward(figures(size=99_000), SIZE, CLOSE, RewardOptions(penalty=0.0)) == 0.9


def test_reward_falls_monotonically_beyond_the_target():
    sizes = [12_000, 12_001, 13_000, 20_000, 50_000, 1_000_000]
    rewards = [reward(figures(size=s), SIZE, CLOSE) for s in sizes]
    assert rewards[0] == 0.9
    assert all(a > b for a, b in zip(rewards, rewards[1:]))
    assert rewards[-1] > 0


def test_accuracy_below_its_floor_is_penalised():
    targets = Targets(max_quality_drop=0.02)  # floor 0.93
    assert reward(figures(accuracy=0.93), targets, ORIGINAL) == 0.93
    assert reward(figures(accuracy=0.94), targets, ORIGINAL) == 0.94
    below = reward(figures(accuracy=0.90), targets, ORIGINAL)
    assert below == pytest.approx(0.90 * (0.90 / 0.93) ** 10)
    gentle = reward(figures(accuracy=0.90), targets, ORIGINAL, RewardOptions(accuracy_penalty=1))
    assert gentle == pytest.approx(0.90 * 0.90 / 0.93)
    # min_quality and a relative drop: the stricter floor applies.
    both = Targets(min_quality=0.80, max_quality_drop=0.1, relative_drop=True)  # 0.855
    assert reward(figures(accuracy=0.855), both, ORIGINAL) == 0.855
    assert reward(figures(accuracy=0.85), both, ORIGINAL) < 0.85


def test_no_targets_means_plain_accuracy():
    assert reward(figures(size=10**9, latency=10**6), Targets(), CLOSE) == 0.9
    assert meets_targets(figures(), Targets(), CLOSE)
    assert missed_targets(figures(), Targets(), CLOSE) == []


def test_the_default_floor_applies_with_resource_targets_only():
    # No accuracy target: at most 1 point below the original, as the gate requires.
    assert meets_targets(figures(accuracy=0.94), SIZE, ORIGINAL)
    assert not meets_targets(figures(accuracy=0.9), SIZE, ORIGINAL)
    assert missed_targets(figures(accuracy=0.9), SIZE, ORIGINAL) == ["accuracy 90.00 % < 94.00 %"]
    assert reward(figures(accuracy=0.9), SIZE, ORIGINAL) < reward(
        figures(accuracy=0.94), SIZE, ORIGINAL
    )


# -- hard ----------------------------------------------------------------------------------------


def test_hard_mode_rejects_any_violation():
    targets = Targets(max_size_bytes=12_000, max_latency_ms=2.0, max_quality_drop=0.1)
    assert reward(figures(), targets, ORIGINAL, HARD) == 0.9
    assert reward(figures(size=12_001), targets, ORIGINAL, HARD) == 0.0
    assert reward(figures(latency=2.5), targets, ORIGINAL, HARD) == 0.0
    assert reward(figures(accuracy=0.84), targets, ORIGINAL, HARD) == 0.0
    assert reward(figures(latency=None), targets, ORIGINAL, HARD) == 0.0


# -- forgiving (AutoQKeras) ----------------------------------------------------------------------


def test_forgiving_factor_worked_example():
    # delta 8 %, rate 2: each halving of the cost below the target adds 8 % to the accuracy,
    # each doubling above it takes 8 % away: score = accuracy * (1 + 0.08 * log2(target/cost)).
    assert reward(figures(size=12_000), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9)
    assert reward(figures(size=6_000), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9 * 1.08)
    assert reward(figures(size=3_000), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9 * 1.16)
    assert reward(figures(size=48_000), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9 * 0.84)
    # rate 4 and delta 10: a quarter of the target is one step, worth 10 %.
    options = RewardOptions(mode="forgiving", forgiving_delta=10.0, forgiving_rate=4.0)
    assert reward(figures(size=3_000), SIZE, CLOSE, options) == pytest.approx(0.9 * 1.1)
    # Per target, multiplied: size at half its target, latency at twice its target.
    both = reward(figures(size=6_000, latency=4.0), SIZE_AND_LATENCY, CLOSE, FORGIVING)
    assert both == pytest.approx(0.9 * 1.08 * 0.92)


def test_forgiving_factor_stays_finite_and_keeps_the_accuracy_floor():
    assert reward(figures(size=0), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9 * 2.0)
    assert reward(figures(size=10**300), SIZE, CLOSE, FORGIVING) == 0.0
    floor = Targets(max_size_bytes=12_000, max_quality_drop=0.02)
    value = reward(figures(accuracy=0.90, size=6_000), floor, ORIGINAL, FORGIVING)
    assert value == pytest.approx(0.90 * 1.08 * (0.90 / 0.93) ** 10)


# -- missing figures -----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [SOFT, HARD, FORGIVING])
@pytest.mark.parametrize("accuracy", [None, math.nan])
def test_missing_accuracy_gives_zero(options, accuracy):
    assert reward(figures(accuracy=accuracy), SIZE, CLOSE, options) == 0.0
    assert reward(figures(accuracy=accuracy), Targets(), CLOSE, options) == 0.0


@pytest.mark.parametrize("size", [None, math.nan])
def test_missing_figure_of_a_set_target_counts_as_missed(size):
    # Scored as if the figure were twice its target.
    assert reward(figures(size=size), SIZE, CLOSE) == pytest.approx(0.9 * 0.5)
    assert reward(figures(size=size), SIZE, CLOSE, RewardOptions(penalty=3)) == (
        pytest.approx(0.9 * 0.125)
    )
    assert reward(figures(size=size), SIZE, CLOSE, FORGIVING) == pytest.approx(0.9 * 0.92)
    assert reward(figures(size=size), SIZE, CLOSE, HARD) == 0.0
    assert not meets_targets(figures(size=size), SIZE, CLOSE)
    assert missed_targets(figures(size=size), SIZE, CLOSE) == ["size not measured (target 12.0 KB)"]


def test_a_missing_figure_without_a_target_does_not_matter():
    assert reward(figures(latency=None), SIZE, CLOSE) == 0.9
    assert meets_targets(figures(latency=None), SIZE, CLOSE)


# -- readable misses -----------------------------------------------------------------------------


def test_missed_targets_read_well():
    targets = Targets(
        max_size_bytes=12_000,
        max_peak_memory_bytes=4_000,
        max_latency_ms=2.0,
        max_energy_uj=150.0,
        max_quality_drop=0.01,
    )
    bad = figures(accuracy=0.9312, size=14_200, latency=3.25, memory=5_120, energy=210.0)
    assert missed_targets(bad, targets, ORIGINAL) == [
        "accuracy 93.12 % < 94.00 %",
        "size 14.2 KB > 12.0 KB",
        "peak memory 5,120 B > 4,000 B",
        "latency 3.25 ms > 2 ms",
        "energy 210 uJ > 150 uJ",
    ]
    assert not meets_targets(bad, targets, ORIGINAL)
    good = figures(accuracy=0.94, size=12_000, latency=2.0, memory=4_000, energy=150.0)
    assert meets_targets(good, targets, ORIGINAL)
    # A miss too small to show at the usual precision gets more digits.
    assert missed_targets(figures(size=12_001), SIZE, CLOSE) == ["size 12,001 B > 12,000 B"]
    assert missed_targets(figures(accuracy=None), Targets(min_quality=0.9), ORIGINAL) == [
        "accuracy not measured (floor 90.00 %)"
    ]


def test_reward_of_an_error_metric_grows_as_the_error_falls():
    from zenml_quant.metrics import METRICS
    from zenml_quant.search.reward import missed_targets
    from zenml_quant.search.reward import reward as score

    targets = Targets(max_quality_drop=0.1, max_size_bytes=1000, metric=METRICS["mae"])
    better = score({"accuracy": 0.4, "size_bytes": 900}, targets, 0.5)
    same = score({"accuracy": 0.5, "size_bytes": 900}, targets, 0.5)
    assert better > same == pytest.approx(0.5)
    # 0.7 is past the floor (0.6): penalised far below a candidate just inside it
    inside = score({"accuracy": 0.59, "size_bytes": 900}, targets, 0.5)
    outside = score({"accuracy": 0.7, "size_bytes": 900}, targets, 0.5)
    assert outside < 0.5 * inside
    assert missed_targets({"accuracy": 0.7, "size_bytes": 900}, targets, 0.5) == ["mae 0.7 > 0.6"]
