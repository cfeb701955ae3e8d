"""One ``.tflite`` with a precision chosen per Keras layer, through ai-edge-quantizer.

The TFLite converter quantizes a whole model one way (int8 with float fallbacks, or 16x8);
ai-edge-quantizer re-quantizes a float ``.tflite`` with a recipe of rules, one per operator
scope, so int4, int8, 16x8 and float layers can sit in one file. This module speaks Keras layer
names: :class:`PrecisionQuantizer` converts the model to float once, maps each layer to its
operators (:mod:`zenml_quant.layermap`), calibrates once, and then builds any per-layer plan in
a fraction of a second, reading back from the file which precision every layer really got.

Recipe rules match an operator's *scope*, its output tensor names joined by ``;`` with a
trailing ``;``; the last rule that matches wins. A plan becomes a default rule (``.*``) and then
one rule per layer whose regex lists that layer's scopes exactly, so the recipe reads as the
plan does and is saved with the candidate.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .convert import (
    calibration_batches,
    configure_converter,
    explain_failure,
    finish_content,
    inspect_tflite,
    make_converter,
    run_converter,
    scored_output_name,
)
from .errors import ConversionError, InvalidOptionError
from .gptq import gptq_round, hessians, replace_weights, weighted_ops
from .layermap import LayerOps, map_layers
from .precisions import PRECISIONS, WEIGHTED_OPS, layer_precision, op_precisions
from .profile import live_activations, tflite_graph
from .types import MIXED_MODE, ConversionOptions, TFLiteModel

__all__ = ["WEIGHT_ALGORITHMS", "PrecisionQuantizer", "convert_uniform", "uniform_mode"]

logger = logging.getLogger(__name__)

#: How low-bit weights are rounded: ``min_max`` (nearest point, scale from the largest weight),
#: ``octav`` (a clipping range that minimises the rounding error) or ``gptq`` (each rounding
#: error compensated by the weights not yet rounded, from the layer's calibration inputs; see
#: :mod:`zenml_quant.gptq`, which rounds before ai-edge-quantizer stores the codes min-max).
WEIGHT_ALGORITHMS = {
    "min_max": "min_max_uniform_quantize",
    "octav": "OCTAV",
    "gptq": "min_max_uniform_quantize",
}

#: The file mode of a plan that puts every layer at one precision.
_UNIFORM_MODES = {"int4": "w4a8", "int8": "int8"}


def uniform_mode(precision: str) -> str:
    """The candidate mode of a model with every layer at ``precision`` (``int4`` is ``w4a8``)."""
    return _UNIFORM_MODES.get(precision, precision)


def _not_from_quantizer(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or "ai_edge_quantizer" not in record.pathname


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # ai-edge-quantizer prints a size report to stdout, tqdm bars to stderr, and logs every
    # tensor it rewires at INFO on the root logger, on every call.
    # Its calibrator keeps every intermediate tensor, which LiteRT warns is for debugging.
    root = logging.getLogger()
    root.addFilter(_not_from_quantizer)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", ".*experimental_preserve_all_tensors")
            yield
    finally:
        root.removeFilter(_not_from_quantizer)


def _static(activation_bits: int, weight_bits: int, algorithm: str) -> dict[str, Any]:
    return {
        "algorithm_key": algorithm,
        "op_config": {
            "activation_tensor_config": {
                "num_bits": activation_bits,
                # int16 activations must be symmetric in TFLite's 16x8 kernels.
                "symmetric": activation_bits == 16,
                "granularity": "TENSORWISE",
                "dtype": "INT",
            },
            "weight_tensor_config": {
                "num_bits": weight_bits,
                "symmetric": True,
                "granularity": "CHANNELWISE",
                "dtype": "INT",
            },
            "compute_precision": "INTEGER",
            "explicit_dequantize": False,
        },
    }


def _weight_only(weight_bits: int, algorithm: str) -> dict[str, Any]:
    is_float = weight_bits == 16
    return {
        "algorithm_key": "float_casting" if is_float else algorithm,
        "op_config": {
            "weight_tensor_config": {
                "num_bits": weight_bits,
                "symmetric": True,
                "granularity": "CHANNELWISE",
                "dtype": "FLOAT" if is_float else "INT",
            },
            "compute_precision": "FLOAT",
            "explicit_dequantize": True,
        },
    }


def _rule(precision: str, regex: str, algorithm: str) -> dict[str, Any]:
    """One recipe entry putting the operators ``regex`` matches at ``precision``."""
    p = PRECISIONS[precision]
    # Only low-bit weights gain from a smarter rounding; int8 keeps min-max, as the converter.
    algo = WEIGHT_ALGORITHMS[algorithm] if p.weight_bits < 8 else WEIGHT_ALGORITHMS["min_max"]
    if p.name == "float":
        body: dict[str, Any] = {"algorithm_key": "no_quantize"}
    elif p.integer_compute:
        body = _static(p.activation_bits, p.weight_bits, algo)
    else:
        body = _weight_only(p.weight_bits, algo)
    return {"regex": regex, "operation": "*", **body}


class PrecisionQuantizer:
    """Convert ``model`` to float once, calibrate once, then build any per-layer precision plan.

    Args:
        model: a ``tf_keras`` or Keras 3 model.
        representative_data: calibration examples (usually the train split's features);
            ``options.calibration_samples`` of them are drawn with ``options.seed``.
        options: conversion options (calibration size and seed, compact names).
        weight_algorithm: how int4 weights are rounded (:data:`WEIGHT_ALGORITHMS`).

    Raises:
        InvalidDatasetError: no, or non-finite, calibration data.
        ConversionError: the converter or ai-edge-quantizer refuses the model.
    """

    def __init__(
        self,
        model: Any,
        representative_data: np.ndarray | None,
        *,
        options: ConversionOptions | None = None,
        weight_algorithm: str = "gptq",
    ) -> None:
        if weight_algorithm not in WEIGHT_ALGORITHMS:
            raise InvalidOptionError(
                f"Unknown weight algorithm {weight_algorithm!r}: use one of "
                f"{', '.join(WEIGHT_ALGORITHMS)}."
            )
        self.options = options or ConversionOptions()
        self.weight_algorithm = weight_algorithm
        self.model_name = str(model.name)
        self._scored_output = scored_output_name(model)
        # The int8 converter's set-up unrolls recurrent loops, which calibration would crash on.
        converter, self.notes = make_converter(model, "int8")
        configure_converter(converter, "float32", None, self.options)
        try:
            self.float_content = run_converter(converter)
        except Exception as exc:  # ConverterError, or plain errors from inside TensorFlow
            raise ConversionError(explain_failure(exc, model, "float32")) from None
        graph = tflite_graph(self.float_content)
        names = {t.tensor_index: t.name for t in graph.tensors}
        used = {t for op in graph.operators for t in (*op.inputs, *op.outputs)}
        if len({names[t] for t in used if t in names}) < len(used & names.keys()):
            raise ConversionError(
                f"The float conversion of {self.model_name!r} has repeated tensor names, which "
                "ai-edge-quantizer cannot tell apart; give the model's layers unique names."
            )
        self.layers: tuple[LayerOps, ...] = map_layers(graph, model)
        self._graph = graph
        self._by_name = {layer.layer: layer for layer in self.layers}
        self._scopes = {
            layer.layer: [
                ";".join(names[t] for t in graph.operators[i].outputs) + ";" for i in layer.ops
            ]
            for layer in self.layers
        }
        # Each operator by its first output's name, which is how op_precisions reports it;
        # a layer is judged by its weighted operators when it has any.
        self._judged_by = {
            layer.layer: [
                names[graph.operators[i].outputs[0]]
                for i in layer.ops
                if graph.operators[i].outputs
                and (
                    graph.operators[i].op_name in WEIGHTED_OPS
                    or not WEIGHTED_OPS & set(layer.op_names)
                )
            ]
            for layer in self.layers
        }
        self._weighted = {
            layer.layer for layer in self.layers if WEIGHTED_OPS & set(layer.op_names)
        }
        self._samples = self._signature_samples(representative_data)
        self._calibration = self._calibrate()
        # GPTQ codes per (operator, bits), computed the first time a plan needs them.
        self._gptq_ops: dict[int, Any] | None = None
        self._hessians: dict[int, np.ndarray] = {}
        self._gptq_codes: dict[tuple[int, int], np.ndarray] = {}
        self._weight_reader: Any = None

    # -- what the model offers ------------------------------------------------------------------

    @property
    def calibration(self) -> dict[str, Any]:
        """ai-edge-quantizer's calibration result (tensor name -> min/max), shared by every plan."""
        return self._calibration

    @property
    def quantizable_layers(self) -> tuple[str, ...]:
        """Layers whose precision changes results (pure data moves excluded), in model order."""
        return tuple(layer.layer for layer in self.layers if layer.quantizable)

    def live_elements(self) -> tuple[tuple[tuple[str, int], ...], ...]:
        """At each distinct point of one inference, the activation elements held in memory,
        summed by the quantizable layer that produces them (``""``: a model input or a layer
        whose precision does not change its outputs' width). The peak activation memory of a
        plan is about the largest sum of elements times each layer's activation width."""
        quantizable = set(self.quantizable_layers)
        layer_of = {
            t: layer.layer if layer.layer in quantizable else ""
            for layer in self.layers
            for i in layer.ops
            for t in self._graph.operators[i].outputs
        }
        elements = {t.tensor_index: math.prod(t.shape) for t in self._graph.tensors}
        steps = set()
        for live in live_activations(self._graph):
            by_layer: dict[str, int] = {}
            for t in live:
                key = layer_of.get(t, "")
                by_layer[key] = by_layer.get(key, 0) + elements.get(t, 0)
            steps.add(tuple(sorted(by_layer.items())))
        return tuple(sorted(steps))

    def allowed(self, layer: str, precisions: tuple[str, ...]) -> tuple[str, ...]:
        """Which of ``precisions`` can apply to ``layer``: the weight precisions need weights."""
        has_weights = layer in self._weighted
        return tuple(p for p in precisions if has_weights or not PRECISIONS[p].weights_only)

    # -- building files -------------------------------------------------------------------------

    def recipe(self, plan: Mapping[str, str], *, default: str = "int8") -> list[dict[str, Any]]:
        """The ai-edge-quantizer recipe for ``plan`` (layer -> precision; the rest ``default``).

        Raises:
            InvalidOptionError: an unknown layer or precision.
        """
        self._check(plan, default)
        rules = [_rule(default, ".*", self.weight_algorithm)]
        for layer, precision in plan.items():
            if precision != default:
                rules.append(_rule(precision, self.scope_regex(layer), self.weight_algorithm))
        return rules

    def scope_regex(self, layer: str) -> str:
        """The recipe regex that matches exactly ``layer``'s operators (for hand-written rules)."""
        scopes = "|".join(re.escape(scope) for scope in self._scopes[layer])
        return f"^(?:{scopes})$"

    def quantize(
        self, plan: Mapping[str, str] | None = None, *, default: str = "int8"
    ) -> TFLiteModel:
        """The model with each layer of ``plan`` at its precision and every other at ``default``.

        The result's ``precisions`` are read from the file (what each layer really got), its
        ``recipe`` is the JSON recipe that built it, and its mode is ``w4a8`` or ``int8`` for a
        uniform model, ``mixed`` otherwise. Inputs and outputs follow ``default`` (int8 when it
        is int8): a float first layer gets a dequantize operator in front of it.
        """
        plan = dict(plan or {})
        recipe = self.recipe(plan, default=default)
        from ai_edge_quantizer import quantizer as aeq

        try:
            source = self.source_content(plan, default)
            with _quiet():
                q = aeq.Quantizer(source)
                q.load_quantization_recipe(recipe)
                result = q.quantize(
                    self._calibration if q.need_calibration else None,
                    enable_progress_bar=False,
                    enable_progress_report=False,
                )
        except Exception as exc:  # a recipe the quantizer cannot apply to this model
            raise ConversionError(
                f"ai-edge-quantizer could not build this plan for {self.model_name!r}: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            ) from None
        content = finish_content(
            bytes(result.quantized_model),
            self.options,
            has_recurrent=False,
            scored_output=self._scored_output,
        )
        precisions = self.precisions_of(bytes(result.quantized_model))
        levels = {p for _, p in precisions}
        mode = uniform_mode(levels.pop()) if len(levels) == 1 else MIXED_MODE
        model = inspect_tflite(
            content, mode=mode, options=self.options, source_model=self.model_name
        )
        floats = tuple(layer for layer, p in precisions if p == "float")
        notes = self.notes
        if source is not self.float_content:
            notes = (
                *notes,
                "low-bit weights rounded by GPTQ on the calibration data; the recipe applies to "
                "the float model with those weights",
            )
        return replace(
            model,
            float_layers=floats,
            precisions=precisions,
            recipe=json.dumps(recipe, indent=1),
            notes=notes,
        )

    def precisions_of(self, content: bytes) -> tuple[tuple[str, str], ...]:
        """``(layer, precision)`` for every quantizable layer, as the file ``content`` holds it
        (``content`` must be built by :meth:`quantize` before names are compacted)."""
        ops = op_precisions(content)
        result = []
        for name in self.quantizable_layers:
            seen = [ops[node] for node in self._judged_by[name] if node in ops]
            result.append((name, layer_precision(seen)))
        return tuple(result)

    # -- internals ------------------------------------------------------------------------------

    def _check(self, plan: Mapping[str, str], default: str) -> None:
        unknown = [layer for layer in plan if layer not in self._by_name]
        if unknown:
            raise InvalidOptionError(
                f"No layer named {', '.join(map(repr, unknown))} in the converted model "
                f"{self.model_name!r}; its layers are {', '.join(self.quantizable_layers)}. "
                "(BatchNormalization and Dropout fold into the layer before them.)"
            )
        bad = sorted({p for p in [*plan.values(), default] if p not in PRECISIONS})
        if bad:
            raise InvalidOptionError(
                f"Unknown precision {', '.join(map(repr, bad))}: use one of {', '.join(PRECISIONS)}."
            )
        weightless = [
            f"{layer} ({precision})"
            for layer, precision in plan.items()
            if PRECISIONS[precision].weights_only and layer not in self._weighted
        ]
        if weightless:
            raise InvalidOptionError(
                f"{', '.join(weightless)}: these precisions set weight bits, and the layer has no "
                "weights; give it int8, int16x8 or float."
            )

    def _signature_samples(self, data: np.ndarray | None) -> list[dict[str, np.ndarray]]:
        """The calibration examples as signature-runner inputs (name -> one-example batch)."""
        from ai_edge_litert.interpreter import Interpreter

        batches, _ = calibration_batches(data, "int8", self.options)
        interpreter = Interpreter(model_content=self.float_content)
        (key,) = list(interpreter.get_signature_list())[:1]
        self._signature = key
        signature_inputs = list(interpreter.get_signature_runner(key).get_input_details())
        samples = []
        for batch in batches():
            if isinstance(batch, dict):
                samples.append({name: np.asarray(batch[name]) for name in signature_inputs})
            else:
                samples.append({signature_inputs[0]: np.asarray(batch[0])})
        return samples

    def source_content(self, plan: Mapping[str, str], default: str = "int8") -> bytes:
        """The float file the plan's recipe is applied to: :attr:`float_content`, with
        GPTQ-rounded weights in the plan's low-bit layers when the weight algorithm is ``gptq``
        (ai-edge-quantizer then stores those codes as they are)."""
        if self.weight_algorithm != "gptq":
            return self.float_content
        bits_of = {
            layer.layer: PRECISIONS[plan.get(layer.layer, default)].weight_bits
            for layer in self.layers
        }
        low = {name: bits for name, bits in bits_of.items() if bits and bits < 8}
        if not low:
            return self.float_content
        self._prepare_gptq()
        assert self._gptq_ops is not None
        wanted = {
            i: bits
            for name, bits in low.items()
            for i in self._by_name[name].ops
            if i in self._gptq_ops
        }
        weights = {}
        for i, bits in wanted.items():
            op = self._gptq_ops[i]
            w = self._float_weights(op.weight_tensor).reshape(op.weight_shape[0], -1)
            scale = np.maximum(np.abs(w).max(axis=1, keepdims=True), 1e-9) / (2 ** (bits - 1) - 1)
            weights[op.weight_tensor] = (self._codes(i, bits) * scale).astype(np.float32)
        return replace_weights(self.float_content, weights)

    def gptq_codes(self, layer: str, bits: int = 4) -> np.ndarray | None:
        """The GPTQ codes (``[out, kh * kw * cin]`` or ``[out, in]``) the file stores for
        ``layer`` at ``bits``-bit weights, or None when GPTQ is not the weight algorithm or the
        layer has no single convolution or dense operator it rounds."""
        if self.weight_algorithm != "gptq" or layer not in self._by_name:
            return None
        self._prepare_gptq()
        assert self._gptq_ops is not None
        ops = [i for i in self._by_name[layer].ops if i in self._gptq_ops]
        return self._codes(ops[0], bits) if len(ops) == 1 else None

    def _prepare_gptq(self) -> None:
        if self._gptq_ops is None:
            indices = [i for layer in self.layers for i in layer.ops]
            self._gptq_ops = weighted_ops(self.float_content, indices)
        if not self._hessians:  # one pass over the calibration data serves every layer
            self._hessians = hessians(self.float_content, self._gptq_ops, self._samples)

    def _codes(self, op_index: int, bits: int) -> np.ndarray:
        if (op_index, bits) not in self._gptq_codes:
            assert self._gptq_ops is not None
            op = self._gptq_ops[op_index]
            w = self._float_weights(op.weight_tensor).reshape(op.weight_shape[0], -1)
            self._gptq_codes[op_index, bits] = gptq_round(w, self._hessians[op_index], bits=bits)
        return self._gptq_codes[op_index, bits]

    def _float_weights(self, tensor: int) -> np.ndarray:
        if self._weight_reader is None:
            from ai_edge_litert.interpreter import Interpreter

            self._weight_reader = Interpreter(model_content=self.float_content)
        return np.asarray(self._weight_reader.get_tensor(tensor), dtype=np.float32)

    def _calibrate(self) -> dict[str, Any]:
        from ai_edge_quantizer import calibrator, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils

        key, samples = self._signature, self._samples
        try:
            with _quiet():
                recipes = recipe_manager.RecipeManager()
                recipes.load_quantization_recipe([_rule("int8", ".*", "min_max")])
                # The range of every example, as TensorFlow's converter takes it: the quantizer's
                # default moving average of per-example ranges clips what few examples reach
                # (a random dense net lost 30 % of its output range that way).
                calib = calibrator.Calibrator(
                    self.float_content, num_threads=2, qsv_update_func=qsv_utils.min_max_update
                )
                calib.calibrate({key: samples}, recipes)
                return calib.get_model_qsvs()
        except Exception as exc:
            raise ConversionError(
                f"ai-edge-quantizer could not calibrate {self.model_name!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def convert_uniform(
    model: Any,
    precision: str,
    *,
    representative_data: np.ndarray | None,
    options: ConversionOptions | None = None,
    weight_algorithm: str = "gptq",
) -> TFLiteModel:
    """Every layer with weights at ``precision`` (e.g. ``"int4"``: the ``w4a8`` mode), the
    other layers int8 (or every layer, for a precision that is not weights-only)."""
    quantizer = PrecisionQuantizer(
        model, representative_data, options=options, weight_algorithm=weight_algorithm
    )
    layers = [
        layer
        for layer in quantizer.quantizable_layers
        if precision in quantizer.allowed(layer, (precision,))
    ]
    return quantizer.quantize(dict.fromkeys(layers, precision))
