"""Keras layers kept in float inside an int8 model, from one calibration."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import keras3, tf_keras
from zenml_quant.convert import convert_model
from zenml_quant.errors import InvalidDatasetError, InvalidOptionError
from zenml_quant.layermap import map_layers
from zenml_quant.profile import tflite_graph
from zenml_quant.selective import SelectiveQuantizer, convert_selective
from zenml_quant.sensitivity import tflite_accuracy
from zenml_quant.types import ConversionOptions


@pytest.fixture(scope="module")
def quantizer(digits_model, digits):
    return SelectiveQuantizer(digits_model, digits.x_train)


def test_full_int8_matches_the_plain_converter(quantizer, digits_model, digits):
    ours = quantizer.quantize()
    plain = convert_model(digits_model, "int8", representative_data=digits.x_train)
    assert ours.mode == "int8" and ours.float_layers == ()
    assert ours.operators == plain.operators
    assert abs(ours.size_bytes - plain.size_bytes) <= 64
    x, y = digits.split("test")
    assert tflite_accuracy(ours, x, y) == pytest.approx(tflite_accuracy(plain, x, y), abs=0.003)


def test_layers_are_named_by_keras_and_folded_layers_join_their_owner(quantizer):
    names = [layer.layer for layer in quantizer.layers]
    # bn1 and relu1 fold into conv1; dropout leaves no operator.
    assert names == ["conv1", "conv2", "pool", "flatten", "logits"]
    # Pooling and reshaping only move int8 values: nothing to gain from keeping them in float.
    assert quantizer.quantizable_layers == ("conv1", "conv2", "logits")
    conv1 = quantizer.layers[0]
    assert conv1.layer_type == "Conv2D" and conv1.op_names == ("CONV_2D",)
    assert any("bn1" in node for node in conv1.nodes)


def test_a_float_layer_is_wrapped_in_dequantize_and_quantize(quantizer, digits):
    mixed = quantizer.quantize(["logits"])
    assert mixed.mode == "mixed" and mixed.float_layers == ("logits",)
    ops = list(mixed.operators)
    fc = ops.index("FULLY_CONNECTED")
    assert ops[fc - 1] == "DEQUANTIZE" and ops[fc + 1] == "QUANTIZE"
    # The float layer's weights are stored as float32: the file grows by about 3 bytes each.
    weights = 32 * 4 * 4 * 10
    assert mixed.size_bytes - quantizer.quantize().size_bytes > 2.5 * weights
    assert [t.dtype for t in mixed.inputs + mixed.outputs] == ["int8", "int8"]
    x, y = digits.split("test")
    assert tflite_accuracy(mixed, x, y) > 0.8


def test_layer_types_select_every_layer_of_that_class(quantizer):
    assert quantizer.resolve(types=["Conv2D"]) == ("conv1", "conv2")
    assert quantizer.resolve(["logits"], ["Conv2D"]) == ("conv1", "conv2", "logits")


def test_unknown_layer_name_is_refused_with_the_available_ones(quantizer):
    with pytest.raises(InvalidOptionError, match=r"'nope'.*conv1, conv2, logits"):
        quantizer.quantize(["nope"])
    with pytest.raises(InvalidOptionError, match=r"'bn1'.*folds? away|'bn1'.*BatchNormalization"):
        quantizer.resolve(["bn1"])
    with pytest.raises(InvalidOptionError, match=r"type 'LSTM'.*Conv2D"):
        quantizer.resolve(types=["LSTM"])


def test_convert_selective_in_one_call(digits_model, digits):
    mixed = convert_selective(
        digits_model, representative_data=digits.x_train, float_layer_types=["Dense"]
    )
    assert mixed.float_layers == ("logits",)


def test_float_io_when_quantized_io_is_off(digits_model, digits):
    quantizer = SelectiveQuantizer(
        digits_model, digits.x_train, options=ConversionOptions(quantized_io=False)
    )
    mixed = quantizer.quantize(["conv1"])
    assert [t.dtype for t in mixed.inputs + mixed.outputs] == ["float32", "float32"]


def test_every_layer_in_float_still_builds(quantizer, digits):
    model = quantizer.quantize(quantizer.quantizable_layers)
    assert model.ok and "CONV_2D" in model.operators
    x, y = digits.split("test")
    assert tflite_accuracy(model, x, y) > 0.8


def test_debugger_statistics_come_back_per_keras_layer(quantizer, digits):
    errors = quantizer.layer_errors(digits.x_val, max_samples=50)
    assert list(errors["layer"]) == ["conv1", "conv2", "pool", "flatten", "logits"]
    quantized = errors.set_index("layer").loc[["conv1", "conv2", "logits"]]
    # Rounding alone gives an RMS error of about 0.29 quantization steps.
    assert quantized["rmse_over_scale"].between(0.05, 2).all()
    assert (quantized["noise_to_signal"] < 0.2).all()
    assert np.isnan(errors.loc[0, "input_noise_to_signal"])  # conv1 reads the model input


@pytest.mark.parametrize("data", [None, np.zeros((0, 8, 8, 1), np.float32)])
def test_no_calibration_data_is_refused(digits_model, data):
    with pytest.raises(InvalidDatasetError, match="representative_data"):
        SelectiveQuantizer(digits_model, data)


def test_non_finite_calibration_data_is_refused(digits_model, digits):
    bad = digits.x_train[:20].copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(InvalidDatasetError, match="NaN"):
        SelectiveQuantizer(digits_model, bad)


def test_tiny_calibration_set_converts_with_a_note(digits_model, digits):
    tiny = digits.x_train[:3]
    mixed = SelectiveQuantizer(digits_model, tiny).quantize(["logits"])
    assert mixed.ok and any("only 3 example" in note for note in mixed.notes)
    plain = convert_model(digits_model, "int8", representative_data=tiny)
    assert any("only 3 example" in note for note in plain.notes)
    enough = convert_model(digits_model, "int8", representative_data=digits.x_train)
    assert enough.notes == ()


def test_functional_model_with_residual_batchnorm_and_depthwise(digits):
    layers = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    inp = layers.Input((8, 8, 1))
    a = layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    a = layers.BatchNormalization(name="b1")(a)
    a = layers.ReLU(name="r1")(a)
    b = layers.Conv2D(8, 3, padding="same", name="c2")(a)
    b = layers.Add(name="add")([a, b])
    b = layers.DepthwiseConv2D(3, padding="same", name="dw")(b)
    b = layers.GlobalAveragePooling2D(name="gap")(b)
    out = layers.Dense(10, activation="softmax", name="head")(b)
    model = tf_keras.Model(inp, out, name="residual")
    quantizer = SelectiveQuantizer(model, digits.x_train[:50])
    owners = {layer.layer: layer.op_names for layer in quantizer.layers}
    assert owners["c1"] == ("CONV_2D",) and owners["add"] == ("ADD",)
    assert owners["dw"] == ("DEPTHWISE_CONV_2D",)
    # The softmax is named after the signature, not the layer: it belongs to the output layer.
    assert owners["head"] == ("FULLY_CONNECTED", "SOFTMAX")
    mixed = quantizer.quantize(["add", "dw"])
    assert mixed.ok and mixed.float_layers == ("add", "dw")


def test_keras3_layer_names_are_recovered(digits):
    k = keras3.layers
    model = keras3.Sequential(
        [
            k.Input((8, 8, 1)),
            k.Conv2D(4, 3, name="kc"),
            k.Flatten(name="kf"),
            k.Dense(10, name="kd"),
        ],
        name="k3",
    )
    quantizer = SelectiveQuantizer(model, digits.x_train[:20])
    assert quantizer.quantizable_layers == ("kc", "kd")
    graph = tflite_graph(quantizer.quantize(["kc"]).content)
    # The int8 input is dequantized for the float convolution.
    assert [op.op_name for op in graph.operators[:2]] == ["DEQUANTIZE", "CONV_2D"]
    assert "kc" in [layer.layer for layer in map_layers(graph, model)]
