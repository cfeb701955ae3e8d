"""Calibrate a Keras model once, then quantize it to int8 as often as needed.

TensorFlow's converter calibrates and quantizes in one call, and calibrating (running the float
model on every calibration example) is most of an int8 conversion's cost: 3.6 s of ResNet-8's
and 17 s of MobileNetV2's, where quantizing an already calibrated model takes 0.015-0.1 s
(``BENCHMARKS.md``, section ``calibration-cost``). The converter can stop after calibrating
(the private ``_experimental_calibrate_only``, which its own quantization debugger relies on):
the result is the float TFLite model carrying every activation's observed range, and
TensorFlow's ``mlir_quantize`` turns that into the int8 model, with any operators left in
float. That is what the debugger does inside; this module does it without the debugger, so one
:class:`~zenml_quant.types.CalibratedModel` can be an artifact that the int8 conversion, the
sensitivity profile and the int8 model with float layers all quantize from.

Only ``int8`` is built this way. TensorFlow quantizes ``int16x8`` with its older calibrator
(``mlir_quantize`` asked for 16-bit activations writes a file the interpreter refuses to
allocate, measured on TensorFlow 2.21), so that mode still calibrates on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .convert import (
    calibration_samples,
    configure_converter,
    explain_failure,
    finish_content,
    inspect_tflite,
    make_converter,
    recurrent_layers,
    run_converter,
    scored_output_name,
)
from .errors import ConversionError, InvalidOptionError
from .types import CalibratedModel, ConversionOptions, TFLiteModel

__all__ = [
    "calibrate",
    "check_calibrated",
    "data_fingerprint",
    "int8_from_calibrated",
    "model_fingerprint",
    "quantize_calibrated",
]


def calibrate(
    model: Any, representative_data: np.ndarray | None, *, options: ConversionOptions | None = None
) -> CalibratedModel:
    """``model`` converted for int8 and calibrated on ``options.calibration_samples`` examples of
    ``representative_data`` (drawn with ``options.seed``), not yet quantized.

    Raises:
        InvalidDatasetError: no, or non-finite, calibration data.
        ConversionError: the converter refuses the model (names the op and layer).
    """
    options = options or ConversionOptions()
    samples = calibration_samples(representative_data, "int8", options)
    converter, notes = make_converter(model, "int8")
    # The drawn samples, not the data: drawing all of them again with the seed keeps their
    # order, so the converter calibrates on exactly the examples fingerprinted below.
    notes += configure_converter(converter, "int8", samples, options)
    converter._experimental_calibrate_only = True  # private; see the module docstring
    try:
        content = run_converter(converter)
    except Exception as exc:  # ConverterError, but also plain errors from inside TensorFlow
        raise ConversionError(explain_failure(exc, model, "int8")) from None
    return CalibratedModel(
        content=content,
        options=options,
        source_model=str(model.name),
        model_fingerprint=model_fingerprint(model),
        data_fingerprint=data_fingerprint(samples),
        samples=len(samples),
        notes=notes,
        recurrent=bool(recurrent_layers(model)),
        scored_output=scored_output_name(model),
    )


def check_calibrated(
    calibrated: CalibratedModel,
    model: Any,
    representative_data: np.ndarray | None,
    options: ConversionOptions | None = None,
) -> None:
    """Raise unless ``calibrated`` was calibrated from ``model`` (same layers and weights) with
    ``options``, on the examples ``options`` draws from ``representative_data`` (not checked
    when that is None).

    Raises:
        ConversionError: ``calibrated`` carries a calibration failure.
        InvalidOptionError: it belongs to another model, other options or other data.
    """
    if not calibrated.ok:
        raise ConversionError(f"the model could not be calibrated: {calibrated.error}")
    options = options or ConversionOptions()
    fix = "calibrate this model on this data with these options (calibrate(...)), or pass none"
    if calibrated.options != options:
        raise InvalidOptionError(
            f"The calibrated model was made with {calibrated.options}, not {options}: {fix}."
        )
    if calibrated.model_fingerprint != model_fingerprint(model):
        raise InvalidOptionError(
            f"The calibrated model comes from another model than {model.name!r} (its layers or "
            f"weights differ; it was calibrated from {calibrated.source_model!r}): {fix}."
        )
    if representative_data is None:
        return
    samples = calibration_samples(representative_data, "int8", options)
    if calibrated.data_fingerprint != data_fingerprint(samples):
        raise InvalidOptionError(
            f"The calibrated model of {model.name!r} was calibrated on other examples than the "
            f"{len(samples)} these options draw from the data given: {fix}."
        )


def quantize_calibrated(
    calibrated: CalibratedModel, *, float_nodes: Sequence[str] = (), debug: bool = False
) -> bytes:
    """The int8 flatbuffer of ``calibrated``, with the operators whose output tensors are named
    in ``float_nodes`` left in float, before :func:`~zenml_quant.convert.finish_content`.

    With ``debug`` every quantized operator is followed by a NumericVerify op that compares it
    with its float twin (the model :class:`tf.lite.experimental.QuantizationDebugger` reads).
    Integer inputs and outputs follow ``calibrated.options.quantized_io``, as the converter's.
    """
    if not calibrated.ok:
        raise ConversionError(f"the model could not be calibrated: {calibrated.error}")
    from tensorflow.lite.python import convert as tf_convert

    content = tf_convert.mlir_quantize(
        calibrated.content,
        fully_quantize=calibrated.options.quantized_io,
        enable_numeric_verify=debug,
        denylisted_nodes=list(float_nodes) or None,
    )
    return bytes(content) if debug else _deduplicated(bytes(content))


def int8_from_calibrated(calibrated: CalibratedModel) -> TFLiteModel:
    """The full int8 model of ``calibrated``: what ``convert_model(model, "int8")`` returns,
    without calibrating again."""
    content = finish_content(
        quantize_calibrated(calibrated),
        calibrated.options,
        has_recurrent=calibrated.recurrent,
        scored_output=calibrated.scored_output,
    )
    tflite = inspect_tflite(
        content, mode="int8", options=calibrated.options, source_model=calibrated.source_model
    )
    return replace(tflite, notes=calibrated.notes) if calibrated.notes else tflite


def model_fingerprint(model: Any) -> str:
    """A SHA-256 of ``model``'s layers (class and name, in order) and weights (shape, dtype and
    values): equal for the same model reloaded from a file, different after any edit."""
    digest = hashlib.sha256()
    for layer in _all_layers(model):
        digest.update(f"{type(layer).__name__}:{layer.name};".encode())
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def data_fingerprint(samples: np.ndarray) -> str:
    """A SHA-256 of calibration examples (dtype, shape and values; fields of several inputs)."""
    array = np.ascontiguousarray(samples)
    digest = hashlib.sha256(f"{array.dtype.descr}{array.shape};".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _all_layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        if getattr(layer, "layers", None):
            found.extend(_all_layers(layer))
    return found


def _deduplicated(content: bytes) -> bytes:
    """``content`` with identical constant buffers stored once, as the converter leaves them."""
    from tensorflow.lite.python import lite as tf_lite

    return bytes(tf_lite._deduplicate_readonly_buffers(content))  # private, as the converter's
