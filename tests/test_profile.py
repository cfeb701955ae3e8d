"""Per-layer profile of Keras models and peak activation memory of TFLite graphs.

Expected MACs and bytes are worked out by hand from the layer shapes in each test, not copied
from the code's output.
"""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import keras3, tf, tf_keras
from zenml_quant.errors import InvalidModelError
from zenml_quant.profile import (
    LAYER_TABLE_COLUMNS,
    layer_table,
    parameter_counts,
    peak_activation_bytes,
    tflite_graph,
    total_macs,
)

FLAVOURS = [pytest.param(tf_keras, id="tf_keras")]
if keras3 is not None:
    FLAVOURS.append(pytest.param(keras3, id="keras3"))

needs_keras3 = pytest.mark.skipif(keras3 is None, reason="Keras 3 is not installed")


def book_cnn(K):
    """The book's MNIST CNN (DESIGN.md section 5)."""
    L = K.layers
    return K.Sequential(
        [
            L.Input((28, 28, 1)),
            L.Conv2D(32, 3),
            L.BatchNormalization(),
            L.ReLU(),
            L.MaxPooling2D(2),
            L.Conv2D(64, 3),
            L.BatchNormalization(),
            L.ReLU(),
            L.MaxPooling2D(2),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(10),
        ]
    )


def single_layer(K, input_shape, layer):
    return K.Sequential([K.layers.Input(input_shape), layer])


def row(table, type_name):
    rows = table[table["type"] == type_name]
    assert len(rows) == 1, table
    return rows.iloc[0]


def convert(model, *, int8_samples=None):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_samples is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in int8_samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def op_names(content):
    return [op.op_name for op in tflite_graph(content).operators]


# --- layer_table ---------------------------------------------------------------------------


@pytest.mark.parametrize("K", FLAVOURS)
def test_book_cnn_figures(K):
    table = layer_table(book_cnn(K))
    assert tuple(table.columns) == LAYER_TABLE_COLUMNS
    assert "InputLayer" not in set(table["type"])
    assert len(table) == 11
    for column in LAYER_TABLE_COLUMNS[3:]:
        assert table[column].dtype == np.int64
    assert table["params"].sum() == 35_210
    convs = table[table["type"] == "Conv2D"]
    assert list(convs["macs"]) == [26 * 26 * 32 * 9, 11 * 11 * 64 * 9 * 32]  # 194,688; 2,230,272
    assert list(convs["output_shape"]) == ["(None, 26, 26, 32)", "(None, 11, 11, 64)"]
    assert row(table, "Dense")["macs"] == 1600 * 10
    assert row(table, "Flatten")["output_shape"] == "(None, 1600)"
    # BatchNorm (folded by the converter), ReLU, pooling, Flatten, Dropout: no MACs.
    assert table.loc[~table["type"].isin(["Conv2D", "Dense"]), "macs"].eq(0).all()
    assert table["weight_bytes_float32"].sum() == 4 * 35_210


@needs_keras3
def test_book_cnn_same_in_both_flavours():
    old, new = layer_table(book_cnn(tf_keras)), layer_table(book_cnn(keras3))
    for column in ("type", "output_shape", "params", "macs", "weight_bytes_int8"):
        assert list(old[column]) == list(new[column]), column


@pytest.mark.parametrize("K", FLAVOURS)
def test_totals_and_parameter_counts(K):
    model = book_cnn(K)
    assert total_macs(model) == 194_688 + 2_230_272 + 16_000
    # The two BatchNorms hold moving mean and variance: 2 * (32 + 64) non-trainable values.
    assert parameter_counts(model) == (35_210, 35_210 - 192)


@pytest.mark.parametrize("K", FLAVOURS)
def test_dense_on_sequence_counts_every_position(K):
    table = layer_table(single_layer(K, (5, 7), K.layers.Dense(3)))
    assert row(table, "Dense")["macs"] == 5 * 7 * 3
    assert row(table, "Dense")["output_shape"] == "(None, 5, 3)"


