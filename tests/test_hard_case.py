"""The hard case: an outlier activation channel that breaks plain int8 but not the Keras model."""

from __future__ import annotations

import dataclasses

import _zoo_path  # noqa: F401  (puts the repository root on sys.path for `zoo`)
import numpy as np
import pytest

from zenml_quant._compat import keras3, tf_keras
from zenml_quant.convert import convert_model
from zenml_quant.errors import InvalidDatasetError, InvalidModelError, InvalidOptionError
from zenml_quant.evaluate import accuracy_from_outputs
from zenml_quant.interpreter import run_tflite
from zoo.hard_case import DEFAULT_FACTOR, add_activation_outlier, build_hard_case_model

layers = tf_keras.layers


def _activations(model, layer, x):
    return tf_keras.Model(model.inputs, model.get_layer(layer).output).predict(x, verbose=0)


def _outlier_unit(model, x):
    return int(np.argmax(_activations(model, "bottleneck", x).max(axis=0)))


@pytest.fixture(scope="module")
def hard_case(digits):
    """The hard-case CNN, trained once, and the same model without its outlier.

    Undoing the outlier (factor 1/DEFAULT_FACTOR on the same unit) gives back the trained model
    up to float rounding, so the pair isolates the outlier as the only difference.
    """
    hard = build_hard_case_model(digits, seed=0)
    unit = _outlier_unit(hard, digits.x_train)
    plain = add_activation_outlier(hard, "bottleneck", unit=unit, factor=1 / DEFAULT_FACTOR)
    return hard, plain, unit


def _int8_drop(model, dataset):
    keras = accuracy_from_outputs(model.predict(dataset.x_test, verbose=0), dataset.y_test)
    int8 = convert_model(model, "int8", representative_data=dataset.x_train)
    assert int8.ok, int8.error
    quantized = accuracy_from_outputs(run_tflite(int8, dataset.x_test), dataset.y_test)
    return keras, keras - quantized


def test_hard_case_architecture_keeps_the_weights_outside_the_outlier_pair(hard_case):
    hard, _, _ = hard_case
    names = [layer.name for layer in hard.layers]
    assert names[-2:] == ["bottleneck", "logits"]
    assert isinstance(hard.get_layer("bottleneck"), layers.Dense)
    assert hard.get_layer("bottleneck").get_config()["activation"] == "relu"
    pair = sum(hard.get_layer(name).count_params() for name in ("bottleneck", "logits"))
    # Keeping the pair in float must cost little size: most weights stay int8.
    assert pair < 0.05 * hard.count_params()
    assert hard.optimizer is not None  # compiled, so evaluate_keras reports Keras metrics too


def test_outlier_keeps_the_keras_function_and_widens_one_channel(hard_case, digits):
    hard, plain, unit = hard_case
    x = digits.x_test
    expected = plain.predict(x, verbose=0)
    assert np.allclose(hard.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    before = _activations(plain, "bottleneck", digits.x_train)
    after = _activations(hard, "bottleneck", digits.x_train)
    assert before[:, unit].max() > 0  # an active unit, or there would be no outlier
    assert after.max() / before.max() == pytest.approx(DEFAULT_FACTOR, rel=1e-3)
    others = np.delete(np.arange(after.shape[1]), unit)
    assert np.allclose(after[:, others], before[:, others], rtol=1e-5, atol=1e-5)


def test_plain_int8_breaks_on_the_outlier_and_only_because_of_it(hard_case, digits):
    hard, plain, _ = hard_case
    keras, drop_plain = _int8_drop(plain, digits)
    assert keras > 0.85
    assert drop_plain <= 0.015  # same weights without the outlier: int8 is fine (measured 0.0)
    hard_keras, drop_hard = _int8_drop(hard, digits)
    assert hard_keras == pytest.approx(keras, abs=1 / len(digits.y_test))
    assert drop_hard > 0.01  # the contract; measured ~85 points (int8 falls to chance)


def _tiny_mlp(activation="relu", *, bias=0.5):
    tf_keras.utils.set_random_seed(3)
    model = tf_keras.Sequential(
        [
            layers.Input((6,)),
            layers.Dense(
                5,
                activation=activation,
                bias_initializer=tf_keras.initializers.Constant(bias),
                name="a",
            ),
            layers.Dense(3, name="b"),
        ],
        name="tiny_mlp",
    )
    return model


def _tiny_functional():
    tf_keras.utils.set_random_seed(4)
    inputs = layers.Input((6,))
    a = layers.Dense(4, activation="linear", name="a")(inputs)
    b = layers.Dense(2, activation="softmax", name="b")(a)
    return tf_keras.Model(inputs, b, name="tiny_functional")


@pytest.fixture()
def features():
    return np.random.default_rng(0).normal(size=(32, 6)).astype(np.float32)


@pytest.mark.parametrize("make", [_tiny_mlp, _tiny_functional], ids=["sequential", "functional"])
def test_copy_is_independent_and_keeps_names(make, features):
    model = make()
    weights = [w.copy() for w in model.get_weights()]
    copy = add_activation_outlier(model, "a", unit=1, factor=250.0)
    assert copy is not model and copy.name == model.name
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    for before, now in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, now)  # the original is untouched
    original_ids = {id(v) for v in model.weights}
    assert not original_ids & {id(v) for v in copy.weights}
    kernel = copy.get_layer("a").get_weights()[0]
    np.testing.assert_allclose(kernel[:, 1], weights[0][:, 1] * 250.0, rtol=1e-6)
    np.testing.assert_allclose(kernel[:, 0], weights[0][:, 0])
    np.testing.assert_allclose(copy.get_layer("b").get_weights()[0][1], weights[2][1] / 250.0)
    np.testing.assert_allclose(
        copy.predict(features, verbose=0), model.predict(features, verbose=0), rtol=1e-4, atol=1e-5
    )


