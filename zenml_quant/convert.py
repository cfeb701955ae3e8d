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

Recurrent layers (LSTM, GRU, SimpleRNN, their Bidirectional wrappers) run as a loop over time
steps, which the converter can only lower to TFLite with static shapes, so a model with such a
loop is converted at a fixed batch size of 1, as the TFLite guide for Keras LSTMs does: a
``tf_keras`` LSTM then becomes the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (float32 and int8),
other recurrent layers a ``WHILE`` loop. TensorFlow's calibrator crashes the whole process on a
``WHILE`` loop (tensorflow/tensorflow#62281, #75140), so the calibrating modes first unroll
every recurrent layer that would become one (all of them for ``int16x8``, which has no 16x8
LSTM kernel); that needs a fixed number of time steps, and the file grows with them. See
:func:`make_converter`.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
from tensorflow.lite.python import schema_py_generated as tflite_schema
from tensorflow.lite.tools import flatbuffer_utils

from . import inputs as _inputs
from ._compat import is_keras3_model, keras3, tf, tf_keras
from .errors import ConversionError, InvalidDatasetError
from .interpreter import make_interpreter, tensor_details
from .outputs import output_names
from .profile import peak_activation_bytes, tflite_graph
from .types import MODES, ConversionOptions, TFLiteModel

__all__ = [
    "MIN_CALIBRATION_SAMPLES",
    "calibration_batches",
    "calibration_samples",
    "compact_tensor_names",
    "configure_converter",
    "convert_model",
    "explain_failure",
    "finish_content",
    "fuses_to_lstm_op",
    "inspect_tflite",
    "make_converter",
    "recurrent_layers",
    "remapper_disabled",
    "run_converter",
    "scored_output_first",
    "scored_output_name",
    "tie_lstm_hidden_quantization",
]

#: Below this many calibration examples a quantized model carries a note saying so.
MIN_CALIBRATION_SAMPLES = 100

_QUANTIZED_IO_TYPE = {"int8": tf.int8, "int16x8": tf.int16}
#: Modes whose calibration runs the float TFLite model, which crashes on a WHILE loop.
_CALIBRATING = ("int8", "int16x8")


def run_converter(converter: Any) -> bytes:
    """``converter.convert()``, without its warning that the int8 inputs' statistics were not
    given: the representative data calibrates them, so the warning is never news."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Statistics for quantized inputs were expected", category=UserWarning
        )
        return bytes(converter.convert())


def convert_model(
    model: Any,
    mode: str = "float32",
    *,
    representative_data: np.ndarray | None = None,
    options: ConversionOptions | None = None,
) -> TFLiteModel:
    """Convert a Keras model (``tf_keras`` or Keras 3) to TFLite in ``mode``.

    ``representative_data`` (usually the train split's features) is required by ``int8``,
    ``int16x8`` and ``w4a8`` (through :func:`zenml_quant.mixed_precision.convert_uniform`); ``options.calibration_samples`` examples are drawn from it with ``options.seed``.
    Raises :class:`ConversionError` naming the unsupported ops and the Keras layers they come
    from when the converter refuses the model.
    """
    options = options or ConversionOptions()
    if mode not in MODES:
        raise ConversionError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    if mode == "w4a8":
        # Imported here: mixed_precision converts through this module.
        from .mixed_precision import convert_uniform

        return convert_uniform(
            model, "int4", representative_data=representative_data, options=options
        )
    converter, notes = make_converter(model, mode)
    notes += configure_converter(converter, mode, representative_data, options)
    try:
        content = run_converter(converter)
    except Exception as exc:  # the converter raises ConverterError, but also plain errors
        raise ConversionError(explain_failure(exc, model, mode)) from None
    content = finish_content(
        bytes(content),
        options,
        has_recurrent=bool(recurrent_layers(model)),
        scored_output=scored_output_name(model),
    )
    tflite = inspect_tflite(content, mode=mode, options=options, source_model=model.name)
    return replace(tflite, notes=notes) if notes else tflite


def finish_content(
    content: bytes,
    options: ConversionOptions,
    *,
    has_recurrent: bool,
    scored_output: str | None = None,
) -> bytes:
    """The converter's flatbuffer after our fixes: LSTM quantization tied, names compacted, and
    the scored output (named ``scored_output`` in the signature) first among several.

    ``has_recurrent`` (the Keras model has recurrent layers) saves parsing the file for the
    LSTM check when there can be no LSTM op.
    """
    if has_recurrent:
        content = tie_lstm_hidden_quantization(content)
    if options.compact_names:
        content = compact_tensor_names(content)
    if scored_output is not None:
        content = scored_output_first(content, scored_output)
    return content


def scored_output_name(model: Any) -> str | None:
    """The signature name of a several-output model's scored (first) output; None for one."""
    return output_names(model)[0] if len(model.outputs) > 1 else None


def scored_output_first(content: bytes, name: str) -> bytes:
    """``content`` with the output called ``name`` in its signature moved to the front of the
    graph's outputs, so ``get_output_details()[0]`` is the scored output.

    The converter orders a model's outputs by tensor, not as Keras does (a ``[logits, aux]``
    model comes out as ``[aux, logits]``). A signature made from a traced function names its
    outputs ``output_0, output_1, ...`` in the Keras order instead of by layer.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    by_name = {
        tensor_map.name.decode(): int(tensor_map.tensorIndex)
        for signature in model.signatureDefs or []
        for tensor_map in signature.outputs or []
    }
    index = by_name.get(name, by_name.get("output_0"))
    outputs = [int(i) for i in graph.outputs]
    if index is None or index not in outputs:
        raise ConversionError(
            f"the converted model has no output named {name!r} in its signature (found "
            f"{', '.join(sorted(by_name)) or 'none'}): the scored output cannot be told apart"
        )
    graph.outputs = np.array([index, *(i for i in outputs if i != index)], dtype=np.int32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def tie_lstm_hidden_quantization(content: bytes) -> bytes:
    """``content`` with every int8 fused LSTM's hidden state quantized like its output.

    The integer LSTM kernel quantizes its hidden state with the parameters of its
    ``effective_hidden_scale_intermediate`` (and reads it back through its output-state input),
    then copies those bytes to its output. The converter picks all three from the LSTM's own
    calibrated range, except when a same-scale op downstream (the CONCATENATION of a
    Bidirectional LSTM) imposes its scale on the output alone: the bytes are then read with the
    wrong scale (measured: Bidirectional(LSTM(8)) int8 max error 0.13 instead of 0.012 on
    outputs spanning 1.5). The converter has no option against it, so the output's parameters
    (the ones the rest of the graph relies on) are written to the other two. Files without such
    an LSTM come back unchanged.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    lstm = tflite_schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    changed = False
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            intermediates = list(op.intermediates if op.intermediates is not None else [])
            if codes[op.opcodeIndex] != lstm or len(intermediates) != 5:
                continue  # float and hybrid LSTMs carry no hidden-state quantization
            output = subgraph.tensors[op.outputs[0]].quantization
            if output is None or output.scale is None:
                continue
            for index in (op.inputs[18], intermediates[4]):  # output state; hidden state
                quantization = subgraph.tensors[index].quantization
                if quantization is None or quantization.scale is None:
                    continue
                if list(quantization.scale) != list(output.scale) or list(
                    quantization.zeroPoint
                ) != list(output.zeroPoint):
                    quantization.scale = list(output.scale)
                    quantization.zeroPoint = list(output.zeroPoint)
                    changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else content


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
        batches, count = calibration_batches(representative_data, mode, options)
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

    Uses TensorFlow's flatbuffer object API, which round-trips a model to the same bytes; a
    model with constants stored outside the flatbuffer (buffer offsets) is returned unchanged.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if any(getattr(buffer, "offset", 0) > 1 for buffer in model.buffers or ()):
        # Constants stored after the flatbuffer (ai-edge-quantizer writes float weights that
        # way) do not survive this round trip: the file would lose them and fail to load.
        return content
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


def make_converter(model: Any, mode: str = "float32") -> tuple[Any, tuple[str, ...]]:
    """A ``TFLiteConverter`` for a ``tf_keras`` or Keras 3 model in ``mode``, and notes for the user.

    Models without recurrent layers convert as they are, with a dynamic batch axis. With
    recurrent layers: in ``int8`` and ``int16x8``, every recurrent layer that would otherwise
    become a ``WHILE`` loop is unrolled (on a copy; the model is not changed); whatever still
    loops is converted at a fixed batch size of 1. The notes say which of these happened.

    Raises:
        ConversionError: a recurrent layer must be unrolled but has no fixed number of time
            steps, or cannot be copied; or a loop the calibrator would crash on is left.
    """
    recurrent = recurrent_layers(model)
    if not recurrent:
        return _plain_converter(model), ()
    notes: list[str] = []
    if mode in _CALIBRATING:
        loops = [layer for layer in recurrent if mode == "int16x8" or not fuses_to_lstm_op(layer)]
        if loops:
            model = _unrolled(model, loops, mode)
            names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in loops)
            notes.append(
                f"unrolled {names} over the time steps: TensorFlow's {mode} calibration crashes "
                + (
                    "on recurrent loops and TFLite has no 16x8 LSTM kernel"
                    if mode == "int16x8"
                    else "on recurrent loops (only a tf_keras LSTM becomes a fused TFLite op)"
                )
                + "; the file holds the ops of every time step, so it can be larger than the "
                "float32 one."
            )
    rolled = [layer for layer in recurrent_layers(model) if not _is_unrolled(layer)]
    if not rolled:
        return _plain_converter(model), tuple(notes)
    converter = _batch_one_converter(model)
    notes.append(
        "converted at a fixed batch size of 1, which recurrent layers need to become TFLite "
        "ops: feed one example per invoke() (run_tflite does)."
    )
    if any(fuses_to_lstm_op(layer) for layer in rolled):
        notes.append(
            "the fused LSTM keeps its state in variable tensors that persist across invoke() "
            "calls: call interpreter.reset_all_variables() before each new sequence (run_tflite "
            "does)."
        )
    if mode in _CALIBRATING:
        _refuse_loops(_batch_one_converter(model), model, mode)
    return converter, tuple(notes)


def _plain_converter(model: Any) -> Any:
    if is_keras3_model(model):
        # from_keras_model only takes tf_keras models in this process, and a traced concrete
        # function of a Keras 3 model leaves its weights as uninitialised resource variables
        # in the flatbuffer. Keras 3's own SavedModel export freezes them correctly.
        return _from_keras3_export(model, None)
    return tf.lite.TFLiteConverter.from_keras_model(model)


def _from_keras3_export(model: Any, input_signature: list[Any] | None) -> Any:
    export_dir = tempfile.mkdtemp(prefix="zenml-quant-export-")
    model.export(export_dir, verbose=False, input_signature=input_signature)
    return tf.lite.TFLiteConverter.from_saved_model(export_dir)


def _batch_one_converter(model: Any) -> Any:
    """A converter over ``model`` traced at batch size 1 (static shapes for recurrent loops)."""
    specs = [tf.TensorSpec([1, *tuple(t.shape)[1:]], t.dtype) for t in model.inputs]
    if is_keras3_model(model):
        return _from_keras3_export(model, specs if len(specs) == 1 else [specs])
    holder = tf.Module()
    holder.weights = list(model.variables)  # a SavedModel must reach every captured variable
    holder.run = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False))
    concrete = holder.run.get_concrete_function(*specs)
    # The converter saves its trackable object as a SavedModel (the path on which it fuses the
    # LSTM); a module holding only this function saves in a blink, where the Keras model
    # itself would re-trace every layer for serving (13 s for a Bidirectional LSTM).
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder)


