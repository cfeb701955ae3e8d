"""Post-training quantization: plain modes, float layers, and accuracy control."""

from __future__ import annotations

import pytest

from zenml_quant.convert import convert_model
from zenml_quant.errors import InvalidOptionError
from zenml_quant.ptq import quantize_post_training, quantize_with_accuracy_budget
from zenml_quant.report.compress import attempts_table, ptq_html
from zenml_quant.selective import SelectiveQuantizer
from zenml_quant.sensitivity import tflite_accuracy
from zenml_quant.targets import Targets

HALF_POINT = Targets(max_quality_drop=0.005)


@pytest.fixture(scope="module")
def quantizer(hard_case, wide_digits):
    return SelectiveQuantizer(hard_case, wide_digits.x_train)


@pytest.fixture(scope="module")
def controlled(hard_case, wide_digits, quantizer):
    return quantize_with_accuracy_budget(
        hard_case, wide_digits, budget=HALF_POINT, quantizer=quantizer
    )


def test_hard_case_full_int8_loses_more_than_a_point(controlled):
    first = controlled.attempts[0]
    assert first.action == "full int8" and first.float_layers == ()
    assert first.drop > 0.01


def test_accuracy_control_meets_half_a_point_with_at_most_two_float_layers(
    controlled, hard_case, wide_digits
):
    assert controlled.status == "budget met", controlled.reason
    assert 1 <= len(controlled.float_layers) <= 2
    assert controlled.model.mode == "mixed"
    assert controlled.reference_accuracy - controlled.accuracy <= 0.005
    # On the held-out test split too (the budget was checked on validation).
    x, y = wide_digits.split("test")
    keras_test = float((hard_case.predict(x, verbose=0).argmax(-1) == y).mean())
    assert keras_test - tflite_accuracy(controlled.model, x, y) <= 0.005
    float32 = convert_model(hard_case, "float32")
    assert controlled.model.size_bytes <= 0.40 * float32.size_bytes


def test_trace_records_every_attempt(controlled):
    steps = [a.step for a in controlled.attempts]
    assert steps == list(range(1, len(steps) + 1))
    final = [a for a in controlled.attempts if a.float_layers == controlled.float_layers]
    assert final and final[0].meets_budget
    table = attempts_table(controlled)
    assert len(table) == len(controlled.attempts)
    assert table["meets_budget"].any() and not table["meets_budget"].iloc[0]
    page = ptq_html(controlled)
    assert "budget met" in page and ", ".join(controlled.float_layers) in page


def test_bisect_search_also_meets_the_budget(hard_case, wide_digits, quantizer, controlled):
    result = quantize_with_accuracy_budget(
        hard_case,
        wide_digits,
        budget=HALF_POINT,
        search="bisect",
        quantizer=quantizer,
        ranking=["logits", "bottleneck"],
    )
    assert result.status == "budget met"
    assert set(result.float_layers) == set(controlled.float_layers)


def test_budget_not_met_returns_the_best_model_and_the_reason(hard_case, wide_digits, quantizer):
    # One float layer cannot cover both ends of the outlier tensor.
    result = quantize_with_accuracy_budget(
        hard_case, wide_digits, budget=HALF_POINT, max_float_layers=1, quantizer=quantizer
    )
    assert result.status == "budget not met"
    assert "no model tried meets the budget" in result.reason
    assert "max_float_layers" in result.reason
    # Both attempts are near chance: the float layer's gain over int8 is validation noise, so
    # the bytes it would cost are not spent and the reason says why.
    assert result.float_layers == () and "within noise, so they stay int8" in result.reason
    assert result.accuracy == result.attempts[0].accuracy
    assert any("budget not met" in note for note in result.model.notes)
    assert len(result.attempts) == 2  # full int8, then the one allowed float layer


def test_unknown_layer_in_ranking_or_float_list_is_refused(hard_case, wide_digits, quantizer):
    with pytest.raises(InvalidOptionError, match="'dense_99'"):
        quantize_with_accuracy_budget(
            hard_case, wide_digits, budget=HALF_POINT, ranking=["dense_99"], quantizer=quantizer
        )
    with pytest.raises(InvalidOptionError, match="'nope'"):
        quantize_post_training(hard_case, wide_digits, float_layers=["nope"])


def test_selective_float_layers_without_budget(hard_case, wide_digits):
    result = quantize_post_training(hard_case, wide_digits, float_layers=["bottleneck", "logits"])
    assert result.status == "converted" and result.budget is None
    assert result.float_layers == ("bottleneck", "logits")


def test_plain_modes_pass_through(digits_model, digits):
    result = quantize_post_training(digits_model, digits, mode="float16")
    assert result.status == "converted" and result.model.mode == "float16"
    with pytest.raises(InvalidOptionError, match="int8"):
        quantize_post_training(digits_model, digits, mode="float16", float_layers=["logits"])
    with pytest.raises(InvalidOptionError, match="Unknown mode"):
        quantize_post_training(digits_model, digits, mode="int4")


def test_budget_met_by_full_int8_keeps_nothing_in_float(digits_model, digits):
    result = quantize_post_training(
        digits_model, digits, budget=Targets(max_quality_drop=0.05), ranking=["logits"]
    )
    assert result.status == "budget met" and result.float_layers == ()
    assert result.model.mode == "int8" and len(result.attempts) == 1


def test_budget_arithmetic():
    assert Targets(max_quality_drop=0.01).allowed_drop(0.9) == pytest.approx(0.01)
    relative = Targets(max_quality_drop=0.01, relative_drop=True)
    assert relative.allowed_drop(0.9) == pytest.approx(0.009)
    assert Targets(max_quality_drop=0.005).quality_met(0.90, 0.895)
    assert not Targets(max_quality_drop=0.005).quality_met(0.90, 0.894)
    for bad in (-0.1, float("nan"), 1.0):
        with pytest.raises(InvalidOptionError, match="max_quality_drop"):
            Targets(max_quality_drop=bad)
    with pytest.raises(InvalidOptionError, match="max_quality_drop"):
        Targets(max_quality_drop=5, relative_drop=True)