@pytest.mark.parametrize("K", FLAVOURS)
def test_depthwise_conv(K):
    layer = K.layers.DepthwiseConv2D(3, depth_multiplier=2)
    r = row(layer_table(single_layer(K, (10, 10, 4), layer)), "DepthwiseConv2D")
    assert r["output_shape"] == "(None, 8, 8, 8)"
    assert r["macs"] == 8 * 8 * 4 * 2 * 9


@pytest.mark.parametrize("K", FLAVOURS)
def test_separable_conv_is_depthwise_plus_pointwise(K):
    layer = K.layers.SeparableConv2D(6, 3, depth_multiplier=2)
    r = row(layer_table(single_layer(K, (10, 10, 4), layer)), "SeparableConv2D")
    assert r["macs"] == 8 * 8 * (4 * 2) * 9 + 8 * 8 * (4 * 2) * 6
    # depthwise kernel 3*3*4*2, pointwise 1*1*8*6, bias 6 (int32)
    assert r["params"] == 72 + 48 + 6
    assert r["weight_bytes_int8"] == 72 + 48 + 4 * 6


@pytest.mark.parametrize("K", FLAVOURS)
def test_conv_transpose_counts_input_pixels(K):
    layer = K.layers.Conv2DTranspose(5, 3, strides=2)
    r = row(layer_table(single_layer(K, (4, 4, 3), layer)), "Conv2DTranspose")
    assert r["output_shape"] == "(None, 9, 9, 5)"
    assert r["macs"] == 4 * 4 * 3 * 9 * 5


