"""Calibrating once: every int8 model quantized from a shared calibration is the model that
calibrating again would have given, on the zoo's architectures, and a calibration is never
used for another model, other data or other options."""

from __future__ import annotations

import _zoo_path  # noqa: F401  (puts the repository root, where zoo/ lives, on sys.path)
import numpy as np
import pytest

from zenml_quant import calibration as calibration_module
from zenml_quant.calibration import (
    calibrate,
    check_calibrated,
    data_fingerprint,
    int8_from_calibrated,
    model_fingerprint,
)
from zenml_quant.candidates import calibrate_candidate, convert_candidate
from zenml_quant.convert import convert_model
from zenml_quant.errors import ConversionError, InvalidOptionError
from zenml_quant.inputs import pack
from zenml_quant.interpreter import run_tflite
from zenml_quant.ptq import quantize_post_training
from zenml_quant.selective import SelectiveQuantizer
from zenml_quant.types import ConversionOptions
from zoo import ZOO

# Depthwise + BatchNorm, residual adds, a fused LSTM, a GRU unrolled for int8, two inputs, an
# autoencoder, a Keras 3 model (converted through its SavedModel export) and preprocessing
# layers in the graph.
ARCHITECTURES = (
    "mobilenet_v2",
    "resnet8",
    "lstm_classifier",
    "gru_classifier",
    "two_input_net",
    "dense_autoencoder",
    "keras3_cnn",
    "rescaling_cnn",
)


def _features(arrays, split: str) -> np.ndarray:
    """A split's examples: the array, or one structured array for several named inputs."""
    if f"x_{split}" in arrays:
        return arrays[f"x_{split}"]
    prefix = f"x_{split}_"
    return pack({k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)})


def _same_model(a, b, x, mode="int8") -> None:
    # Not byte for byte: a model converted at batch size 1 (recurrent layers) carries traced
    # function names with a per-process counter.
    assert a.ok and b.ok, (a.error, b.error)
    assert a.mode == b.mode == mode
    assert a.operators == b.operators
    assert a.size_bytes == b.size_bytes
    assert [t.dtype for t in a.inputs] == [t.dtype for t in b.inputs]
    np.testing.assert_array_equal(run_tflite(a, x), run_tflite(b, x))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_int8_from_the_shared_calibration_is_the_converters_int8(name):
    entry = ZOO[name]
    model = entry.build_tiny(seed=0)
    arrays = entry.tiny_data(seed=0)
    x, x_test = _features(arrays, "train"), _features(arrays, "test")[:40]
    options = ConversionOptions(calibration_samples=64)

    calibrated = calibrate(model, x, options=options)
    assert calibrated.ok and calibrated.samples == 64
    shared = int8_from_calibrated(calibrated)
    _same_model(
        shared, convert_model(model, "int8", representative_data=x, options=options), x_test
    )
    assert shared.notes == calibrated.notes

    if name == "mobilenet_v2":
        return  # each MobileNetV2 calibration costs 10 s here; the others cover the quantizer
    # The selective quantizer handed the calibration builds what one that calibrates does.
    quantizer = SelectiveQuantizer(model, x, options=options, calibrated=calibrated)
    fresh = SelectiveQuantizer(model, x, options=options)
    assert quantizer.layers == fresh.layers
    first = quantizer.quantizable_layers[0]
    a, b = quantizer.quantize([first]), fresh.quantize([first])
    assert a.float_layers == b.float_layers == (first,)
    _same_model(a, b, x_test, mode="mixed")


