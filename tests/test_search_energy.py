"""The per-inference energy estimate of zenml_quant.search.energy."""

from __future__ import annotations

import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.errors import InvalidModelError, InvalidOptionError
from zenml_quant.profile import layer_table
from zenml_quant.search.energy import ENERGY_COLUMNS, EnergyTable, estimate_energy

layers = tf_keras.layers


def _conv_model():
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(4, 3, name="conv"),
            layers.BatchNormalization(name="bn"),
            layers.ReLU(name="relu"),
            layers.MaxPooling2D(name="pool"),
            layers.Flatten(name="flat"),
            layers.Dropout(0.2, name="drop"),
            layers.Dense(10, name="head"),
        ],
        name="conv_model",
    )


def _dense_model():
    return tf_keras.Sequential(
        [layers.Input((16,)), layers.Dense(8, name="d1"), layers.Dense(3, name="d2")],
        name="dense_model",
    )


def test_estimate_is_positive_with_one_row_per_profiled_layer():
    model = _conv_model()
    estimate = estimate_energy(model)
    frame = estimate.per_layer
    assert estimate.total_uj > 0
    assert list(frame.columns) == list(ENERGY_COLUMNS)
    assert list(frame["layer"]) == list(layer_table(model)["layer"])
    assert frame["total_uj"].sum() == pytest.approx(estimate.total_uj)
    assert estimate.compute_uj + estimate.weight_uj + estimate.activation_uj == pytest.approx(
        estimate.total_uj
    )
    assert set(frame["bits"]) == {8}
    assert (frame[["compute_uj", "weight_uj", "activation_uj"]] >= 0).all().all()


def test_free_and_mac_free_layers():
    frame = estimate_energy(_conv_model()).per_layer.set_index("layer")
    # Folded into the conv, removed at inference, or run in place: nothing at all.
    for name in ("bn", "drop", "flat"):
        assert frame.loc[name, "total_uj"] == 0
    # Pooling and activations: only their activation traffic.
    for name in ("relu", "pool"):
        assert frame.loc[name, "macs"] == 0
        assert frame.loc[name, "compute_uj"] == 0 and frame.loc[name, "weight_uj"] == 0
        assert frame.loc[name, "activation_uj"] > 0
    # ReLU reads and writes 6x6x4 int8 values at 10 pJ per 64 bits.
    assert frame.loc["relu", "activation_uj"] == pytest.approx(2 * 144 * 8 * (10 / 64) * 1e-6)


def test_int8_is_cheaper_than_float32_for_a_conv_model():
    model = _conv_model()
    int8 = estimate_energy(model)
    float32 = estimate_energy(model, quantized=False)
    assert set(float32.per_layer["bits"]) == {32}
    assert int8.total_uj < float32.total_uj / 3
    assert int8.compute_uj * 20 == pytest.approx(float32.compute_uj)  # 0.23 pJ vs 4.6 pJ a MAC


def test_a_float_layer_raises_the_cost_of_that_layer_only():
    model = _conv_model()
    int8 = estimate_energy(model).per_layer.set_index("layer")
    mixed_estimate = estimate_energy(model, float_layers=["conv"])
    mixed = mixed_estimate.per_layer.set_index("layer")
    assert mixed_estimate.total_uj > int8["total_uj"].sum()
    assert mixed.loc["conv", "bits"] == 32
    assert mixed.loc["conv", "total_uj"] > int8.loc["conv", "total_uj"]
    others = [n for n in mixed.index if n != "conv"]
    assert mixed.loc[others, "total_uj"].tolist() == pytest.approx(
        int8.loc[others, "total_uj"].tolist()
    )
    # In a float model the list changes nothing: every layer is already float.
    float32 = estimate_energy(model, quantized=False)
    assert estimate_energy(model, quantized=False, float_layers=["conv"]).total_uj == (
        pytest.approx(float32.total_uj)
    )