def test_dense_without_bias_is_supported(features):
    model = tf_keras.Sequential(
        [layers.Input((6,)), layers.Dense(4, use_bias=False, name="a"), layers.Dense(2, name="b")]
    )
    copy = add_activation_outlier(model, "a", unit=3, factor=10.0)
    np.testing.assert_allclose(
        copy.predict(features, verbose=0), model.predict(features, verbose=0), rtol=1e-4, atol=1e-5
    )


def test_unknown_layer_lists_the_dense_layers():
    with pytest.raises(InvalidOptionError, match=r"no layer 'nope'.*'a', 'b'"):
        add_activation_outlier(_tiny_mlp(), "nope")


def test_layer_must_be_dense():
    model = tf_keras.Sequential(
        [layers.Input((4, 4, 1)), layers.Flatten(name="flat"), layers.Dense(2, name="b")]
    )
    with pytest.raises(InvalidModelError, match=r"'flat' is a Flatten, not a Dense.*'b'"):
        add_activation_outlier(model, "flat")


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu6"])
def test_activation_must_be_positively_homogeneous(activation):
    with pytest.raises(InvalidModelError, match="positive homogeneity"):
        add_activation_outlier(_tiny_mlp(activation), "a")


def test_output_layer_is_refused():
    with pytest.raises(InvalidModelError, match="'b' is an output of the model"):
        add_activation_outlier(_tiny_mlp(), "b")


def test_next_layer_must_be_a_dense():
    model = tf_keras.Sequential(
        [
            layers.Input((6,)),
            layers.Dense(4, activation="relu", name="a"),
            layers.Dropout(0.1, name="drop"),
            layers.Dense(2, name="b"),
        ]
    )
    with pytest.raises(InvalidModelError, match="feeds Dropout 'drop', not a Dense"):
        add_activation_outlier(model, "a")


def test_layer_must_feed_exactly_one_dense():
    inputs = layers.Input((6,))
    a = layers.Dense(4, activation="relu", name="a")(inputs)
    model = tf_keras.Model(inputs, [layers.Dense(2, name="b")(a), layers.Dense(2, name="c")(a)])
    with pytest.raises(InvalidModelError, match=r"'a' feeds 2 layers \(b, c\)"):
        add_activation_outlier(model, "a")


def test_shared_next_dense_is_refused():
    inputs, other = layers.Input((4,)), layers.Input((4,))
    a = layers.Dense(4, activation="relu", name="a")(inputs)
    shared = layers.Dense(2, name="b")
    model = tf_keras.Model([inputs, other], [shared(a), shared(other)])
    with pytest.raises(InvalidModelError, match="'b' is shared"):
        add_activation_outlier(model, "a")


@pytest.mark.parametrize("unit", [-1, 5, 1.0, True])
def test_unit_must_be_in_range(unit):
    with pytest.raises(InvalidOptionError, match="has 5 units.*0 to 4"):
        add_activation_outlier(_tiny_mlp(), "a", unit=unit)


@pytest.mark.parametrize("factor", [0.0, -10.0, float("nan"), float("inf")])
def test_factor_must_be_positive(factor):
    with pytest.raises(InvalidOptionError, match="factor="):
        add_activation_outlier(_tiny_mlp(), "a", factor=factor)


def test_subclassed_and_unbuilt_models_are_refused():
    class Subclassed(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.a = layers.Dense(3, name="a")
            self.b = layers.Dense(2, name="b")

        def call(self, x):
            return self.b(self.a(x))

    subclassed = Subclassed()
    subclassed(np.zeros((1, 4), np.float32))
    with pytest.raises(InvalidModelError, match="subclassed"):
        add_activation_outlier(subclassed, "a")
    unbuilt = tf_keras.Sequential([layers.Dense(3, name="a"), layers.Dense(2, name="b")])
    with pytest.raises(InvalidModelError, match="not built"):
        add_activation_outlier(unbuilt, "a")


@pytest.mark.skipif(keras3 is None, reason="Keras 3 is not installed")
def test_keras3_model_is_refused():
    model = keras3.Sequential(
        [keras3.Input((4,)), keras3.layers.Dense(3, name="a"), keras3.layers.Dense(2, name="b")]
    )
    with pytest.raises(InvalidModelError, match="Keras 3"):
        add_activation_outlier(model, "a")


def test_build_checks_its_options_and_the_data_shape(digits):
    with pytest.raises(InvalidOptionError, match="epochs=0"):
        build_hard_case_model(digits, epochs=0)
    with pytest.raises(InvalidOptionError, match="bottleneck_units"):
        build_hard_case_model(digits, bottleneck_units=0)
    flat = dataclasses.replace(
        digits,
        x_train=digits.x_train.reshape(len(digits.x_train), -1),
        x_val=digits.x_val.reshape(len(digits.x_val), -1),
        x_test=digits.x_test.reshape(len(digits.x_test), -1),
    )
    with pytest.raises(InvalidDatasetError, match=r"CNN on images.*\(64,\)"):
        build_hard_case_model(flat)
