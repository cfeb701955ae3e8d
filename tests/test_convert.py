"""TFLite conversion in every mode, its typed result, and its failures."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import keras3, tf, tf_keras
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.errors import ConversionError, InvalidDatasetError
from zenml_quant.interpreter import run_tflite
from zenml_quant.types import MODES, ConversionOptions


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_converts_and_runs(mode, tiny_dense, tiny_features):
    result = convert_model(tiny_dense, mode, representative_data=tiny_features)
    assert result.ok, result.error
    assert result.mode == mode
    assert result.size_bytes == len(result.content) > 0
    assert "FULLY_CONNECTED" in result.operators and "DELEGATE" not in result.operators
    outputs = run_tflite(result, tiny_features)
    assert outputs.shape == (64, 3)
    expected = tiny_dense.predict(tiny_features, verbose=0)
    # Every mode approximates the float model; int8 may be off by a few quantization steps.
    tolerance = {"float32": 1e-5, "float16": 1e-2}.get(mode, 0.15)
    assert np.max(np.abs(outputs - expected)) < tolerance * max(1.0, np.abs(expected).max())


def test_int8_io_carries_the_quantization_parameters(tiny_dense, tiny_features):
    result = convert_model(tiny_dense, "int8", representative_data=tiny_features)
    (inp,), (out,) = result.inputs, result.outputs
    assert inp.dtype == "int8" and out.dtype == "int8"
    assert inp.quantized and inp.scale > 0 and -128 <= inp.zero_point <= 127
    # Calibration on data with |x| up to ~4 gives an input scale near range/255.
    span = tiny_features.max() - tiny_features.min()
    assert span / 255 * 0.8 < inp.scale < span / 255 * 1.25


def test_int8_with_float_io(tiny_dense, tiny_features):
    options = ConversionOptions(quantized_io=False)
    result = convert_model(tiny_dense, "int8", representative_data=tiny_features, options=options)
    assert result.inputs[0].dtype == "float32" and result.outputs[0].dtype == "float32"
    assert "QUANTIZE" in result.operators and "DEQUANTIZE" in result.operators


def test_int16x8_uses_int16_io(tiny_dense, tiny_features):
    result = convert_model(tiny_dense, "int16x8", representative_data=tiny_features)
    assert result.ok, result.error
    assert result.inputs[0].dtype == "int16"


def test_int8_is_about_a_quarter_of_float32(digits_model, digits):
    float32 = convert_model(digits_model, "float32")
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    assert 2.5 < float32.size_bytes / int8.size_bytes < 4.0
    assert int8.peak_activation_bytes * 3 < float32.peak_activation_bytes


def test_calibration_sample_count_and_seed_are_used(tiny_dense, tiny_features):
    a = convert_model(
        tiny_dense,
        "int8",
        representative_data=tiny_features,
        options=ConversionOptions(calibration_samples=4, seed=1),
    )
    b = convert_model(
        tiny_dense,
        "int8",
        representative_data=tiny_features,
        options=ConversionOptions(calibration_samples=4, seed=2),
    )
    assert a.inputs[0].scale != b.inputs[0].scale


def test_keras3_model_converts():
    if keras3 is None:
        pytest.skip("Keras 3 is not installed")
    model = keras3.Sequential([keras3.Input((6,)), keras3.layers.Dense(4), keras3.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    result = convert_model(model, "float32")
    np.testing.assert_allclose(run_tflite(result, x), model.predict(x, verbose=0), atol=1e-5)


def test_quantized_modes_need_calibration_data(tiny_dense):
    with pytest.raises(InvalidDatasetError, match="representative_data"):
        convert_model(tiny_dense, "int8")


def test_unknown_mode_is_named(tiny_dense):
    with pytest.raises(ConversionError, match="Unknown mode 'int4'.*float32"):
        convert_model(tiny_dense, "int4")


def test_unsupported_op_names_op_and_layer():
    # Erfinv has no TFLite builtin kernel; without Select TF ops the converter refuses it.
    inputs = tf_keras.Input((4,))
    hidden = tf_keras.layers.Dense(4, name="dense_in")(inputs)
    odd = tf_keras.layers.Lambda(lambda t: tf.math.erfinv(t), name="my_erfinv")(hidden)
    model = tf_keras.Model(inputs, odd)
    with pytest.raises(ConversionError) as info:
        convert_model(model, "float32")
    message = str(info.value)
    assert "tf.Erfinv" in message and "my_erfinv" in message
    assert "dense_in" not in message and "input" not in message.split("layer(s):")[1]


def test_unallocatable_flatbuffer_is_a_failed_candidate_not_a_crash(tiny_dense):
    content = convert_model(tiny_dense, "float32").content
    broken = content[: len(content) // 2]
    result = inspect_tflite(broken, mode="int16x8")
    assert not result.ok
    assert "cannot allocate" in result.error
    assert result.size_bytes == len(broken)


def test_compact_names_only_shortens_fused_tensor_names(digits_model, digits):
    full = convert_model(
        digits_model,
        "int8",
        representative_data=digits.x_train,
        options=ConversionOptions(compact_names=False),
    )
    compact = convert_model(digits_model, "int8", representative_data=digits.x_train)
    assert compact.size_bytes < full.size_bytes
    np.testing.assert_array_equal(
        run_tflite(compact, digits.x_test), run_tflite(full, digits.x_test)
    )
    assert compact.inputs == full.inputs and compact.outputs == full.outputs
    assert compact.operators == full.operators
    from zenml_quant.profile import tflite_graph

    full_names = [t.name for t in tflite_graph(full.content).tensors]
    compact_names = [t.name for t in tflite_graph(compact.content).tensors]
    assert any(";" in n for n in full_names) and not any(";" in n for n in compact_names)
    assert compact_names == [n.split(";")[0] for n in full_names]


def test_without_compaction_the_file_is_the_converters_own(tiny_dense):
    plain = tf.lite.TFLiteConverter.from_keras_model(tiny_dense).convert()
    ours = convert_model(tiny_dense, "float32", options=ConversionOptions(compact_names=False))
    assert ours.content == plain
