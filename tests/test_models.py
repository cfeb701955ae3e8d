"""Model I/O: both Keras flavours, every format, and every refusal with its message."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from zenml_quant._compat import keras3, tf, tf_keras
from zenml_quant.errors import InvalidModelError
from zenml_quant.models import (
    check_model,
    count_params,
    input_shape,
    input_shapes,
    load_model,
    model_flavour,
    num_outputs,
    save_model,
)

X = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)


def _build(keras, kind: str, *extra):
    """A 6 -> 4 -> 3 MLP, plus ``extra`` layers at the end."""
    keras.utils.set_random_seed(0)
    layers = [keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3), *extra]
    if kind == "sequential":
        return keras.Sequential([keras.Input((6,)), *layers])
    x = inputs = keras.Input((6,))
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def _save(model, path, **kwargs):
    with warnings.catch_warnings():  # tf_keras warns that .h5 is a legacy format
        warnings.simplefilter("ignore")
        model.save(str(path), **kwargs)
    return path


def _assert_same(loaded, original):
    np.testing.assert_allclose(np.asarray(loaded(X)), np.asarray(original(X)), rtol=1e-6, atol=1e-6)


def _lambda(keras):
    return keras.layers.Lambda(lambda x: x * 2.0, name="double_it")


def _subclassed(keras):
    class Sub(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(X)
    return model


def _times_two(keras):
    """An unregistered custom layer class, invisible to the loader by module lookup."""

    class TimesTwo(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    return TimesTwo


@pytest.mark.parametrize(
    ("flavour", "kind", "fmt"),
    [
        ("tf_keras", "sequential", "model.keras"),
        ("tf_keras", "functional", "model.keras"),
        ("keras3", "sequential", "model.keras"),
        ("keras3", "functional", "model.keras"),
        ("tf_keras", "sequential", "model.h5"),
        ("tf_keras", "functional", "model.hdf5"),
        ("keras3", "functional", "model.h5"),
        ("tf_keras", "functional", "saved_model_dir"),
    ],
)
def test_round_trip_keeps_flavour_and_predictions(tmp_path, flavour, kind, fmt):
    original = _build(tf_keras if flavour == "tf_keras" else keras3, kind)
    extra = {"save_format": "tf"} if fmt == "saved_model_dir" else {}
    loaded = load_model(_save(original, tmp_path / fmt, **extra))
    assert model_flavour(loaded) == flavour
    assert type(loaded).__name__ == type(original).__name__
    _assert_same(loaded, original)
    check_model(loaded)


@pytest.mark.parametrize(
    ("flavour", "fmt"),
    [
        ("tf_keras", "m.keras"),
        ("tf_keras", "m.h5"),
        ("tf_keras", "saved_model_dir"),
        ("keras3", "m.keras"),
        ("keras3", "m.h5"),
    ],
)
def test_lambda_refused_by_default(tmp_path, flavour, fmt):
    keras = tf_keras if flavour == "tf_keras" else keras3
    extra = {"save_format": "tf"} if fmt == "saved_model_dir" else {}
    path = _save(_build(keras, "sequential", _lambda(keras)), tmp_path / fmt, **extra)
    with pytest.raises(InvalidModelError, match="Lambda") as info:
        load_model(path)
    message = str(info.value)
    assert "'double_it'" in message
    assert "runs on load" in message and "allow_unsafe=True" in message


@pytest.mark.parametrize(
    ("flavour", "fmt"), [("tf_keras", "m.keras"), ("tf_keras", "m.h5"), ("keras3", "m.keras")]
)
def test_lambda_loads_with_allow_unsafe(tmp_path, flavour, fmt):
    keras = tf_keras if flavour == "tf_keras" else keras3
    original = _build(keras, "functional", _lambda(keras))
    loaded = load_model(_save(original, tmp_path / fmt), allow_unsafe=True)
    assert model_flavour(loaded) == flavour
    _assert_same(loaded, original)


@pytest.mark.parametrize(
    ("flavour", "fmt"), [("tf_keras", "m.keras"), ("tf_keras", "m.h5"), ("keras3", "m.keras")]
)
def test_unknown_custom_layer_named_then_loaded_with_custom_objects(tmp_path, flavour, fmt):
    keras = tf_keras if flavour == "tf_keras" else keras3
    layer_cls = _times_two(keras)
    original = _build(keras, "functional", layer_cls())
    path = _save(original, tmp_path / fmt)
    with pytest.raises(InvalidModelError, match="TimesTwo") as info:
        load_model(path)
    assert 'custom_objects={"TimesTwo": TimesTwo}' in str(info.value)
    assert "register_keras_serializable" in str(info.value)
    loaded = load_model(path, custom_objects={"TimesTwo": layer_cls})
    _assert_same(loaded, original)


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_subclassed_model_refused_in_memory(flavour):
    model = _subclassed(tf_keras if flavour == "tf_keras" else keras3)
    with pytest.raises(InvalidModelError, match="subclassed models are not supported"):
        check_model(model)


@pytest.mark.parametrize(
    ("flavour", "fmt"), [("tf_keras", "m.keras"), ("tf_keras", "sm_dir"), ("keras3", "m.keras")]
)
def test_subclassed_model_refused_from_file(tmp_path, flavour, fmt):
    keras = tf_keras if flavour == "tf_keras" else keras3
    model = _subclassed(keras)
    extra = {"save_format": "tf"} if fmt == "sm_dir" else {}
    path = _save(model, tmp_path / fmt, **extra)
    with pytest.raises(InvalidModelError, match="subclassed") as info:
        load_model(path)
    assert "Functional API" in str(info.value)
    # Even with its class at hand, the loaded object is refused on what it is.
    with pytest.raises(InvalidModelError, match="subclassed"):
        load_model(path, custom_objects={"Sub": type(model)})


def test_missing_path(tmp_path):
    with pytest.raises(InvalidModelError, match="no model at"):
        load_model(tmp_path / "nope.keras")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00")
    with pytest.raises(InvalidModelError, match="unsupported model format") as info:
        load_model(path)
    assert (
        ".keras" in str(info.value) and ".h5" in str(info.value) and "SavedModel" in str(info.value)
    )
    with pytest.raises(InvalidModelError, match="without saved_model.pb"):
        load_model(tmp_path)


@pytest.mark.parametrize("name", ["broken.keras", "broken.h5"])
def test_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not a model" * 10)
    with pytest.raises(InvalidModelError, match="could not read model file") as info:
        load_model(path)
    assert name in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_truncated_keras_zip(tmp_path):
    path = _save(_build(tf_keras, "sequential"), tmp_path / "m.keras")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InvalidModelError, match="m.keras"):
        load_model(path)


def test_savedmodel_without_keras_metadata(tmp_path):
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    tf.saved_model.save(module, str(tmp_path / "plain"))
    with pytest.raises(InvalidModelError, match="not a Keras model"):
        load_model(tmp_path / "plain")


@pytest.mark.parametrize(
    ("obj", "phrase"),
    [("model.keras", "got builtins.str; to read a file"), (42, "got builtins.int")],
)
def test_check_model_refuses_non_models(obj, phrase):
    with pytest.raises(InvalidModelError, match="expected a Keras model") as info:
        check_model(obj)
    assert phrase in str(info.value)


def test_check_model_refuses_a_layer():
    with pytest.raises(InvalidModelError, match="Dense"):
        check_model(tf_keras.layers.Dense(3))


@pytest.mark.parametrize("keras", [tf_keras, keras3], ids=["tf_keras", "keras3"])
def test_check_model_takes_several_inputs_and_outputs(keras):
    a, b = keras.Input((3,), name="a"), keras.Input((4,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    two_in = keras.Model([a, b], keras.layers.Dense(2)(joined))
    check_model(two_in)
    assert input_shapes(two_in) == {"a": (3,), "b": (4,)}
    x = keras.Input((3,))
    two_out = keras.Model(x, [keras.layers.Dense(2)(x), keras.layers.Dense(1)(x)])
    check_model(two_out)  # the first output is the scored one (zenml_quant.outputs)
    assert num_outputs(two_out) == 2


@pytest.mark.parametrize("keras", [tf_keras, keras3], ids=["tf_keras", "keras3"])
def test_check_model_refuses_unbuilt_sequential(keras):
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(InvalidModelError, match="Input layer"):
        check_model(model)
    model.build((None, 6))
    check_model(model)
    assert input_shape(model) == (6,)


@pytest.mark.parametrize("keras", [tf_keras, keras3], ids=["tf_keras", "keras3"])
def test_shapes_and_params(keras):
    conv = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    assert input_shape(conv) == (8, 8, 1)
    assert num_outputs(conv) == 1
    assert num_outputs(_build(keras, "functional")) == 3
    # conv 3*3*1*2+2, BN 4*2 (2 gammas + 2 betas trainable), dense 72*1+1
    assert count_params(conv) == (20 + 8 + 73, 20 + 4 + 73)
    assert count_params(conv)[0] == conv.count_params()


@pytest.mark.parametrize("keras", [tf_keras, keras3], ids=["tf_keras", "keras3"])
def test_save_model_writes_native_keras(tmp_path, keras):
    model = _build(keras, "functional")
    path = save_model(model, tmp_path / "sub" / "model.keras")
    assert path.is_file()
    loaded = load_model(path)
    assert model_flavour(loaded) == model_flavour(model)
    _assert_same(loaded, model)
    with pytest.raises(InvalidModelError, match="native .keras"):
        save_model(model, tmp_path / "model.h5")