def test_quantizing_a_calibrated_model_never_calibrates_again(digits_model, digits, monkeypatch):
    calibrated = calibrate(digits_model, digits.x_train)

    def no_converter(*args, **kwargs):
        raise AssertionError("the converter ran: the model was calibrated again")

    monkeypatch.setattr(calibration_module, "run_converter", no_converter)
    monkeypatch.setattr("zenml_quant.convert.run_converter", no_converter)
    tflite = convert_candidate(
        digits_model,
        "int8",
        representative_data=digits.x_train,
        options=None,
        calibrated=calibrated,
    )
    assert tflite.ok and tflite.mode == "int8"
    plain = quantize_post_training(digits_model, digits, calibrated=calibrated)
    assert plain.model.content == tflite.content and "shared calibration" in plain.reason
    quantizer = SelectiveQuantizer(digits_model, digits.x_train, calibrated=calibrated)
    assert quantizer.quantize(["logits"]).float_layers == ("logits",)
    errors = quantizer.layer_errors(digits.x_val, max_samples=20)
    assert set(quantizer.quantizable_layers) <= set(errors["layer"])
    assert errors["rmse_over_scale"].notna().any()


def test_a_calibration_is_refused_for_another_model_data_or_options(digits_model, digits):
    from zenml_quant._compat import tf_keras

    calibrated = calibrate(digits_model, digits.x_train)
    check_calibrated(calibrated, digits_model, digits.x_train, ConversionOptions())  # its own

    edited = tf_keras.models.clone_model(digits_model)
    edited.set_weights([w + 0.01 for w in digits_model.get_weights()])
    with pytest.raises(InvalidOptionError, match="another model"):
        SelectiveQuantizer(edited, digits.x_train, calibrated=calibrated)
    with pytest.raises(InvalidOptionError, match="other examples"):
        check_calibrated(calibrated, digits_model, digits.x_train[::-1], ConversionOptions())
    with pytest.raises(InvalidOptionError, match="calibration_samples=100"):
        convert_candidate(
            digits_model,
            "int8",
            representative_data=digits.x_train,
            options=ConversionOptions(calibration_samples=100),
            calibrated=calibrated,
        )
    # Other modes calibrate on their own: int16x8 has no quantizer for a calibrated model.
    int16 = convert_candidate(
        digits_model,
        "int16x8",
        representative_data=digits.x_train,
        options=ConversionOptions(),
        calibrated=calibrated,
    )
    assert int16.ok and int16.mode == "int16x8" and "INT16" in int16.inputs[0].dtype.upper()


def test_a_model_reloaded_from_its_file_keeps_its_fingerprint(digits_model, tmp_path):
    from zenml_quant._compat import tf_keras

    path = tmp_path / "m.keras"
    digits_model.save(path)
    assert model_fingerprint(tf_keras.models.load_model(path)) == model_fingerprint(digits_model)


def test_the_data_fingerprint_covers_every_input_of_several():
    image = np.zeros((4, 3, 3, 1), np.float32)
    meta = np.zeros((4, 2), np.float32)
    same = data_fingerprint(pack({"image": image, "meta": meta}))
    assert same == data_fingerprint(pack({"image": image.copy(), "meta": meta.copy()}))
    meta[2, 1] = 1.0
    assert data_fingerprint(pack({"image": image, "meta": meta})) != same
    assert data_fingerprint(image) != data_fingerprint(image.astype(np.float64))


def test_a_failed_calibration_fails_each_int8_candidate_with_its_reason(digits_model, digits):
    bad = digits.x_train.copy()
    bad[0, 0, 0, 0] = np.nan
    calibrated = calibrate_candidate(
        digits_model, representative_data=bad, options=ConversionOptions(calibration_samples=2000)
    )
    assert not calibrated.ok and "NaN" in calibrated.error and calibrated.content == b""
    tflite = convert_candidate(
        digits_model,
        "int8",
        representative_data=bad,
        options=ConversionOptions(calibration_samples=2000),
        calibrated=calibrated,
    )
    assert not tflite.ok and "could not be calibrated" in tflite.error and "NaN" in tflite.error
    with pytest.raises(ConversionError, match="could not be calibrated"):
        SelectiveQuantizer(digits_model, bad, calibrated=calibrated)
