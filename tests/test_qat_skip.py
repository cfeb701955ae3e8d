"""QAT skips the layers tfmot cannot annotate, and trains Keras 3 models as tf_keras rebuilds.

Tiny models on the bundled digits, one QAT epoch each (unless the test is about the defaults).
"Works" means: an integer-only int8 ``.tflite`` that runs and scores well above chance (10 %
for ten classes) on the test split, with the skipped layers named and explained.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras import quantize as tfmot_quantize

from zenml_quant._compat import keras3, tf_keras
from zenml_quant.demo import fit_classifier
from zenml_quant.errors import InvalidModelError, InvalidOptionError
from zenml_quant.interpreter import run_tflite
from zenml_quant.qat import QATOptions, QATResult, quantizable_layers, quantization_aware_training
from zenml_quant.types import ConversionOptions, LabeledDataset

QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapper
# Calibration only matters for the float layers; fewer samples keep the tests fast.
FAST = ConversionOptions(calibration_samples=100)
ONE_EPOCH = QATOptions(epochs=1)
# Five times chance for ten classes: a broken model or a broken conversion cannot reach it.
WELL_ABOVE_CHANCE = 0.5
layers = tf_keras.layers


def skipped_names(result: QATResult) -> list[str]:
    return [name for name, _ in result.skipped_layers]


def assert_int8_model_works(result: QATResult, data: LabeledDataset) -> float:
    """The ``.tflite`` is integer-only int8, runs, and scores well above chance on test."""
    tflite = result.tflite
    assert tflite.ok and tflite.mode == "int8"
    assert tflite.inputs[0].dtype == "int8" and tflite.outputs[0].dtype == "int8"
    outputs = run_tflite(tflite, data.x_test)
    assert outputs.shape == (len(data.x_test), 10)
    accuracy = float(np.mean(outputs.argmax(axis=1) == data.y_test))
    assert accuracy > WELL_ABOVE_CHANCE
    assert result.keras_accuracy > WELL_ABOVE_CHANCE
    return accuracy


def assert_float_in_keras_model(result: QATResult, name: str) -> None:
    """A skipped layer keeps its own class (float) in the QAT Keras model, unwrapped."""
    layer = result.keras_model.get_layer(name)
    assert not isinstance(layer, QuantizeWrapper)
    assert f"quant_{name}" not in {lay.name for lay in result.keras_model.layers}


# --- (a) Conv2D -> MaxPooling2D -> BatchNormalization -> ReLU -----------------------------------


@pytest.fixture(scope="module")
def pool_bn_model(digits):
    """A batch norm after pooling: tfmot cannot fold it into the convolution."""
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, name="conv")(inputs)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = tf_keras.Model(inputs, outputs, name="pool_bn")
    return fit_classifier(model, digits, epochs=4, batch_size=32)


def test_batch_norm_after_pooling_is_skipped_and_the_rest_trains(digits, pool_bn_model):
    result = quantization_aware_training(pool_bn_model, digits)  # no options at all

    assert skipped_names(result) == ["bn"]
    reason = dict(result.skipped_layers)["bn"]
    assert "BatchNormalization" in reason and "'pool'" in reason  # what it follows
    assert result.quantized_layers == ("conv", "pool", "relu", "flatten", "logits")
    assert result.float_layers == ("bn",)
    assert isinstance(result.keras_model.get_layer("quant_conv"), QuantizeWrapper)
    assert isinstance(result.keras_model.get_layer("quant_logits"), QuantizeWrapper)
    assert_float_in_keras_model(result, "bn")
    assert any("bn" in note and "float" in note for note in result.tflite.notes)
    assert result.epochs_run >= 1 and not result.rebuilt_from_keras3
    assert_int8_model_works(result, digits)


def test_a_named_layer_tfmot_cannot_annotate_is_skipped_not_fatal(digits, pool_bn_model):
    result = quantization_aware_training(
        pool_bn_model, digits, layers=["bn", "logits"], options=ONE_EPOCH, conversion=FAST
    )
    assert result.quantized_layers == ("logits",)  # layers= is respected: nothing else added
    assert skipped_names(result) == ["bn"]
    assert result.float_layers == ("conv", "pool", "bn", "relu", "flatten")
    assert_int8_model_works(result, digits)


def test_when_no_named_layer_can_be_annotated_the_error_says_what_to_do(digits, pool_bn_model):
    with pytest.raises(InvalidOptionError) as err:
        quantization_aware_training(pool_bn_model, digits, layers=["bn"])
    message = str(err.value)
    assert "bn (BatchNormalization" in message and "'pool'" in message
    assert "skip_layers=['bn']" in message and "post-training quantization" in message


def test_a_model_with_nothing_tfmot_can_annotate_is_refused(digits, rescaling_model):
    # Everything but the Rescaling layer is kept in float on request; Rescaling cannot be
    # annotated: there is nothing left to train with fake quantization.
    with pytest.raises(InvalidModelError, match=r"rescale \(Rescaling.*skip fewer layers"):
        quantization_aware_training(
            rescaling_model, digits, skip_layers=["conv", "flatten", "logits"]
        )


# --- (b) Rescaling, (c) Normalization, (d) Conv1D -----------------------------------------------


@pytest.fixture(scope="module")
def rescaling_model(digits):
    """Pixels 0..1 rescaled to -1..1 inside the model."""
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((8, 8, 1))
    x = layers.Rescaling(2.0, offset=-1.0, name="rescale")(inputs)
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = tf_keras.Model(inputs, outputs, name="rescaling")
    return fit_classifier(model, digits, epochs=2, batch_size=32)


def test_a_rescaling_input_layer_is_skipped(digits, rescaling_model):
    result = quantization_aware_training(
        rescaling_model, digits, options=ONE_EPOCH, conversion=FAST
    )
    assert skipped_names(result) == ["rescale"]
    assert "Rescaling" in result.skipped_layers[0][1]
    assert "preprocessing" in result.skipped_layers[0][1]
    assert result.quantized_layers == ("conv", "flatten", "logits")
    assert_float_in_keras_model(result, "rescale")
    assert_int8_model_works(result, digits)


def test_an_adapted_normalization_layer_is_skipped_and_keeps_its_statistics(digits):
    tf_keras.utils.set_random_seed(0)
    norm = layers.Normalization(name="norm")
    norm.adapt(digits.x_train)
    inputs = layers.Input((8, 8, 1))
    x = norm(inputs)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = fit_classifier(tf_keras.Model(inputs, outputs), digits, epochs=2, batch_size=32)

    result = quantization_aware_training(model, digits, options=ONE_EPOCH, conversion=FAST)
    assert skipped_names(result) == ["norm"]
    assert "Normalization" in result.skipped_layers[0][1]
    assert result.quantized_layers == ("flatten", "hidden", "logits")
    assert_float_in_keras_model(result, "norm")
    # The adapted mean and variance came along into the QAT model (not a fresh, unadapted one).
    for before, after in zip(
        norm.get_weights(), result.keras_model.get_layer("norm").get_weights()
    ):
        np.testing.assert_array_equal(before, after)
    assert_int8_model_works(result, digits)


def test_a_conv1d_model_trains_with_the_conv1d_in_float(digits):
    # The 8x8 digits as 64-step sequences with one channel.
    sequences = dataclasses.replace(
        digits,
        **{k: getattr(digits, k).reshape(-1, 64, 1) for k in ("x_train", "x_val", "x_test")},
    )
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((64, 1))
    x = layers.Conv1D(8, 3, activation="relu", name="conv1d")(inputs)
    x = layers.MaxPooling1D(name="pool1d")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, name="logits")(x)
    model = fit_classifier(tf_keras.Model(inputs, outputs), sequences, epochs=2, batch_size=32)

    result = quantization_aware_training(model, sequences, options=ONE_EPOCH, conversion=FAST)
    skipped = dict(result.skipped_layers)
    assert list(skipped) == ["conv1d", "pool1d"]  # neither is in tfmot 0.8.1's registry
    assert skipped["conv1d"].startswith("Conv1D") and skipped["pool1d"].startswith("MaxPooling1D")
    assert result.quantized_layers == ("flatten", "logits")
    assert_int8_model_works(result, sequences)


# --- tfmot itself is the final judge ------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "quoted"),
    [
        # tfmot's own wording for a layer it cannot wrap: the layer is named.
        (
            RuntimeError("Layer conv:<class 'tf_keras.src.Conv2D'> is not supported. You can .."),
            "RuntimeError: Layer conv:Conv2D is not supported)",
        ),
        # An error from deep inside tfmot that names no layer: found by bisection.
        (
            ValueError("Only some Keras activations under `keras.activations` are supported."),
            "ValueError: Only some Keras activations",
        ),
    ],
    ids=["named", "unnamed"],
)
def test_a_layer_only_tfmot_refuses_is_found_and_skipped(
    digits, rescaling_model, monkeypatch, refusal, quoted
):
    real_apply = tfmot.quantization.keras.quantize_apply
    calls = []

    def refuse_conv(model, *args, **kwargs):
        annotated = [
            layer.layer.name for layer in model.layers if type(layer).__name__ == "QuantizeAnnotate"
        ]
        calls.append(annotated)
        if "conv" in annotated:
            raise refusal
        return real_apply(model, *args, **kwargs)

    monkeypatch.setattr(tfmot.quantization.keras, "quantize_apply", refuse_conv)
    monkeypatch.setattr(tfmot_quantize, "quantize_apply", refuse_conv)  # quantize_model's
    result = quantization_aware_training(
        rescaling_model, digits, options=ONE_EPOCH, conversion=FAST
    )
    skipped = dict(result.skipped_layers)
    assert list(skipped) == ["rescale", "conv"]  # the registry's verdict, then tfmot's
    assert skipped["conv"].startswith("tfmot's quantize_apply refused it")
    assert quoted in skipped["conv"]
    assert result.quantized_layers == ("flatten", "logits")
    # Float weights; tfmot only fake-quantizes the output, as conv feeds a quantized layer.
    conv = result.keras_model.get_layer("quant_conv")
    assert type(conv.quantize_config).__name__ == "OutputOnlyConfig"
    # Bounded: one try, at most log2(3) + 1 bisection steps, one retry.
    assert len(calls) <= 4 and calls[-1] == ["flatten", "logits"]
    assert_int8_model_works(result, digits)


# --- (e) Keras 3 models -------------------------------------------------------------------------

needs_keras3 = pytest.mark.skipif(keras3 is None, reason="Keras 3 is not installed")


def fit_keras3(model, data: LabeledDataset, epochs: int = 2):
    model.compile(
        optimizer=keras3.optimizers.Adam(2e-3),
        loss=keras3.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@needs_keras3
def test_keras_resolves_to_keras3_next_to_tf_keras():
    # What `import keras` gives in this environment once zenml_quant has set
    # TF_USE_LEGACY_KERAS: Keras 3, a different class tree from tf_keras.
    import keras

    assert keras is keras3 and keras.__version__.startswith("3.")
    assert not issubclass(keras.Model, tf_keras.Model)


@needs_keras3
def test_a_keras3_functional_model_is_trained_through_a_tf_keras_rebuild(digits):
    keras3.utils.set_random_seed(0)
    k3 = keras3.layers
    inputs = keras3.Input((8, 8, 1))
    x = k3.Conv2D(8, 3, name="conv")(inputs)
    x = k3.BatchNormalization(name="bn")(x)  # right after the conv: folded, not skipped
    x = k3.ReLU(name="relu")(x)
    shortcut = k3.Conv2D(8, 1, padding="same", name="proj")(x)
    x = k3.Add(name="add")([x, shortcut])  # a call with a list of tensors
    x = k3.Flatten(name="flatten")(x)
    outputs = k3.Dense(10, name="logits")(x)
    model = fit_keras3(keras3.Model(inputs, outputs, name="k3_residual"), digits)
    before = [w.copy() for w in model.get_weights()]

    names = ["conv", "bn", "relu", "proj", "add", "flatten", "logits"]
    assert quantizable_layers(model) == (names, [])
    result = quantization_aware_training(model, digits, options=ONE_EPOCH, conversion=FAST)
    assert result.rebuilt_from_keras3
    assert isinstance(result.keras_model, tf_keras.Model)
    assert result.quantized_layers == tuple(names) and result.skipped_layers == ()
    assert isinstance(result.keras_model.get_layer("quant_conv"), QuantizeWrapper)
    assert "Keras 3" in result.tflite.notes[0]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    # QAT started from the trained weights: one epoch at 1e-4 could not reach this from scratch.
    accuracy = assert_int8_model_works(result, digits)
    assert accuracy > 0.8


@needs_keras3
def test_a_keras3_sequential_model_with_rescaling_is_rebuilt_and_skips_it(digits):
    keras3.utils.set_random_seed(0)
    model = keras3.Sequential(
        [
            keras3.Input((8, 8, 1)),
            keras3.layers.Rescaling(2.0, offset=-1.0, name="rescale"),
            keras3.layers.Flatten(name="flatten"),
            keras3.layers.Dense(10, name="logits"),
        ],
        name="k3_sequential",
    )
    model = fit_keras3(model, digits)
    result = quantization_aware_training(model, digits, options=ONE_EPOCH, conversion=FAST)
    assert result.rebuilt_from_keras3
    assert skipped_names(result) == ["rescale"]
    assert result.quantized_layers == ("flatten", "logits")
    assert_int8_model_works(result, digits)


@needs_keras3
def test_a_keras3_model_that_cannot_be_rebuilt_gets_a_clear_error(digits):
    class Scale(keras3.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

        def call(self, inputs):
            return inputs * self.scale

    inputs = keras3.Input((8, 8, 1))
    x = keras3.layers.Flatten()(Scale(name="scale")(inputs))
    model = keras3.Model(inputs, keras3.layers.Dense(10)(x), name="k3_custom")
    expected = (
        r"'k3_custom' is a Keras 3 model.*layer 'scale' \(Scale\).*tf_keras \(Keras 2\).*"
        r"tf_keras.models.load_model.*post-training quantization"
    )
    with pytest.raises(InvalidModelError, match=expected):
        quantization_aware_training(model, digits, options=ONE_EPOCH)
    with pytest.raises(InvalidModelError, match=expected):
        quantizable_layers(model)
