"""The per-layer precision allocator: the integer program, the repair, and a real model."""

from __future__ import annotations

from dataclasses import replace

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


# Changes are measured alone in the float model. "b" is the known sensitive layer: int8 costs
# it 1 point, int4 5; float repairs it. "c" measured a gain at int8 (noise), "d" one at int4.
PROFILE = _profile(
    [
        ("a", "int4", 0.000, -1000, 0.02),
        ("a", "int8", 0.000, 0, 0.0),
        ("a", "float", 0.000, 3000, 0.01),
        ("b", "int4", 0.050, -5000, 0.05),
        ("b", "int8", 0.010, 0, 0.0),
        ("b", "float", 0.000, 15000, 0.03),
        ("c", "int4", 0.004, -2000, -0.01),
        ("c", "int8", -0.003, 0, 0.0),
        ("c", "float", 0.000, 6000, 0.02),
        ("d", "int4", -0.004, -500, 0.0),
        ("d", "int8", 0.000, 0, 0.0),
        ("d", "float", 0.000, 2000, 0.01),
    ]
)


def _bytes(plan: dict[str, str]) -> int:
    table = PROFILE.table.set_index(["layer", "precision"])
    return int(sum(table.loc[(layer, p), "bytes_delta"] for layer, p in plan.items()))


def test_the_optimiser_keeps_the_sensitive_layer_up_and_meets_the_budget():
    # The slack is against the measured all-int8 model; c's step to int4 costs 0.007.
    assert choose_plan(PROFILE, slack=0.0) == {"a": "int4", "b": "int8", "c": "int8", "d": "int4"}
    assert choose_plan(PROFILE, slack=0.007) == {
        "a": "int4",
        "b": "int8",
        "c": "int4",
        "d": "int4",
    }
    # All-int8 half a point under the floor: the sensitive layer goes float to win it back.
    plan = choose_plan(PROFILE, slack=-0.005)
    assert plan["b"] == "float" and plan["c"] == "int8"


def test_a_larger_budget_never_gives_a_larger_plan():
    slacks = (-0.01, -0.005, 0.0, 0.007, 0.03, 0.06)
    sizes = [_bytes(choose_plan(PROFILE, slack=s)) for s in slacks]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] > sizes[-1]
    assert choose_plan(PROFILE, slack=0.06) == dict.fromkeys("abcd", "int4")


def test_a_noisy_gain_does_not_pay_for_another_layers_loss():
    # Credited, d's int4 "gain" (-0.004) would cover the -0.003 needed; it must not: b goes float.
    assert choose_plan(PROFILE, slack=-0.003)["b"] == "float"
    # And c's noisy int8 gain does not make its float step look like a loss.
    assert choose_plan(PROFILE, slack=-0.02) is None  # only b can win anything back: 0.01


def test_the_latency_objective_avoids_moves_that_measured_slower():
    plan = choose_plan(PROFILE, slack=0.06, objective="latency")
    # int4 made a and b slower and c faster; d ties, and the tie goes to the smaller file.
    assert plan == {"a": "int8", "b": "int8", "c": "int4", "d": "int4"}


def test_no_plan_within_an_unreachable_slack_and_unknown_objectives_are_refused():
    assert choose_plan(PROFILE, slack=-0.5) is None
    with pytest.raises(InvalidOptionError, match="Unknown objective 'speed'"):
        choose_plan(PROFILE, slack=0.01, objective="speed")


@pytest.fixture(scope="module")
def allocation(hard_case, wide_digits):
    return allocate_precisions(hard_case, wide_digits, budget=Targets(max_quality_drop=0.01))


