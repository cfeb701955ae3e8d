"""The per-layer precision allocator: the integer program, the repair, and a real model."""

from __future__ import annotations

import pandas as pd
import pytest

from zenml_quant.allocate import allocate_precisions, choose_plan
from zenml_quant.errors import InvalidOptionError
from zenml_quant.precision_profile import PRECISION_PROFILE_COLUMNS, PrecisionProfile
from zenml_quant.targets import Targets


def _profile(rows: list[tuple[str, str, float, int, float]]) -> PrecisionProfile:
    """A profile from (layer, precision, change, bytes_delta, latency_delta_ms) rows."""
    table = pd.DataFrame(
        [
            {
                "layer": layer,
                "type": "Dense",
                "precision": precision,
                "applied": True,
                "quality": 0.9 - change,
                "change": change,
                "bytes_delta": size,
                "latency_delta_ms": latency,
                "latency_share": latency,
                "energy_delta_uj": float(size),
                "macs": 1,
            }
            for layer, precision, change, size, latency in rows
        ],
        columns=list(PRECISION_PROFILE_COLUMNS),
    )
    return PrecisionProfile(
        table=table,
        mode="exhaustive",
        split="validation",
        n_samples=1000,
        metric="top1",
        float_quality=0.9,
        float_tflite_quality=0.9,
        int8_quality=0.9,
        int8_bytes=10_000,
        int8_latency_ms=1.0,
        precisions=("int4", "int8", "float"),
        evaluations=1,
        seconds=0.0,
    )


# "b" is the known sensitive layer: int4 costs it 5 points, int8 1 point; float repairs it.
PROFILE = _profile(
    [
        ("a", "int4", 0.000, -1000, 0.02),
        ("a", "int8", 0.000, 0, 0.0),
        ("a", "float", 0.000, 3000, 0.01),
        ("b", "int4", 0.050, -5000, 0.05),
        ("b", "int8", 0.010, 0, 0.0),
        ("b", "float", 0.000, 15000, 0.03),
        ("c", "int4", 0.004, -2000, -0.01),
        ("c", "int8", -0.003, 0, 0.0),  # a measured gain: noise, never credited
        ("c", "float", 0.000, 6000, 0.02),
    ]
)


def _bytes(plan: dict[str, str]) -> int:
    table = PROFILE.table.set_index(["layer", "precision"])
    return int(sum(table.loc[(layer, p), "bytes_delta"] for layer, p in plan.items()))


def test_the_optimiser_keeps_the_sensitive_layer_up_and_meets_the_budget():
    plan = choose_plan(PROFILE, slack=0.005)
    assert plan == {"a": "int4", "b": "float", "c": "int4"}
    # b int8 and c int4 lose 0.014 together: over 0.012, within 0.015.
    assert choose_plan(PROFILE, slack=0.012) == {"a": "int4", "b": "int8", "c": "int8"}
    assert choose_plan(PROFILE, slack=0.015) == {"a": "int4", "b": "int8", "c": "int4"}


def test_a_larger_budget_never_gives_a_larger_plan():
    sizes = [_bytes(choose_plan(PROFILE, slack=s)) for s in (0.0, 0.005, 0.012, 0.03, 0.06)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]
    assert choose_plan(PROFILE, slack=0.06) == {"a": "int4", "b": "int4", "c": "int4"}


def test_a_noisy_gain_does_not_pay_for_another_layers_loss():
    # With c's -0.003 credited, b could go int8 (0.010 - 0.003 <= 0.008); it must not.
    assert choose_plan(PROFILE, slack=0.008, precisions=("int8", "float"))["b"] == "float"


def test_the_latency_objective_avoids_moves_that_measured_slower():
    plan = choose_plan(PROFILE, slack=0.06, objective="latency")
    # int4 made a and b slower and c faster; float is slower everywhere.
    assert plan == {"a": "int8", "b": "int8", "c": "int4"}


def test_no_plan_within_a_negative_slack_and_unknown_objectives_are_refused():
    assert choose_plan(PROFILE, slack=-0.01) is None
    with pytest.raises(InvalidOptionError, match="Unknown objective 'speed'"):
        choose_plan(PROFILE, slack=0.01, objective="speed")


@pytest.fixture(scope="module")
def allocation(hard_case, wide_digits):
    return allocate_precisions(hard_case, wide_digits, budget=Targets(max_quality_drop=0.01))


def test_on_a_model_with_known_sensitive_layers_the_budget_is_met(allocation, wide_digits):
    # The hard case's bottleneck output has one outlier channel: int8 there (or in the logits
    # that read it) puts the model at chance, and all-int8 is far outside the budget.
    all_int8 = allocation.attempts[0]
    assert all_int8.origin == "all int8" and not all_int8.met
    assert allocation.status == "budget met"
    plan = allocation.plan
    assert plan["bottleneck"] == "float" and plan["logits"] == "float"
    assert plan["hidden"] == "int4"  # the big dense layer is where the bytes are
    assert allocation.quality >= allocation.reference_quality - 0.01 - 1e-9
    assert allocation.model.size_bytes < all_int8.size_bytes
    # The profile measured every allowed move, the allocation says which it kept.
    assert set(allocation.profile.table["precision"]) == {"int4", "int8", "float"}
    assert "bottleneck float" in allocation.reason


def test_an_unreachable_budget_returns_the_best_model_with_the_reason(hard_case, wide_digits):
    result = allocate_precisions(
        hard_case,
        wide_digits,
        budget=Targets(min_quality=0.999),
        precisions="int4,int8",
    )
    assert result.status == "budget not met"
    assert "allow more precisions" in result.reason
    assert any("precision budget not met" in note for note in result.model.notes)
    assert result.quality == max(a.quality for a in result.attempts)