@pytest.mark.parametrize("K", FLAVOURS)
def test_grouped_conv(K):
    r = row(layer_table(single_layer(K, (6, 6, 4), K.layers.Conv2D(8, 3, groups=2))), "Conv2D")
    assert r["macs"] == 4 * 4 * 8 * 9 * (4 // 2)
    assert r["params"] == 3 * 3 * 2 * 8 + 8


@pytest.mark.parametrize("K", FLAVOURS)
def test_conv1d_and_channels_first(K):
    r = row(layer_table(single_layer(K, (12, 3), K.layers.Conv1D(4, 5))), "Conv1D")
    assert r["macs"] == 8 * 4 * 5 * 3
    cf = K.layers.Conv2D(4, 3, data_format="channels_first")
    r = row(layer_table(single_layer(K, (3, 8, 8), cf)), "Conv2D")
    assert r["output_shape"] == "(None, 4, 6, 6)"
    assert r["macs"] == 6 * 6 * 4 * 9 * 3


@pytest.mark.parametrize("K", FLAVOURS)
def test_int8_bytes_keep_biases_in_int32(K):
    L = K.layers
    model = K.Sequential(
        [L.Input((16,)), L.Dense(10), L.Dense(4, use_bias=False), L.BatchNormalization()]
    )
    table = layer_table(model)
    with_bias, no_bias = table[table["type"] == "Dense"].itertuples()
    assert (with_bias.params, with_bias.weight_bytes_int8) == (170, 160 + 4 * 10)
    assert with_bias.weight_bytes_float32 == 4 * 170
    assert (no_bias.params, no_bias.weight_bytes_int8) == (40, 40)
    # gamma, beta, moving mean and variance: 1 byte each (beta is not a bias)
    assert row(table, "BatchNormalization")["weight_bytes_int8"] == 4 * 4


@pytest.mark.parametrize("K", FLAVOURS)
def test_shared_layer_and_nested_model(K):
    L = K.layers
    inp = L.Input((10, 6))
    shared = L.Dense(6, name="shared")
    y = shared(shared(inp))  # two calls, 10*6*6 MACs each
    inner = K.Sequential([L.Input((10, 6)), L.Conv1D(5, 3, name="c1")], name="inner")
    model = K.Model(inp, L.Concatenate()([inner(y), inner(y)]))
    table = layer_table(model).set_index("layer")
    assert table.loc["shared", "macs"] == 2 * 10 * 6 * 6
    assert table.loc["shared", "params"] == 42
    assert table.loc["inner/c1", "macs"] == 2 * 8 * 5 * 3 * 6
    assert table.loc["inner/c1", "output_shape"] == "(None, 8, 5)"


@pytest.mark.parametrize("K", FLAVOURS)
def test_rejects_models_without_a_graph(K):
    unbuilt = K.Sequential([K.layers.Dense(3)])
    with pytest.raises(InvalidModelError, match="Input layer"):
        layer_table(unbuilt)
    with pytest.raises(InvalidModelError, match="got str"):
        layer_table("model.keras")


# --- TFLite graph and peak memory ------------------------------------------------------------


def dense_chain():
    L = tf_keras.layers
    return tf_keras.Sequential([L.Input((16,)), L.Dense(32), L.Dense(8)])


def test_tflite_graph_lists_ops_and_tensors():
    graph = tflite_graph(convert(dense_chain()))
    assert [op.op_name for op in graph.operators] == ["FULLY_CONNECTED"] * 2
    tensors = {t.tensor_index: t for t in graph.tensors}
    assert all(i >= 0 for op in graph.operators for i in op.inputs + op.outputs)
    (inp,), (out,) = graph.inputs, graph.outputs
    assert graph.operators[0].inputs[0] == inp and graph.operators[-1].outputs == (out,)
    assert tensors[inp].shape == (1, 16) and tensors[inp].nbytes == 64
    assert not tensors[inp].is_constant and not tensors[out].is_constant
    assert tensors[out].dtype == "float32" and tensors[out].nbytes == 8 * 4
    weights = tensors[graph.operators[0].inputs[1]]
    assert weights.is_constant and weights.shape == (32, 16) and weights.nbytes == 32 * 16 * 4


def test_peak_of_a_chain():
    content = convert(dense_chain())
    assert op_names(content) == ["FULLY_CONNECTED"] * 2
    # op 1 holds input (16) + hidden (32); op 2 holds hidden (32) + output (8); float32.
    assert peak_activation_bytes(content) == max(16 * 4 + 32 * 4, 32 * 4 + 8 * 4) == 192


def test_peak_counts_both_branches():
    L = tf_keras.layers
    inp = L.Input((16,))
    model = tf_keras.Model(inp, L.Add()([L.Dense(32)(inp), L.Dense(32)(inp)]))
    content = convert(model)
    assert sorted(op_names(content)) == ["ADD", "FULLY_CONNECTED", "FULLY_CONNECTED"]
    # At ADD both branch outputs and the sum are live: 3 * 32 floats. The second
    # FULLY_CONNECTED holds only input + first branch + its own output (64 + 128 + 128).
    assert peak_activation_bytes(content) == 3 * 32 * 4


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
def test_int8_peak_is_about_a_quarter_of_float():
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    model = tf_keras.Sequential(
        [
            L.Input((12, 12, 1)),
            L.Conv2D(8, 3, activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(8, 3, activation="relu"),
            L.Flatten(),
            L.Dense(4),
        ]
    )
    samples = np.random.default_rng(0).uniform(-1, 1, size=(8, 12, 12, 1)).astype(np.float32)
    float_content = convert(model)
    int8_content = convert(model, int8_samples=samples)
    ops = ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert op_names(float_content) == op_names(int8_content) == ops
    graph = tflite_graph(int8_content)
    assert {t.dtype for t in graph.tensors if t.tensor_index in graph.inputs + graph.outputs} == {
        "int8"
    }
    # Peak at MAX_POOL_2D: its input 10*10*8 and output 5*5*8 values.
    float_peak = peak_activation_bytes(float_content)
    assert float_peak == 4 * (10 * 10 * 8 + 5 * 5 * 8)
    assert 3 <= float_peak / peak_activation_bytes(int8_content) <= 4.5


def test_bad_bytes_raise_a_clear_error():
    with pytest.raises(InvalidModelError, match="flatbuffer"):
        peak_activation_bytes(b"not a tflite model")