def test_dense_model_matches_a_hand_computation_from_the_default_table():
    frame = estimate_energy(_dense_model()).per_layer.set_index("layer")
    # d1: 16x8 MACs; 128 int8 weights + 8 int32 biases; reads 16 and writes 8 int8 values.
    assert frame.loc["d1", "macs"] == 128
    assert frame.loc["d1", "compute_uj"] == pytest.approx(128 * (0.2 + 0.03) * 1e-6)
    assert frame.loc["d1", "weight_uj"] == pytest.approx((128 * 8 + 8 * 32) * (20 / 64) * 1e-6)
    assert frame.loc["d1", "activation_uj"] == pytest.approx((16 + 8) * 8 * (10 / 64) * 1e-6)
    # d2 in float32: 8x3 MACs at 3.7 + 0.9 pJ; 27 float weights; reads 8 and writes 3 values.
    floats = estimate_energy(_dense_model(), float_layers=["d2"]).per_layer.set_index("layer")
    assert floats.loc["d2", "compute_uj"] == pytest.approx(24 * (3.7 + 0.9) * 1e-6)
    assert floats.loc["d2", "weight_uj"] == pytest.approx(27 * 32 * (20 / 64) * 1e-6)
    assert floats.loc["d2", "activation_uj"] == pytest.approx((8 + 3) * 32 * (10 / 64) * 1e-6)


def test_a_custom_table_is_used_for_every_term():
    table = EnergyTable(
        int8_mult_pj=1.0,
        int8_add_pj=1.0,
        float32_mult_pj=0,
        float32_add_pj=0,
        weight_pj_per_bit=0,
        activation_pj_per_bit=0,
    )
    estimate = estimate_energy(_dense_model(), table=table)
    # Only the MACs cost anything: (128 + 24) MACs at 2 pJ.
    assert estimate.total_uj == pytest.approx((128 + 24) * 2 * 1e-6)
    assert estimate.compute_uj == pytest.approx(estimate.total_uj)


def test_a_shared_layer_costs_once_per_call():
    shared = layers.Dense(4, name="shared")
    inputs = layers.Input((6,))
    outputs = layers.Add(name="add")([shared(inputs), shared(inputs)])
    model = tf_keras.Model(inputs, outputs)
    frame = estimate_energy(model).per_layer.set_index("layer")
    single = tf_keras.Sequential([layers.Input((6,)), layers.Dense(4, name="shared")])
    once = estimate_energy(single).per_layer.set_index("layer")
    assert frame.loc["shared", "total_uj"] == pytest.approx(2 * once.loc["shared", "total_uj"])
    # Add reads two 4-value inputs and writes one.
    assert frame.loc["add", "activation_uj"] == pytest.approx(12 * 8 * (10 / 64) * 1e-6)


def test_unknown_float_layer_lists_the_valid_names():
    with pytest.raises(InvalidOptionError, match=r"'nope'.*d1, d2"):
        estimate_energy(_dense_model(), float_layers=["d1", "nope"])


def test_bad_arguments_raise_clear_errors():
    model = _dense_model()
    with pytest.raises(InvalidOptionError, match="list of layer names"):
        estimate_energy(model, float_layers="d1")
    with pytest.raises(InvalidOptionError, match="quantized"):
        estimate_energy(model, quantized="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="EnergyTable"):
        estimate_energy(model, table={"int8_mult_pj": 1})  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="weight_pj_per_bit"):
        EnergyTable(weight_pj_per_bit=-1)
    with pytest.raises(InvalidOptionError, match="float32_add_pj"):
        EnergyTable(float32_add_pj=float("nan"))
    with pytest.raises(InvalidOptionError, match="8-bit and 32-bit"):
        EnergyTable().mac_pj(4)
    with pytest.raises(InvalidModelError):
        estimate_energy("not a model")


def test_unknown_activation_size_raises_invalid_model():
    inputs = layers.Input((None, None, 3))
    model = tf_keras.Model(inputs, layers.ReLU(name="relu")(inputs))
    with pytest.raises(InvalidModelError, match="fixed input shape"):
        estimate_energy(model)