def recurrent_layers(model: Any) -> list[Any]:
    """Every recurrent layer (an RNN subclass or a Bidirectional wrapper) of ``model``, in model
    order, nested models included."""
    bases = tuple(
        cls
        for flavour in (tf_keras, keras3)
        if flavour is not None
        for cls in (flavour.layers.RNN, flavour.layers.Bidirectional)
    )
    found = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, bases):
            found.append(layer)
        elif getattr(layer, "layers", None):
            found.extend(recurrent_layers(layer))
    return found


def _directions(layer: Any) -> list[Any]:
    return (
        [layer.forward_layer, layer.backward_layer] if hasattr(layer, "forward_layer") else [layer]
    )


def _is_unrolled(layer: Any) -> bool:
    return all(getattr(rnn, "unroll", False) for rnn in _directions(layer))


def fuses_to_lstm_op(layer: Any) -> bool:
    """True for a recurrent layer the converter turns into the fused TFLite LSTM op (one per
    direction of a Bidirectional wrapper), not into a loop.

    Only a tf_keras LSTM whose configuration allows its cuDNN-compatible implementation
    (tanh, sigmoid, bias, no recurrent dropout: Keras' own ``_could_use_gpu_kernel``) carries
    the function signature the converter fuses.
    """
    return all(
        isinstance(rnn, tf_keras.layers.LSTM)
        and bool(getattr(rnn, "_could_use_gpu_kernel", False))
        and not rnn.unroll
        for rnn in _directions(layer)
    )


