"""Quantization-aware training on the bundled digits: real tfmot runs, a few epochs each."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot

from zenml_quant._compat import keras3, tf_keras
from zenml_quant.errors import InvalidDatasetError, InvalidModelError, InvalidOptionError
from zenml_quant.evaluate import evaluate_keras
from zenml_quant.interpreter import make_interpreter, run_tflite
from zenml_quant.metrics import get_metric
from zenml_quant.models import load_model, save_model
from zenml_quant.qat import QATOptions, quantizable_layers, quantization_aware_training
from zenml_quant.types import ConversionOptions

QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapper
# Calibration matters only for layers QAT leaves in float; fewer samples keep the tests fast.
FAST_CONVERSION = ConversionOptions(calibration_samples=100)


class Scale(tf_keras.layers.Layer):
    """A custom layer (one learned scalar): not in tfmot's registry, so not quantizable."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")
        super().build(input_shape)

    def call(self, inputs):
        return inputs * self.scale


def custom_model() -> tf_keras.Model:
    """Conv -> Scale (custom) -> Flatten -> LayerNormalization -> Dense: two unquantizable."""
    tf_keras.utils.set_random_seed(0)
    layers = tf_keras.layers
    inputs = layers.Input((8, 8, 1))
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = Scale(name="scale")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.LayerNormalization(name="norm")(x)
    outputs = layers.Dense(10, name="logits")(x)
    return tf_keras.Model(inputs, outputs, name="custom")


def mean_top1(labels, outputs):
    """A user metric, to check that the run's metric reaches both evaluations."""
    return float(np.mean(np.argmax(outputs, axis=1) == labels))


USER_METRIC = get_metric(f"{__name__}:mean_top1", higher_is_better=True)


@pytest.fixture(scope="module")
def whole(digits, digits_model):
    """Whole-model QAT of the demo CNN, scored on test, plus the float weights from before."""
    before = [w.copy() for w in digits_model.get_weights()]
    result = quantization_aware_training(
        digits_model, digits, options=QATOptions(epochs=2), split="test", metric=USER_METRIC
    )
    return result, before


def test_whole_model_qat_gives_an_int8_model_with_the_trained_ranges(whole):
    result, _ = whole
    assert result.quantized_layers == (
        "conv1",
        "bn1",
        "relu1",
        "conv2",
        "pool",
        "flatten",
        "dropout",
        "logits",
    )
    assert result.float_layers == ()
    assert result.epochs_run == 2 and len(result.history["val_accuracy"]) == 2
    for name in ("conv1", "conv2", "logits"):
        assert isinstance(result.keras_model.get_layer(f"quant_{name}"), QuantizeWrapper)

    tflite = result.tflite
    assert tflite.ok and tflite.mode == "int8" and tflite.notes == ()
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(tflite.operators)
    assert not {"QUANTIZE", "DEQUANTIZE"} & set(tflite.operators)  # integer-only end to end
    assert tflite.inputs[0].dtype == "int8" and tflite.outputs[0].dtype == "int8"
    tensors = make_interpreter(tflite.content).get_tensor_details()
    assert {np.dtype(t["dtype"]).name for t in tensors} <= {"int8", "int32"}  # int32: biases

    # The output scale is the range QAT learned for the logits, not a calibrated one.
    logits = result.keras_model.get_layer("quant_logits")
    ranges = {w.name.split("/")[-1].split(":")[0]: w.numpy() for w in logits.weights}
    learned = float(ranges["post_activation_max"] - ranges["post_activation_min"]) / 255
    assert tflite.outputs[0].scale == pytest.approx(learned, rel=1e-3)


def test_whole_model_qat_accuracy_matches_between_keras_and_tflite(whole, digits, digits_model):
    result, _ = whole
    # The 180-image test split (the other half of the held-out digits is validation): at most
    # one image may differ.
    n = len(digits.y_test)
    assert result.split == "test" and n == 180
    assert abs(result.tflite_accuracy - result.keras_accuracy) <= 1 / n + 1e-9
    keras_outputs = result.keras_model.predict(digits.x_test, verbose=0)
    tflite_outputs = run_tflite(result.tflite, digits.x_test)
    assert result.keras_accuracy == pytest.approx(mean_top1(digits.y_test, keras_outputs))
    assert np.mean(keras_outputs.argmax(1) == tflite_outputs.argmax(1)) >= (n - 1) / n
    # Fine-tuning with fake quantization keeps the float model's accuracy (a few points).
    float_accuracy = evaluate_keras(digits_model, digits, split="test").accuracy
    assert result.keras_accuracy >= float_accuracy - 0.03
    assert result.tflite_accuracy >= float_accuracy - 0.03