def test_on_a_model_with_known_sensitive_layers_the_budget_is_met(allocation, wide_digits):
    # The hard case's bottleneck output has one outlier channel: int8 there (or in the logits
    # that read it) puts the model at chance, and all-int8 is far outside the budget.
    origins = [a.origin for a in allocation.attempts]
    assert origins[:2] == ["plain int8 (TFLite converter)", "all int8"]
    all_int8 = allocation.attempts[1]
    assert not all_int8.met and not allocation.attempts[0].met
    assert allocation.status == "budget met"
    plan = allocation.plan
    assert plan["bottleneck"] == "float" and plan["logits"] == "float"
    assert plan["hidden"] == "int4"  # the big dense layer is where the bytes are
    # Alone, logits in float repairs the model as well as the bottleneck does, so the profile
    # cannot say which to keep up; the repair measured the tied moves on the whole model.
    assert any(a.origin.startswith("repair (measured") for a in allocation.attempts)
    assert allocation.quality >= allocation.reference_quality - 0.01 - 1e-9
    assert allocation.model.size_bytes < all_int8.size_bytes
    # The profile measured every allowed move, the allocation says which it kept.
    assert set(allocation.profile.table["precision"]) == {"int4", "int8", "float"}
    assert "bottleneck float" in allocation.reason


def test_no_bytes_are_spent_on_float_layers_int8_does_not_need(digits_model, digits):
    # The digits CNN loses nothing in int8: the answer is an int8 file no larger than the
    # converter's, never one with float layers.
    result = allocate_precisions(
        digits_model, digits, budget=Targets(min_quality=0.0), precisions="int8,float"
    )
    assert result.status == "budget met"
    assert result.model.float_layers == ()
    assert set(dict(result.model.precisions).values()) <= {"int8"}
    plain = [a for a in result.attempts if a.origin.startswith("plain int8")]
    assert plain and result.model.size_bytes <= plain[0].size_bytes


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


def test_the_peak_memory_objective_keeps_the_large_activation_int8():
    # Either x or y must go float to win back 0.5 point. x's float file is smaller, so the
    # bytes objective takes it; x's activation is large, so float there doubles the peak.
    rows = [
        ("x", "int4", 0.010, -100, 0.0),
        ("x", "int8", 0.010, 0, 0.0),
        ("x", "float", 0.000, 300, 0.0),
        ("y", "int4", 0.010, -1000, 0.0),
        ("y", "int8", 0.010, 0, 0.0),
        ("y", "float", 0.000, 3000, 0.0),
    ]
    profile = _profile(rows)
    assert choose_plan(profile, slack=-0.005) == {"x": "float", "y": "int4"}
    with pytest.raises(InvalidOptionError, match="which activations are live"):
        choose_plan(profile, slack=-0.005, objective="peak_memory")
    live = ((("", 64), ("x", 1000)), (("x", 1000), ("y", 10)), (("y", 10),))
    profile = replace(profile, live_elements=live)
    assert choose_plan(profile, slack=-0.005, objective="peak_memory") == {
        "x": "int4",  # same activation bytes as int8, fewer file bytes
        "y": "float",
    }


def test_live_elements_are_the_float_files_peak_in_elements(digits_model, digits):
    from zenml_quant.mixed_precision import PrecisionQuantizer
    from zenml_quant.profile import peak_activation_bytes

    quantizer = PrecisionQuantizer(digits_model, digits.x_train)
    steps = quantizer.live_elements()
    named = {layer for step in steps for layer, _ in step}
    assert named - {""} <= set(quantizer.quantizable_layers) and "conv1" in named
    # Same liveness rule as the peak: in the float file every activation is 4 bytes.
    peak = max(sum(n for _, n in step) for step in steps)
    assert 4 * peak == peak_activation_bytes(quantizer.float_content)


def test_a_peak_memory_allocation_is_no_larger_in_activations_than_plain_int8(digits_model, digits):
    from zenml_quant.convert import convert_model

    result = allocate_precisions(
        digits_model, digits, budget=Targets(max_quality_drop=0.01), objective="peak_memory"
    )
    plain = convert_model(digits_model, "int8", representative_data=digits.x_train)
    assert result.status == "budget met"
    assert result.model.peak_activation_bytes <= plain.peak_activation_bytes
    assert "peak activations" in result.reason and "plain int8's" in result.reason
