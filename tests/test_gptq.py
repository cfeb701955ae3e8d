"""GPTQ rounding: compensated rounding beats nearest rounding, and the file keeps its codes."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant.gptq import gptq_round, weighted_ops
from zenml_quant.mixed_precision import PrecisionQuantizer


def _nearest(w: np.ndarray) -> np.ndarray:
    scale = np.abs(w).max(axis=1, keepdims=True) / 7
    return np.clip(np.round(w / scale), -7, 7)


def _output_error(w: np.ndarray, codes: np.ndarray, x: np.ndarray) -> float:
    scale = np.abs(w).max(axis=1, keepdims=True) / 7
    return float(np.mean((x @ (w - codes * scale).T) ** 2))


def test_gptq_lowers_the_output_error_of_correlated_inputs_and_keeps_the_grid():
    rng = np.random.default_rng(0)
    # Strongly correlated inputs, as neighbouring pixels of an image patch are.
    x = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 24)) + 0.1 * rng.normal(size=(4000, 24))
    w = rng.normal(size=(16, 24))
    codes = gptq_round(w, x.T @ x / len(x))
    assert codes.dtype == np.int8 and np.abs(codes).max() <= 7
    # Every row keeps its largest weight at +-7, so a min-max quantizer finds the same scale.
    rows = np.arange(len(w))
    peak = np.argmax(np.abs(w), axis=1)
    assert np.array_equal(codes[rows, peak], 7 * np.sign(w[rows, peak]))
    assert _output_error(w, codes, x) < 0.5 * _output_error(w, _nearest(w), x)
    assert not np.array_equal(codes, _nearest(w))


def test_with_uncorrelated_inputs_gptq_is_nearest_rounding():
    w = np.random.default_rng(1).normal(size=(8, 10))
    assert np.array_equal(gptq_round(w, np.eye(10)), _nearest(w))


def _int4_codes(content: bytes, tensor: int, shape: tuple[int, ...]) -> np.ndarray:
    """The signed 4-bit codes of weight tensor ``tensor`` (two per byte, low nibble first)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    t = model.subgraphs[0].tensors[tensor]
    packed = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8)
    nibbles = np.stack([packed & 0x0F, packed >> 4], axis=1).reshape(-1)[: int(np.prod(shape))]
    return np.where(nibbles > 7, nibbles.astype(np.int16) - 16, nibbles).reshape(shape)


@pytest.fixture(scope="module")
def quantizers(digits_model, digits):
    return {
        algo: PrecisionQuantizer(digits_model, digits.x_train, weight_algorithm=algo)
        for algo in ("gptq", "min_max")
    }


def test_the_file_stores_the_gptq_codes_of_a_convolution(quantizers):
    q = quantizers["gptq"]
    built = q.quantize({"conv2": "int4"})
    assert dict(built.precisions)["conv2"] == "int4"
    ops = weighted_ops(q.float_content)
    (index,) = [i for i in q._by_name["conv2"].ops if i in ops]
    shape = ops[index].weight_shape
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(built.content))
    int4 = flatbuffer_utils.schema_fb.TensorType.INT4
    (tensor,) = [
        i for i, t in enumerate(model.subgraphs[0].tensors) if t.type == int4
    ]  # conv2 is the plan's only int4 layer
    stored = _int4_codes(built.content, tensor, shape).reshape(shape[0], -1)
    expected = q._gptq_codes[index, 4]
    assert np.array_equal(stored, expected)
    float_weights = q._float_weights(ops[index].weight_tensor).reshape(shape[0], -1)
    assert not np.array_equal(expected, _nearest(float_weights))  # GPTQ did move codes


def test_gptq_w4a8_tracks_the_float_model_closer_than_nearest_rounding(
    quantizers, digits, digits_model
):
    from zenml_quant.interpreter import run_tflite

    reference = digits_model.predict(digits.x_test, verbose=0)
    errors = {}
    for algo, q in quantizers.items():
        plan = dict.fromkeys(q.quantizable_layers, "int4")
        out = run_tflite(q.quantize(plan), digits.x_test)
        errors[algo] = float(np.mean((out - reference) ** 2))
    assert errors["gptq"] < errors["min_max"]
