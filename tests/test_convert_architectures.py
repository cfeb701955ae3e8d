"""Architectures beyond the plain CNN: recurrent layers, Conv1D, BatchNorm before tanh,
MobileNet's padded strided depthwise blocks, and error statistics on probability outputs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from zenml_quant._compat import keras3, tf, tf_keras
from zenml_quant.convert import convert_model, remapper_disabled
from zenml_quant.errors import ConversionError
from zenml_quant.interpreter import run_tflite
from zenml_quant.profile import tflite_graph
from zenml_quant.selective import SelectiveQuantizer, _noise_to_signal
from zenml_quant.sensitivity import profile_sensitivity

layers = tf_keras.layers
STEPS, FEATURES = 12, 4


def _recurrent(kind: str, steps: int | None = STEPS) -> tf_keras.Model:
    tf_keras.utils.set_random_seed(0)
    recurrent = {
        "LSTM": lambda: layers.LSTM(8, name="rec"),
        "GRU": lambda: layers.GRU(8, name="rec"),
        "SimpleRNN": lambda: layers.SimpleRNN(8, name="rec"),
        "Bidirectional": lambda: layers.Bidirectional(layers.LSTM(6), name="rec"),
    }[kind]()
    return tf_keras.Sequential(
        [layers.Input((steps, FEATURES)), recurrent, layers.Dense(4, name="head")],
        name=f"{kind.lower()}_net",
    )


@pytest.fixture(scope="module")
def sequences():
    return np.random.default_rng(0).normal(size=(40, STEPS, FEATURES)).astype(np.float32)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


@pytest.mark.parametrize(
    ("kind", "loop_op"),
    [("LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM"), ("GRU", "WHILE"), ("SimpleRNN", "WHILE")],
)
def test_recurrent_float32_matches_keras(kind, loop_op, sequences):
    model = _recurrent(kind)
    result = convert_model(model, "float32")
    assert result.ok and loop_op in result.operators
    assert result.inputs[0].shape == (1, STEPS, FEATURES)
    assert any("fixed batch size of 1" in note for note in result.notes)
    # 40 examples through one interpreter: a fused LSTM's state must not leak between them
    # (it did before run_tflite reset the variable tensors: max error 0.006).
    outputs = run_tflite(result, sequences)
    assert np.abs(outputs - model.predict(sequences, verbose=0)).max() < 1e-5


def test_lstm_int8_keeps_the_fused_kernel(sequences):
    model = _recurrent("LSTM")
    int8 = convert_model(model, "int8", representative_data=sequences)
    assert int8.ok and "UNIDIRECTIONAL_SEQUENCE_LSTM" in int8.operators
    assert "WHILE" not in int8.operators and int8.inputs[0].dtype == "int8"
    assert any("reset_all_variables" in note for note in int8.notes)
    graph = tflite_graph(int8.content)
    lstm = next(op for op in graph.operators if op.op_name == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    dtypes = {t.tensor_index: t.dtype for t in graph.tensors}
    # Inputs 1-8 are the four gates' input and recurrent weights: int8 in the integer kernel.
    assert {dtypes[t] for t in lstm.inputs[1:9]} == {"int8"}
    expected = model.predict(sequences, verbose=0)
    outputs = run_tflite(int8, sequences)
    assert np.abs(outputs - expected).max() < 0.05 * np.ptp(expected)
    assert _agreement(outputs, expected) >= 0.9


def test_gru_int8_is_unrolled_because_the_calibrator_crashes_on_loops(sequences):
    model = _recurrent("GRU")
    int8 = convert_model(model, "int8", representative_data=sequences)
    assert int8.ok and "WHILE" not in int8.operators and "FULLY_CONNECTED" in int8.operators
    assert any("unrolled rec (GRU)" in note and "crashes" in note for note in int8.notes)
    expected = model.predict(sequences, verbose=0)
    outputs = run_tflite(int8, sequences)
    assert np.abs(outputs - expected).max() < 0.05 * np.ptp(expected)
    # Unrolling leaves the model itself alone.
    assert not model.get_layer("rec").unroll


def test_unknown_sequence_length(sequences):
    model = _recurrent("GRU", steps=None)
    with pytest.raises(ConversionError, match=r"fixed number of time steps.*Input\(\(20, 8\)\)"):
        convert_model(model, "int8", representative_data=sequences)
    # Float modes run any length: run_tflite resizes the time axis to the examples'.
    result = convert_model(model, "float32")
    short = sequences[:8, :7]
    assert np.abs(run_tflite(result, short) - model.predict(short, verbose=0)).max() < 1e-5


def test_bidirectional_lstm_int8_ties_the_hidden_state_to_the_output(sequences):
    # The concatenation imposes its scale on the LSTM outputs; without tying the hidden-state
    # quantization to it the int8 outputs were off by ~10 % of their range.
    model = _recurrent("Bidirectional")
    int8 = convert_model(model, "int8", representative_data=sequences)
    assert int8.operators.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 2
    expected = model.predict(sequences, verbose=0)
    assert np.abs(run_tflite(int8, sequences) - expected).max() < 0.03 * np.ptp(expected)


def test_keras3_lstm_loops_in_float32_and_unrolls_for_int8(sequences):
    keras3.utils.set_random_seed(0)
    k = keras3.layers
    model = keras3.Sequential(
        [k.Input((STEPS, FEATURES)), k.LSTM(8, name="rec"), k.Dense(4, name="head")], name="k3"
    )
    expected = np.asarray(model(sequences))
    # Keras 3's LSTM carries no signature the converter fuses: a WHILE loop at batch 1 ...
    float32 = convert_model(model, "float32")
    assert "WHILE" in float32.operators and float32.inputs[0].shape == (1, STEPS, FEATURES)
    assert np.abs(run_tflite(float32, sequences) - expected).max() < 1e-5
    # ... which int8 unrolls.
    int8 = convert_model(model, "int8", representative_data=sequences)
    assert "WHILE" not in int8.operators
    assert any("unrolled rec (LSTM)" in note for note in int8.notes)
    assert np.abs(run_tflite(int8, sequences) - expected).max() < 0.05 * np.ptp(expected)


def test_recurrent_layer_is_named_and_can_stay_float(sequences):
    model = _recurrent("LSTM")
    quantizer = SelectiveQuantizer(model, sequences)
    owners = {layer.layer: layer.op_names for layer in quantizer.layers}
    # The fused op and the slice that takes its last step carry no layer name of their own.
    assert owners == {
        "rec": ("UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE"),
        "head": ("FULLY_CONNECTED",),
    }
    assert quantizer.resolve(types=["LSTM"]) == ("rec",)
    mixed = quantizer.quantize(["rec"])
    ops = list(mixed.operators)
    assert ops[ops.index("UNIDIRECTIONAL_SEQUENCE_LSTM") - 1] == "DEQUANTIZE"
    expected = model.predict(sequences, verbose=0)
    assert np.abs(run_tflite(mixed, sequences) - expected).max() < 0.05 * np.ptp(expected)
    errors = quantizer.layer_errors(sequences, max_samples=20).set_index("layer")
    assert errors["noise_to_signal"].between(0, 0.2).all()


@pytest.fixture(scope="module")
def conv1d_model():
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential(
        [
            layers.Input((64, 3)),
            layers.Conv1D(8, 5, padding="same", use_bias=False, name="c1"),
            layers.BatchNormalization(name="bn1"),
            layers.ReLU(name="r1"),
            layers.MaxPooling1D(2, name="pool"),
            layers.Conv1D(16, 3, strides=2, activation="relu", name="c2"),
            layers.GlobalAveragePooling1D(name="gap"),
            layers.Dense(5, activation="softmax", name="head"),
        ],
        name="conv1d_net",
    )


@pytest.fixture(scope="module")
def signals():
    return np.random.default_rng(1).normal(size=(48, 64, 3)).astype(np.float32)


def test_conv1d_classifier_converts_in_float32_and_int8(conv1d_model, signals):
    expected = conv1d_model.predict(signals, verbose=0)
    float32 = convert_model(conv1d_model, "float32")
    assert np.abs(run_tflite(float32, signals) - expected).max() < 1e-5
    int8 = convert_model(conv1d_model, "int8", representative_data=signals)
    # Conv1D runs as a CONV_2D between an EXPAND_DIMS and a reshape back.
    assert int8.operators.count("CONV_2D") == 2 and "EXPAND_DIMS" in int8.operators
    assert _agreement(run_tflite(int8, signals), expected) >= 0.9
    assert int8.size_bytes < float32.size_bytes


def test_conv1d_layers_are_named_and_their_statistics_are_sane(conv1d_model, signals):
    quantizer = SelectiveQuantizer(conv1d_model, signals)
    assert [layer.layer for layer in quantizer.layers] == ["c1", "pool", "c2", "gap", "head"]
    assert quantizer.layers[0].op_names == ("EXPAND_DIMS", "CONV_2D", "RESHAPE")
    assert quantizer.quantizable_layers == ("c1", "c2", "gap", "head")
    mixed = quantizer.quantize(["c2"])
    assert mixed.ok and mixed.float_layers == ("c2",)
    errors = quantizer.layer_errors(signals, max_samples=30).set_index("layer")
    # Before the debugger kept intermediate tensors, these read reused buffers: 1e37 here.
    assert errors.loc["pool", "rmse_over_scale"] < 1e-3  # max pooling int8 is exact
    assert errors.loc[["c1", "c2", "head"], "rmse_over_scale"].between(0.05, 2).all()
    assert errors["noise_to_signal"].between(0, 0.2).all()
    # What c2 reads is judged by all of c1..pool, not by the exact reshape that ends pool.
    assert errors.loc["c2", "input_noise_to_signal"] == errors.loc["pool", "noise_to_signal"]
    assert errors.loc["pool", "input_noise_to_signal"] == errors.loc["c1", "noise_to_signal"]


def _bn_activation(activation: str) -> tf_keras.Model:
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential(
        [
            layers.Input((8, 8, 3)),
            layers.Conv2D(4, 3, use_bias=False, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.Activation(activation, name="act"),
            layers.Flatten(name="flat"),
            layers.Dense(3, activation="softmax", name="head"),
        ],
        name=f"bn_{activation}",
    )


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).normal(size=(40, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "elu"])
def test_activation_after_batchnorm_converts(activation, images):
    model = _bn_activation(activation)
    expected = model(images, training=False).numpy()  # eager: no grappler, no fused kernel
    float32 = convert_model(model, "float32")
    assert float32.operators[0] == "CONV_2D"  # the BatchNorm folds into the convolution
    assert np.abs(run_tflite(float32, images) - expected).max() < 1e-5
    int8 = convert_model(model, "int8", representative_data=images)
    assert np.abs(run_tflite(int8, images) - expected).max() < 0.05


def test_tanh_after_batchnorm_runs_in_keras_without_the_remapper(images, digits):
    model = _bn_activation("tanh")
    with remapper_disabled():
        predicted = model.predict(images, verbose=0)
        assert not tf.config.optimizer.get_experimental_options()["remapping"]
    assert np.abs(predicted - model(images, training=False).numpy()).max() < 1e-5
    assert tf.config.optimizer.get_experimental_options().get("remapping", True)
    labels = np.arange(len(images)) % 3
    dataset = replace(
        digits,
        x_train=images,
        y_train=labels,
        x_val=images,
        y_val=labels,
        x_test=images,
        y_test=labels,
    )
    # Scoring the Keras model runs its graph: this crashed ("Fusion is not implemented").
    report = profile_sensitivity(model, dataset, top_k=1)
    assert set(report.table["layer"]) >= {"conv", "head"}


def _padded_block() -> tf_keras.Model:
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((16, 16, 3))
    x = layers.Conv2D(8, 1, use_bias=False, name="block_13_expand")(inputs)
    x = layers.BatchNormalization(name="block_13_expand_BN")(x)
    x = layers.ReLU(6.0, name="block_13_expand_relu")(x)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="block_13_pad")(x)
    x = layers.DepthwiseConv2D(3, strides=2, use_bias=False, name="block_13_depthwise")(x)
    x = layers.BatchNormalization(name="block_13_depthwise_BN")(x)
    x = layers.ReLU(6.0, name="block_13_depthwise_relu")(x)
    x = layers.Conv2D(8, 1, use_bias=False, name="block_13_project")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(10, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name="padded_block")


def test_padded_strided_depthwise_belongs_to_the_depthwise_layer():
    model = _padded_block()
    x = np.random.default_rng(3).uniform(-1, 1, size=(30, 16, 16, 3)).astype(np.float32)
    quantizer = SelectiveQuantizer(model, x)
    by_name = {layer.layer: layer for layer in quantizer.layers}
    depthwise = by_name["block_13_depthwise"]
    assert depthwise.layer_type == "DepthwiseConv2D"
    assert depthwise.op_names == ("DEPTHWISE_CONV_2D",)
    # The converter fused the padding into the convolution, whose name mentions it first.
    assert any("block_13_pad" in node for node in depthwise.nodes)
    assert "block_13_pad" not in quantizer.quantizable_layers
    mixed = quantizer.quantize(["block_13_depthwise"])
    assert mixed.ok and "DEQUANTIZE" in mixed.operators


def test_error_statistics_stay_bounded_on_probability_outputs():
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((6,))
    hidden = layers.Dense(8, activation="relu", name="hidden")(inputs)
    softmax = layers.Dense(10, activation="softmax", name="probs")(hidden)
    sigmoid = layers.Dense(3, activation="sigmoid", name="flags")(softmax)
    model = tf_keras.Model(inputs, sigmoid, name="probabilities")
    kernel, _ = model.get_layer("probs").get_weights()
    # Classes from probability ~1e-26 to ~1: int8 rounds most of them to 0.
    model.get_layer("probs").set_weights([kernel, np.linspace(-60, 0, 10).astype(np.float32)])
    x = np.random.default_rng(4).uniform(0, 1, size=(40, 6)).astype(np.float32)
    errors = SelectiveQuantizer(model, x).layer_errors(x).set_index("layer")
    figures = errors[["rmse_over_scale", "noise_to_signal", "input_noise_to_signal"]]
    assert np.isfinite(figures.to_numpy()[~np.isnan(figures.to_numpy())]).all()
    assert errors["noise_to_signal"].between(0, 1).all()
    assert errors.loc["probs", "noise_to_signal"] < 0.3  # tiny classes are silent, not lost
    assert errors["rmse_over_scale"].between(0, 2).all()


def test_noise_to_signal_of_a_near_silent_channel_is_bounded():
    # One channel at 1e-20 that int8 moves by a full step: relative to its own RMS that is
    # 2.6e17; against the 1 %-of-a-step floor and capped, it counts as (at most) lost.
    scale = 1 / 256
    float_values = np.stack([np.full(50, 0.5), np.full(50, 1e-20)], axis=-1).astype(np.float32)
    quantized = np.stack([np.full(50, 0), np.full(50, -127)], axis=-1).astype(np.int8)
    assert 0 <= _noise_to_signal(float_values, quantized, scale, -128) <= 1
    assert _noise_to_signal(float_values, quantized, scale, -128) == pytest.approx(0.5, abs=0.01)
