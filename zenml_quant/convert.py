"""Keras model -> TFLite flatbuffer, in one of the five modes.

| mode            | weights | activations | needs calibration data |
|-----------------|---------|-------------|------------------------|
| `float32`       | float32 | float32     | no                     |
| `dynamic_range` | int8    | float32     | no                     |
| `float16`       | float16 | float32     | no                     |
| `int8`          | int8    | int8        | yes                    |
| `int16x8`       | int8    | int16       | yes                    |

The result is a :class:`~zenml_quant.types.TFLiteModel`. A file that converts but cannot be
allocated by the interpreter comes back with ``error`` set instead of raising, so a sweep over
modes reports it as a failed candidate.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from tensorflow.lite.tools import flatbuffer_utils

from ._compat import is_keras3_model, tf
from .errors import ConversionError, InvalidDatasetError
from .interpreter import make_interpreter, tensor_details
from .profile import peak_activation_bytes, tflite_graph
from .types import MODES, ConversionOptions, TFLiteModel

__all__ = [
    "MIN_CALIBRATION_SAMPLES",
    "compact_tensor_names",
    "configure_converter",
    "convert_model",
    "explain_failure",
    "inspect_tflite",
    "make_converter",
]

#: Below this many calibration examples a quantized model carries a note saying so.
MIN_CALIBRATION_SAMPLES = 100

_QUANTIZED_IO_TYPE = {"int8": tf.int8, "int16x8": tf.int16}


def convert_model(
    model: Any,
    mode: str = "float32",
    *,
    representative_data: np.ndarray | None = None,
    options: ConversionOptions | None = None,
) -> TFLiteModel:
    """Convert a Keras model (``tf_keras`` or Keras 3) to TFLite in ``mode``.

    ``representative_data`` (usually the train split's features) is required by ``int8`` and
    ``int16x8``; ``options.calibration_samples`` examples are drawn from it with ``options.seed``.
    Raises :class:`ConversionError` naming the unsupported ops and the Keras layers they come
    from when the converter refuses the model.
    """
    options = options or ConversionOptions()
    if mode not in MODES:
        raise ConversionError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    converter = make_converter(model)
    notes = configure_converter(converter, mode, representative_data, options)
    try:
        content = converter.convert()
    except Exception as exc:  # the converter raises ConverterError, but also plain errors
        raise ConversionError(explain_failure(exc, model, mode)) from None
    content = bytes(content)
    if options.compact_names:
        content = compact_tensor_names(content)
    tflite = inspect_tflite(content, mode=mode, options=options, source_model=model.name)
    return replace(tflite, notes=notes) if notes else tflite


def configure_converter(
    converter: Any, mode: str, representative_data: np.ndarray | None, options: ConversionOptions
) -> tuple[str, ...]:
    """Set ``converter`` up for ``mode``; returns notes for the user (e.g. a tiny calibration set).

    Raises :class:`InvalidDatasetError` when a calibrating mode gets no or non-finite data.
    """
    notes: tuple[str, ...] = ()
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in ("int8", "int16x8"):
        batches, count = _calibration_batches(representative_data, mode, options)
        converter.representative_dataset = batches
        if count < MIN_CALIBRATION_SAMPLES:
            notes = (
                f"calibrated on only {count} example(s): activation ranges seen on so few inputs "
                f"may clip real ones; use at least {MIN_CALIBRATION_SAMPLES} (default 500).",
            )
        if mode == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        else:
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        if options.quantized_io:
            converter.inference_input_type = _QUANTIZED_IO_TYPE[mode]
            converter.inference_output_type = _QUANTIZED_IO_TYPE[mode]
    return notes


def compact_tensor_names(content: bytes) -> bytes:
    """``content`` with every ``a;b;c`` tensor name cut to ``a``; all else byte for byte.

    Uses TensorFlow's flatbuffer object API, which round-trips a model to the same bytes.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if tensor.name and b";" in tensor.name:
                tensor.name = tensor.name.split(b";", 1)[0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def inspect_tflite(
    content: bytes,
    *,
    mode: str,
    options: ConversionOptions | None = None,
    source_model: str = "",
) -> TFLiteModel:
    """Wrap a flatbuffer in a :class:`TFLiteModel`, reading its ops, I/O and peak memory.

    Never raises for a broken or unallocatable file: ``error`` carries the interpreter's reason.
    """
    options = options or ConversionOptions()
    try:
        # The graph is read without XNNPACK, whose DELEGATE node would hide the real ops.
        graph = tflite_graph(content)
        operators = tuple(op.op_name for op in graph.operators)
        peak = peak_activation_bytes(graph)
        interpreter = make_interpreter(content, num_threads=1)
        inputs = tuple(tensor_details(d) for d in interpreter.get_input_details())
        outputs = tuple(tensor_details(d) for d in interpreter.get_output_details())
    except Exception as exc:  # allocation failures surface as RuntimeError or ValueError
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TFLiteModel(
            content=content,
            mode=mode,
            options=options,
            operators=(),
            inputs=(),
            outputs=(),
            source_model=source_model,
            error=f"the interpreter cannot allocate this {mode} model: {reason}",
        )
    return TFLiteModel(
        content=content,
        mode=mode,
        options=options,
        operators=operators,
        inputs=inputs,
        outputs=outputs,
        peak_activation_bytes=peak,
        source_model=source_model,
    )


def make_converter(model: Any) -> Any:
    """A ``TFLiteConverter`` for a ``tf_keras`` or Keras 3 model."""
    if is_keras3_model(model):
        # from_keras_model only takes tf_keras models in this process, and a traced concrete
        # function of a Keras 3 model leaves its weights as uninitialised resource variables
        # in the flatbuffer. Keras 3's own SavedModel export freezes them correctly.
        export_dir = tempfile.mkdtemp(prefix="zenml-quant-export-")
        model.export(export_dir, verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(export_dir)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _calibration_batches(
    data: np.ndarray | None, mode: str, options: ConversionOptions
) -> tuple[Any, int]:
    if data is None or len(data) == 0:
        raise InvalidDatasetError(
            f"Mode {mode!r} calibrates activation ranges on sample inputs, but none were given: "
            "pass representative_data= (e.g. the train split's features)."
        )
    if options.calibration_samples < 1:
        raise InvalidDatasetError(
            f"calibration_samples must be at least 1, got {options.calibration_samples}."
        )
    count = min(options.calibration_samples, len(data))
    picks = np.random.default_rng(options.seed).choice(len(data), size=count, replace=False)
    samples = np.asarray(data[np.sort(picks)], dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InvalidDatasetError(
            f"The calibration data for mode {mode!r} holds NaN or infinite values: clean the "
            "train split (or pass other representative_data) before quantizing."
        )

    def batches() -> Iterator[list[np.ndarray]]:
        for i in range(count):
            yield [samples[i : i + 1]]

    return batches, count


def explain_failure(exc: Exception, model: Any, mode: str) -> str:
    text = str(exc)
    ops = sorted(set(re.findall(r"'((?:tf|tfl)\.\w+)' op", text)))
    layer_names = [
        layer.name for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"
    ]
    # MLIR locations embed the Keras layer path (e.g. "sequential/my_layer/Cumsum"); match
    # them back to layer names so the user knows which layer to change.
    layers = [name for name in layer_names if re.search(rf"[/\"]{re.escape(name)}[/\"@]", text)]
    first_error = next((ln.strip() for ln in text.splitlines() if "error:" in ln), "")
    parts = [f"TFLite conversion to {mode!r} failed for model {getattr(model, 'name', '?')!r}."]
    if ops:
        parts.append(f"Unsupported op(s): {', '.join(ops)}.")
    if layers:
        parts.append(f"From layer(s): {', '.join(layers)}.")
    if not ops and not layers:
        parts.append(f"Converter said: {first_error or text.strip().splitlines()[-1][:300]}")
    if mode in ("int8", "int16x8"):
        parts.append(
            "Try mode 'float32' or 'dynamic_range' to see whether the op has a quantized kernel, "
            "or replace the layer with one built from TFLite builtin ops."
        )
    else:
        parts.append("Replace the layer with one built from TFLite builtin ops.")
    return " ".join(parts)