def _unrolled(model: Any, layers: list[Any], mode: str) -> Any:
    """A copy of ``model`` with ``layers`` unrolled (``unroll=True``) and the same weights."""
    unknown = [layer.name for layer in layers if _time_steps(layer) is None]
    if unknown:
        raise ConversionError(
            f"Mode {mode!r} needs the recurrent layer(s) {', '.join(unknown)} of model "
            f"{model.name!r} unrolled (TensorFlow's calibration crashes on recurrent loops), "
            "which needs a fixed number of time steps: build the model on an Input with a fixed "
            "sequence length (e.g. Input((20, 8)) instead of Input((None, 8))), or use mode "
            "'float32', 'float16' or 'dynamic_range'."
        )
    chosen = {id(layer) for layer in layers}

    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if id(layer) in chosen:
            if hasattr(layer, "forward_layer"):  # Bidirectional: unroll the wrapped layer(s)
                for key in ("layer", "backward_layer"):
                    if config.get(key):
                        config[key]["config"]["unroll"] = True
            else:
                config["unroll"] = True
        elif getattr(layer, "layers", None):  # a nested model holding a chosen layer
            return _clone(layer, clone)
        return type(layer).from_config(config)

    try:
        copy = _clone(model, clone)
        copy.set_weights(model.get_weights())
    except Exception as exc:  # subclassed models and custom layers cannot be cloned
        raise ConversionError(
            f"Mode {mode!r} needs the recurrent layer(s) {', '.join(map(str, layers))} of model "
            f"{model.name!r} unrolled, but the model cannot be copied ({type(exc).__name__}: "
            f"{exc}). Build those layers with unroll=True yourself, or use mode 'float32', "
            "'float16' or 'dynamic_range'."
        ) from None
    return copy