def test_whole_model_qat_leaves_the_original_model_alone(whole, digits_model):
    _, before = whole
    after = digits_model.get_weights()
    assert len(after) == len(before)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert not any(isinstance(layer, QuantizeWrapper) for layer in digits_model.layers)


def test_qat_model_round_trips_through_save_and_load(whole, digits, tmp_path):
    result, _ = whole
    path = save_model(result.keras_model, tmp_path / "qat.keras")
    loaded = load_model(path)
    assert isinstance(loaded.get_layer("quant_conv2"), QuantizeWrapper)
    for saved, restored in zip(result.keras_model.get_weights(), loaded.get_weights()):
        assert np.array_equal(saved, restored)
    np.testing.assert_array_equal(
        loaded.predict(digits.x_test, verbose=0),
        result.keras_model.predict(digits.x_test, verbose=0),
    )


@pytest.mark.parametrize(
    "selection",
    [{"layers": ["conv2", "logits"]}, {"skip_layers": ["conv1", "bn1"]}],
    ids=["layers", "skip_layers"],
)
def test_selective_qat_keeps_the_other_layers_in_float(digits, digits_model, selection):
    result = quantization_aware_training(
        digits_model,
        digits,
        options=QATOptions(epochs=1),
        conversion=FAST_CONVERSION,
        **selection,
    )
    assert {"conv2", "logits"} <= set(result.quantized_layers)
    assert {"conv1", "bn1"} <= set(result.float_layers)
    assert set(result.quantized_layers).isdisjoint(result.float_layers)
    model = result.keras_model
    for name in result.float_layers:
        if name in ("conv1", "bn1"):  # never wrapped (a float layer feeding a quantized one
            # gets tfmot's output-only fake quantization, e.g. relu1 here)
            assert not isinstance(model.get_layer(name), QuantizeWrapper)
    assert isinstance(model.get_layer("quant_conv2"), QuantizeWrapper)
    assert "quant_conv1" not in {layer.name for layer in model.layers}
    assert result.tflite.inputs[0].dtype == "int8"
    assert "conv1" in result.tflite.notes[0]  # calibrated, not QAT-trained
    assert result.keras_accuracy > 0.8 and result.tflite_accuracy > 0.8


def test_quantizable_layers_follow_tfmots_registry(digits_model):
    supported, unsupported = quantizable_layers(digits_model)
    assert unsupported == [] and "bn1" in supported  # folded into conv1
    supported, unsupported = quantizable_layers(custom_model())
    assert supported == ["conv", "flatten", "logits"]
    assert unsupported == ["scale", "norm"]


def test_unquantizable_layers_are_skipped_and_named_with_the_reason(digits):
    model = custom_model()
    options = QATOptions(epochs=1, learning_rate=1e-3)
    result = quantization_aware_training(model, digits, options=options, conversion=FAST_CONVERSION)
    assert [name for name, _ in result.skipped_layers] == ["scale", "norm"]
    reasons = dict(result.skipped_layers)
    assert reasons["scale"].startswith("Scale") and reasons["norm"].startswith("LayerNormalization")
    assert result.float_layers == ("scale", "norm")
    assert result.quantized_layers == ("conv", "flatten", "logits")

    # Kept in float on request, they are float layers but not "skipped" ones.
    result = quantization_aware_training(
        model, digits, skip_layers=["scale", "norm"], options=options, conversion=FAST_CONVERSION
    )
    assert result.skipped_layers == ()
    assert result.float_layers == ("scale", "norm")
    assert result.quantized_layers == ("conv", "flatten", "logits")
    assert type(result.keras_model.get_layer("scale")) is Scale
    assert result.tflite.ok and result.tflite.outputs[0].dtype == "int8"
    assert 0.0 <= result.tflite_accuracy <= 1.0


