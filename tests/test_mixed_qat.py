"""int4-aware QAT: the chosen layers train on the int4 grid and stay int4 in the file."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.mixed_qat import _annotated, _trained_kernels, int4_aware_training, mixed_qat
from zenml_quant.qat import QATOptions
from zenml_quant.targets import Targets

PLAN = {"conv1": "int8", "conv2": "int4", "logits": "int4"}


@pytest.fixture(scope="module")
def trained(digits_model, digits):
    return int4_aware_training(digits_model, digits, plan=PLAN, options=QATOptions(epochs=2))


def test_the_int4_layers_stay_int4_in_the_file_and_the_rest_as_planned(trained, digits_model):
    assert trained.trained_layers == ("conv2", "logits")
    assert dict(trained.tflite.precisions) == PLAN
    assert trained.tflite.mode == "mixed_qat" and trained.tflite.ok
    assert trained.epochs_run >= 1 and trained.quality > 0.85
    assert any("int4-aware training of conv2, logits" in n for n in trained.tflite.notes)


def test_trained_kernels_lie_on_the_int4_grid_the_quantizer_uses(digits_model):
    # The narrow-range grid: per output channel, k * max|w| / 7 with k in -7..7, which is what
    # ai-edge-quantizer's int4 min-max rounding produces, so the export keeps the codes.
    qat_model = _annotated(digits_model, {"conv2"})
    kernel = _trained_kernels(qat_model)["conv2"]
    flat = kernel.reshape(-1, kernel.shape[-1])
    step = np.abs(flat).max(axis=0) / 7
    codes = flat / step
    assert np.allclose(codes, np.round(codes), atol=1e-4)
    assert np.abs(np.round(codes)).max() == 7
    original = digits_model.get_layer("conv2").get_weights()[0]
    assert not np.allclose(kernel, original)  # it did move onto the grid


def test_a_plan_without_trainable_int4_layers_is_refused(digits_model, digits):
    with pytest.raises(InvalidOptionError, match="no Conv2D, Conv1D or Dense layer in int4"):
        int4_aware_training(digits_model, digits, plan={"conv1": "int8"})
    with pytest.raises(InvalidOptionError, match="'nope'"):
        int4_aware_training(digits_model, digits, plan={"nope": "int4"})
    with pytest.raises(InvalidOptionError, match="relax must be >= 1"):
        mixed_qat(digits_model, digits, budget=Targets(max_quality_drop=0.01), relax=0.5)


def test_training_starts_from_the_gptq_rounding_of_each_int4_kernel(digits_model, digits):
    from zenml_quant.mixed_precision import PrecisionQuantizer
    from zenml_quant.mixed_qat import gptq_start

    quantizer = PrecisionQuantizer(digits_model, digits.x_train)  # GPTQ by default
    start = gptq_start(digits_model, quantizer, ["conv2", "logits"])
    assert set(start) == {"conv2", "logits"}
    for name, kernel in start.items():
        original = digits_model.get_layer(name).get_weights()[0]
        flat, before = (k.reshape(-1, k.shape[-1]).T for k in (kernel, original))
        step = np.abs(before).max(axis=1, keepdims=True) / 7
        # On the layer's own int4 grid (same scale), holding exactly the file's GPTQ codes.
        assert np.allclose(np.abs(flat).max(axis=1), np.abs(before).max(axis=1))
        assert np.array_equal(np.abs(np.round(flat / step)), np.abs(quantizer.gptq_codes(name)))
    nearest = PrecisionQuantizer(digits_model, digits.x_train, weight_algorithm="min_max")
    assert gptq_start(digits_model, nearest, ["conv2"]) == {}