def _clone(model: Any, clone_function: Any) -> Any:
    if is_keras3_model(model):
        return keras3.models.clone_model(model, clone_function=clone_function)
    return tf_keras.models.clone_model(model, clone_function=clone_function)


def _time_steps(layer: Any) -> int | None:
    try:
        shape = tuple(layer.input_shape if hasattr(layer, "input_shape") else layer.input.shape)
    except (AttributeError, ValueError):  # a layer shared between inputs has no one shape
        return None
    steps = shape[1] if len(shape) > 2 else None
    return None if steps is None else int(steps)


def _refuse_loops(probe: Any, model: Any, mode: str) -> None:
    """Raise if ``probe``'s float conversion still loops: calibrating it would kill the process."""
    try:
        graph = tflite_graph(run_converter(probe))
    except Exception as exc:
        raise ConversionError(explain_failure(exc, model, mode)) from None
    if any(op.op_name == "WHILE" for op in graph.operators):
        raise ConversionError(
            f"Model {model.name!r} still holds a recurrent loop (WHILE) after its recurrent "
            f"layers were prepared, and TensorFlow's {mode} calibration crashes the process on "
            "one (tensorflow/tensorflow#62281). Build the recurrent layers with unroll=True, or "
            "use mode 'float32', 'float16' or 'dynamic_range'."
        )


@contextmanager
def remapper_disabled() -> Iterator[None]:
    """Run TensorFlow graphs (Keras ``predict``, ``fit``) without grappler's remapper.

    With oneDNN on (TensorFlow's default on x86), the remapper fuses Conv2D + BatchNorm + an
    activation into one kernel, and a Conv2D without bias followed by BatchNormalization and
    ``tanh`` then fails at run time: "Fusion is not implemented: [FusedBatchNorm,Tanh]".
    ``TF_ENABLE_ONEDNN_OPTS`` is read once when TensorFlow loads, so only the grappler option
    helps in a running process; graphs are optimized when first run, so the setting must cover
    the call that runs them. The TFLite converter does not execute the graph and needs none of
    this. The option is process-wide: other threads running TensorFlow meanwhile are affected.
    """
    before = tf.config.optimizer.get_experimental_options().get("remapping", True)
    tf.config.optimizer.set_experimental_options({"remapping": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"remapping": before})


def calibration_samples(
    data: np.ndarray | None, mode: str, options: ConversionOptions
) -> np.ndarray:
    """The ``options.calibration_samples`` examples of ``data`` drawn with ``options.seed``, as
    float32, in their order in ``data``: what ``mode`` calibrates on.

    Raises :class:`InvalidDatasetError` for no data or non-finite data.
    """
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
    samples = _inputs.map_parts(
        np.asarray(data[np.sort(picks)]), lambda _, part: part.astype(np.float32)
    )
    if not _inputs.all_finite(samples):
        raise InvalidDatasetError(
            f"The calibration data for mode {mode!r} holds NaN or infinite values: clean the "
            "train split (or pass other representative_data) before quantizing."
        )
    return samples


def calibration_batches(
    data: np.ndarray | None, mode: str, options: ConversionOptions
) -> tuple[Any, int]:
    """A generator function of the :func:`calibration_samples` one at a time (each ``[x]``, or
    a dict by input name), and their count.

    Raises :class:`InvalidDatasetError` for no data or non-finite data.
    """
    samples = calibration_samples(data, mode, options)
    count = len(samples)

    def batches() -> Iterator[list[np.ndarray] | dict[str, np.ndarray]]:
        for i in range(count):
            yield _inputs.for_converter(samples[i : i + 1])

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