def test_a_batch_norm_needs_the_layer_it_folds_into(digits, digits_model):
    with pytest.raises(InvalidOptionError, match=r"layers=\['conv1', 'bn1'\]"):
        quantization_aware_training(digits_model, digits, layers=["bn1"])


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({"layers": ["conv2", "nope"]}, r"\['nope'\].*'conv1'"),
        ({"skip_layers": ["missing"]}, r"\['missing'\].*'logits'"),
        ({"layers": ["conv2"], "skip_layers": ["conv1"]}, "not both"),
        ({"skip_layers": "conv1"}, "list of layer names"),
        ({"layers": []}, "selects nothing"),
    ],
)
def test_bad_layer_selections_are_refused(digits, digits_model, selection, expected):
    with pytest.raises(InvalidOptionError, match=expected):
        quantization_aware_training(digits_model, digits, **selection)


def test_tfmot_errors_name_the_layer(digits, digits_model, monkeypatch):
    def refuse(model, *args, **kwargs):
        raise RuntimeError("Layer conv2:<class 'Conv2D'> is not supported. You can quantize...")

    monkeypatch.setattr(tfmot.quantization.keras, "quantize_apply", refuse)
    with pytest.raises(InvalidOptionError, match=r"conv2.*skip_layers=\['conv2'\]"):
        quantization_aware_training(digits_model, digits, layers=["conv2"])


@pytest.mark.skipif(keras3 is None, reason="Keras 3 is not installed")
def test_keras3_models_are_rebuilt_as_tf_keras(digits):
    model = keras3.Sequential(
        [keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(10)]
    )
    supported, unsupported = quantizable_layers(model)
    assert len(supported) == 2 and unsupported == []
    result = quantization_aware_training(
        model, digits, options=QATOptions(epochs=1), conversion=FAST_CONVERSION
    )
    assert result.rebuilt_from_keras3 and isinstance(result.keras_model, tf_keras.Model)
    # (a Keras 3 model that cannot be rebuilt: tests/test_qat_skip.py)


def test_subclassed_and_unbuilt_models_are_refused(digits):
    class Subclassed(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = tf_keras.layers.Dense(10)

        def call(self, inputs):
            return self.dense(tf_keras.layers.Flatten()(inputs))

    with pytest.raises(InvalidModelError, match="subclassed"):
        quantization_aware_training(Subclassed(), digits)
    unbuilt = tf_keras.Sequential([tf_keras.layers.Flatten(), tf_keras.layers.Dense(10)])
    with pytest.raises(InvalidModelError, match="not built"):
        quantization_aware_training(unbuilt, digits)


def test_data_that_does_not_fit_the_model_is_refused(digits, tiny_dense):
    with pytest.raises(InvalidDatasetError, match="fit_to_model"):
        quantization_aware_training(tiny_dense, digits)  # 16 features, not 8x8x1 images
    three_classes = tf_keras.Sequential(
        [tf_keras.layers.Input((8, 8, 1)), tf_keras.layers.Flatten(), tf_keras.layers.Dense(3)]
    )
    with pytest.raises(InvalidDatasetError, match="label 9"):
        quantization_aware_training(three_classes, digits)


@pytest.mark.parametrize(
    "bad",
    [
        {"epochs": 0},
        {"batch_size": 0},
        {"learning_rate": 0.0},
        {"learning_rate": -1e-3},
        {"early_stopping_patience": -1},
        {"monitor": "val_auc"},
        {"epochs": 1.5},
    ],
)
def test_bad_options_are_refused(bad):
    with pytest.raises(InvalidOptionError, match=next(iter(bad))):
        QATOptions(**bad)


def test_bad_split_is_refused(digits, digits_model):
    with pytest.raises(InvalidOptionError, match="split"):
        quantization_aware_training(digits_model, digits, split="holdout")


def test_early_stopping_stops_and_restores_the_best_epoch(digits, digits_model):
    # A learning rate of 1 wrecks the weights in the first epoch; validation accuracy then
    # stops improving, so patience 1 ends training long before 10 epochs.
    options = QATOptions(epochs=10, learning_rate=1.0, early_stopping_patience=1)
    result = quantization_aware_training(
        digits_model, digits, options=options, conversion=FAST_CONVERSION
    )
    assert result.epochs_run < 10
    assert len(result.history["val_accuracy"]) == result.epochs_run
    # restore_best_weights: the returned model scores the best epoch's validation accuracy.
    assert result.split == "validation"
    assert result.keras_accuracy == pytest.approx(max(result.history["val_accuracy"]), abs=1e-6)
