"""Int8 models that keep chosen Keras layers in float, from one calibration.

A calibrated model (:mod:`zenml_quant.calibration`) quantizes again and again with different
operators left in float ("denylisted nodes"), in milliseconds each, as TensorFlow's
quantization debugger (``tf.lite.experimental.QuantizationDebugger``) does inside. TensorFlow
only speaks TFLite tensor names; this module speaks Keras layer names (through
:mod:`zenml_quant.layermap`), which is what sensitivity profiling and accuracy control iterate
over.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from ._compat import tf
from .calibration import calibrate, check_calibrated, quantize_calibrated
from .convert import finish_content, inspect_tflite, tie_lstm_hidden_quantization
from .errors import InvalidOptionError
from .inputs import input_names, is_multi, tflite_input_order
from .interpreter import make_interpreter
from .layermap import LayerOps, map_layers
from .profile import tflite_graph
from .types import MIXED_MODE, CalibratedModel, ConversionOptions, TFLiteModel

__all__ = ["SelectiveQuantizer", "convert_selective"]

#: Channels whose RMS value is below this many quantization steps count as silent.
_SILENT_STEPS = 0.01


@contextmanager
def _quiet() -> Iterator[None]:
    # The debugger runs the deprecated tf.lite.Interpreter, which warns on every creation.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class SelectiveQuantizer:
    """Calibrate ``model`` once, then build int8 models with any set of layers kept in float.

    Args:
        model: a ``tf_keras`` or Keras 3 model.
        representative_data: calibration examples (usually the train split's features);
            ``options.calibration_samples`` of them are drawn with ``options.seed``.
        options: conversion options; ``quantized_io`` gives int8 inputs and outputs (default:
            ``calibrated``'s, else ``ConversionOptions()``).
        calibrated: ``model`` already calibrated on ``representative_data`` with ``options``
            (:func:`zenml_quant.calibration.calibrate`), to quantize from instead of
            calibrating again; checked to be of this model, data and options.

    Raises:
        InvalidDatasetError: no, or non-finite, calibration data.
        ConversionError: the converter refuses the model (names the op and layer), or
            ``calibrated`` carries a calibration failure.
        InvalidOptionError: ``calibrated`` belongs to another model, data or options.
    """

    def __init__(
        self,
        model: Any,
        representative_data: np.ndarray | None,
        *,
        options: ConversionOptions | None = None,
        calibrated: CalibratedModel | None = None,
    ) -> None:
        # Without options, a calibrated model's own are the ones meant.
        self.options = options or (calibrated.options if calibrated else ConversionOptions())
        self.model_name = str(model.name)
        if calibrated is None:
            calibrated = calibrate(model, representative_data, options=self.options)
        else:
            check_calibrated(calibrated, model, representative_data, self.options)
        self.calibrated = calibrated
        self.notes = calibrated.notes
        # One array per model input, in the quantized model's input order (as the debugger
        # feeds them).
        self._debug_samples: list[np.ndarray] = []
        self.layers: tuple[LayerOps, ...] = map_layers(tflite_graph(calibrated.content), model)
        self._by_name = {layer.layer: layer for layer in self.layers}

    @property
    def quantizable_layers(self) -> tuple[str, ...]:
        """Names of the layers whose quantization rounds values (candidates to keep in float)."""
        return tuple(layer.layer for layer in self.layers if layer.quantizable)

    def resolve(self, names: Iterable[str] = (), types: Iterable[str] = ()) -> tuple[str, ...]:
        """Layer names (checked) plus every layer of the given Keras class names, in model order.

        Raises:
            InvalidOptionError: a name or type that matches no layer of the converted model.
        """
        names, types = list(names), list(types)
        unknown = [n for n in names if n not in self._by_name]
        if unknown:
            raise InvalidOptionError(
                f"No layer named {', '.join(map(repr, unknown))} in the converted model "
                f"{self.model_name!r}. Layers that can be kept in float: "
                f"{', '.join(self.quantizable_layers)}. (Layers the converter folds away, such "
                "as BatchNormalization or Dropout, are part of the layer before them.)"
            )
        known_types = {layer.layer_type for layer in self.layers}
        unknown_types = [t for t in types if t not in known_types]
        if unknown_types:
            raise InvalidOptionError(
                f"No layer of type {', '.join(map(repr, unknown_types))} in the converted model "
                f"{self.model_name!r}; its layer types are {', '.join(sorted(known_types))}."
            )
        chosen = set(names) | {layer.layer for layer in self.layers if layer.layer_type in types}
        return tuple(layer.layer for layer in self.layers if layer.layer in chosen)

    def quantize(self, float_layers: Sequence[str] = ()) -> TFLiteModel:
        """The int8 model with ``float_layers`` (Keras layer names) left in float.

        With no float layers this is the full int8 model (mode ``"int8"``), otherwise mode
        ``"mixed"`` with ``float_layers`` recorded on the result.
        """
        float_layers = self.resolve(float_layers)
        nodes = [node for name in float_layers for node in self._by_name[name].nodes]
        content = finish_content(
            quantize_calibrated(self.calibrated, float_nodes=nodes),
            self.options,
            has_recurrent=self.calibrated.recurrent,
            scored_output=self.calibrated.scored_output,
        )
        mode = MIXED_MODE if float_layers else "int8"
        model = inspect_tflite(
            content, mode=mode, options=self.options, source_model=self.model_name
        )
        return replace(model, float_layers=float_layers, notes=self.notes)

    def layer_errors(self, samples: np.ndarray, *, max_samples: int = 200) -> pd.DataFrame:
        """The debugger's per-layer error statistics for the full int8 model, by Keras layer.

        Each quantized operator runs on the same (quantized) input in float and in int8 for up to
        ``max_samples`` of ``samples``; per layer: ``rmse_over_scale`` (the error in units of
        the output's quantization step: ~0.29 is rounding alone, more means clipping or a poor
        range) and ``noise_to_signal`` (per output channel, RMS error over RMS value, capped
        at 1 = the channel is lost, averaged over channels that are ever non-zero, a channel
        under 1 % of a quantization step counting against that floor: so it lies in [0, 1],
        and an outlier channel that squeezes every other channel into a fraction of an int8
        step shows here, not in ``rmse_over_scale``). Each figure is the error the
        layer's operators add to their (quantized) inputs. ``input_noise_to_signal`` is the
        ``noise_to_signal`` of the layer(s) that wrote what this layer reads.
        """
        options = tf.lite.experimental.QuantizationDebugOptions(
            fully_quantize=self.options.quantized_io,
            layer_direct_compare_metrics={
                "rmse_over_scale": _rmse_over_scale,
                "noise_to_signal": _noise_to_signal,
            },
        )
        content = quantize_calibrated(self.calibrated, debug=True)  # the full int8 model
        if self.calibrated.recurrent:  # measure the file quantize() returns, with its LSTM fix
            content = tie_lstm_hidden_quantization(content)
        self._debug_samples = _representable(np.asarray(samples[:max_samples]), content)
        with _quiet():
            # The debugger is built from the model bytes, with its interpreter preserving every
            # intermediate tensor (a converter-built one does not after its options are set, in
            # TensorFlow 2.21: the metrics then read buffers that later operators had already
            # reused, rmse_over_scale up to 1e37 on a small Conv1D net).
            debugger = tf.lite.experimental.QuantizationDebugger(
                quant_debug_model_content=content,
                debug_dataset=self._debug_batches,
                debug_options=options,
            )
            debugger.run()
        stats = debugger.layer_statistics or {}
        by_tensor = _stats_by_tensor(stats, self.layers)
        producer = {t: layer.layer for layer in self.layers for t in layer.outputs}
        stats_of = {
            layer.layer: [by_tensor[t] for t in layer.outputs if t in by_tensor]
            for layer in self.layers
        }
        rows = []
        for layer in self.layers:
            own = stats_of[layer.layer]
            # Each operator's figure is the error it adds itself, so what a layer reads is
            # judged by the whole layer that wrote it: a Conv1D ends in a RESHAPE that adds none.
            sources = dict.fromkeys(producer[t] for t in layer.inputs if t in producer)
            read = [entry for source in sources for entry in stats_of[source]]
            rows.append(
                {
                    "layer": layer.layer,
                    "type": layer.layer_type,
                    "ops": " ".join(layer.op_names),
                    "rmse_over_scale": _max(own, "rmse_over_scale"),
                    "noise_to_signal": _max(own, "noise_to_signal"),
                    "input_noise_to_signal": _max(read, "noise_to_signal"),
                }
            )
        return pd.DataFrame(rows)

    def _debug_batches(self) -> Iterator[list[np.ndarray]]:
        for i in range(len(self._debug_samples[0]) if self._debug_samples else 0):
            yield [column[i : i + 1] for column in self._debug_samples]


def convert_selective(
    model: Any,
    *,
    representative_data: np.ndarray | None,
    float_layers: Sequence[str] = (),
    float_layer_types: Sequence[str] = (),
    options: ConversionOptions | None = None,
) -> TFLiteModel:
    """Full int8 except the named layers and every layer of the named Keras types, kept in float.

    Example: ``convert_selective(model, representative_data=x, float_layers=["logits"],
    float_layer_types=["DepthwiseConv2D"])``. Raises :class:`InvalidOptionError` for a name or
    type that matches no layer.
    """
    quantizer = SelectiveQuantizer(model, representative_data, options=options)
    return quantizer.quantize(quantizer.resolve(float_layers, float_layer_types))


def _rmse_over_scale(
    float_values: np.ndarray, quant_values: np.ndarray, scale: float, zero_point: int
) -> float:
    error = (quant_values.astype(np.float32) - zero_point) * scale - float_values
    return float(np.sqrt(np.mean(np.square(error))) / scale) if scale else float("nan")


def _noise_to_signal(
    float_values: np.ndarray, quant_values: np.ndarray, scale: float, zero_point: int
) -> float:
    error = (quant_values.astype(np.float32) - zero_point) * scale - float_values
    channels = float_values.shape[-1] if float_values.ndim else 1
    signal = np.sqrt(np.mean(np.square(float_values.reshape(-1, channels)), axis=0))
    noise = np.sqrt(np.mean(np.square(error.reshape(-1, channels)), axis=0))
    alive = signal > 0
    # Dividing by a near-zero RMS (a softmax class at probability 1e-20 that int8 moves by one
    # step) gives ratios of 1e17 and more. A channel under 1 % of a quantization step
    # is silent to int8 and is measured against that floor; an outlier-squeezed channel sits
    # at a few % of a step or more (3-7 % in the zoo's hard case) and still counts. Past 1 the whole
    # channel is lost, so each channel's share is capped there: the result lies in [0, 1].
    reference = np.maximum(signal[alive], _SILENT_STEPS * scale)
    # NaN (not 0) when no channel carries a value: the debugger averages with nanmean.
    ratios = np.minimum(noise[alive] / reference, 1.0)
    return float(np.mean(ratios)) if alive.any() else float("nan")


def _representable(samples: np.ndarray, content: bytes) -> list[np.ndarray]:
    """``samples`` as float32 arrays, one per model input in the model's input order, each
    clipped to the range of its integer input.

    The debugger quantizes float inputs without clipping, so a value outside the calibrated
    range wraps around in int8 (130 becomes -126); ``run_tflite`` clips, and so does this.
    """
    details = make_interpreter(content).get_input_details()
    names = tflite_input_order(details, input_names(samples)) if is_multi(samples) else [""]
    columns = []
    for detail, name in zip(details, names):
        column = (samples[name] if name else samples).astype(np.float32)
        dtype = np.dtype(detail["dtype"])
        scale, zero_point = detail["quantization"]
        if dtype not in (np.int8, np.int16) or not scale:
            columns.append(column)
            continue
        info = np.iinfo(dtype)
        low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
        columns.append(np.clip(column, low, high).astype(np.float32))
    return columns


def _stats_by_tensor(
    stats: dict[str, Any], layers: Sequence[LayerOps]
) -> dict[int, dict[str, float]]:
    """Debugger statistics keyed by the calibrated model's tensor index.

    The debugger names each entry ``NumericVerify/<tensor name><suffix>:<index>``, where the
    suffix is whatever the quantizer appended to keep names unique (usually one digit); the
    name without that digit, or else the longest tensor name that prefixes the entry, is the
    one it verifies.
    """
    names = {}
    for layer in layers:
        for node, tensor in zip(layer.nodes, layer.outputs):
            names[node] = tensor
    by_length = sorted(names, key=len, reverse=True)
    result: dict[int, dict[str, float]] = {}
    for key, values in stats.items():
        body = re.sub(r":\d+$", "", key.removeprefix("NumericVerify/"))
        # Usually one digit is appended (TensorFlow's own debugger strips one); matching that
        # exactly keeps `lstm` and `lstm1` apart, where a prefix would give both to `lstm1`.
        exact = [body[:-1]] if body[-1:].isdigit() else []
        match = next((n for n in exact + [body] if n in names), None) or next(
            (n for n in by_length if n and body.startswith(n)), None
        )
        if match is not None:
            result[names[match]] = {k: float(v) for k, v in values.items()}
    return result


def _max(entries: Sequence[dict[str, float]], key: str) -> float:
    values = [e[key] for e in entries if key in e and np.isfinite(e[key])]
    return max(values) if values else float("nan")
