"""int4-aware QAT: fine-tune with 4-bit fake quantization on exactly the layers a plan puts in
int4, then export through ai-edge-quantizer so the file holds the trained int4 weights.

tfmot trains the int4 layers (Conv2D, Conv1D, Dense) with a 4-bit per-channel symmetric
weight quantizer (``narrow_range``: the grid ``k * max|w| / 7``, ``k`` in -7..7, which is the
grid ai-edge-quantizer's int4 min-max rounding makes, so the trained codes survive the export
exactly); every other layer trains in float and is quantized after training as the plan says.
A BatchNormalization after an int4 layer stays a float layer in the QAT model: the converter
folds it into the kernel as one scale per output channel, which moves no code of a per-channel
symmetric grid.

The export: every fake-quantized kernel's range is set to its final value (tfmot's quantizer
keeps the range of the step before the last update), the kernels as the QAT model sees them are
written into a float copy of the original model, and :class:`PrecisionQuantizer` builds the
plan from that copy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ._compat import tf_keras

import tensorflow_model_optimization as tfmot  # isort: skip

from .allocate import choose_plan, profile_for_objective
from .errors import InvalidOptionError
from .evaluate import evaluate_tflite, keras_outputs
from .interpreter import run_tflite
from .keras3_rebuild import as_tf_keras, keras3_loss
from .metrics import Metric
from .mixed_precision import PrecisionQuantizer
from .models import check_model
from .precisions import parse_precisions
from .qat import QATOptions, compile_for_fine_tuning, fit_with_early_stopping
from .targets import Targets
from .tasks import dataset_metric
from .types import ConversionOptions, LabeledDataset, TFLiteModel

__all__ = ["INT4_QAT_TYPES", "Int4QATResult", "int4_aware_training", "mixed_qat"]

logger = logging.getLogger(__name__)

#: Keras layers whose kernel trains on the int4 grid (a depthwise kernel's channels lie on
#: another axis than tfmot's per-axis quantizer takes: those stay post-training int4).
INT4_QAT_TYPES = ("Conv2D", "Conv1D", "Dense")


class Int4WeightConfig(tfmot.quantization.keras.QuantizeConfig):
    """4-bit per-channel symmetric kernel, narrow range; activations left to calibration."""

    def __init__(self) -> None:
        self.quantizer = tfmot.quantization.keras.quantizers.LastValueQuantizer(
            num_bits=4, per_axis=True, symmetric=True, narrow_range=True
        )

    def get_weights_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
        return [(layer.kernel, self.quantizer)]

    def get_activations_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
        return None

    def get_output_quantizers(self, layer: Any) -> list[Any]:
        return []

    def get_config(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, eq=False)
class Int4QATResult:
    """The exported file, the layers trained on the int4 grid, and the file's score."""

    tflite: TFLiteModel
    trained_layers: tuple[str, ...]
    untrained_int4_layers: tuple[str, ...]  # int4 in the plan, post-training int4 in the file
    epochs_run: int
    history: dict[str, list[float]]
    quality: float
    split: str
    metric: Metric
    notes: tuple[str, ...] = field(default=())


def int4_aware_training(
    model: Any,
    dataset: LabeledDataset,
    *,
    plan: Mapping[str, str],
    options: QATOptions | None = None,
    conversion: ConversionOptions | None = None,
    split: str = "validation",
    quantizer: PrecisionQuantizer | None = None,
) -> Int4QATResult:
    """Fine-tune the ``plan``'s int4 layers on the 4-bit grid, export the plan, score it.

    Args:
        model: the trained float model (``tf_keras``, or Keras 3 through its rebuild).
        plan: layer -> precision (as :attr:`TFLiteModel.precisions`); its ``int4`` layers of
            :data:`INT4_QAT_TYPES` train on the int4 grid, every layer is exported at its
            precision.
        options: training knobs (epochs, learning rate, early stopping).
        quantizer: the model's :class:`PrecisionQuantizer`; with GPTQ rounding, training starts
            from its int4 kernels (the post-training solution) instead of nearest rounding.

    Raises:
        InvalidOptionError: the plan has no int4 layer this can train, or names unknown layers.
    """
    options = options or QATOptions()
    check_model(model)
    source = model
    model, rebuilt = as_tf_keras(model, probe=dataset.x_train[:32])
    layers = {layer.name: layer for layer in model.layers}
    unknown = [name for name in plan if name not in layers]
    if unknown:
        raise InvalidOptionError(
            f"The plan names {', '.join(map(repr, unknown))}, not layers of {model.name!r}."
        )
    int4 = [name for name, p in plan.items() if p == "int4"]
    trained = [n for n in int4 if type(layers[n]).__name__ in INT4_QAT_TYPES]
    if not trained:
        raise InvalidOptionError(
            "The plan puts no Conv2D, Conv1D or Dense layer in int4, so int4-aware training has "
            "nothing to train: allow int4 (--precisions int4,...) or a larger budget."
        )
    tf_keras.utils.set_random_seed(options.seed)
    start = gptq_start(model, quantizer, trained) if quantizer is not None else {}
    qat_model = _annotated(model, set(trained), start)
    data, options, monitor = compile_for_fine_tuning(
        qat_model, model, dataset, options, loss=keras3_loss(source) if rebuilt else None
    )
    history = fit_with_early_stopping(qat_model, data, options, monitor)
    kernels = _trained_kernels(qat_model)
    float_copy = _float_copy(model, qat_model, kernels)
    # The trained kernels already lie on the int4 grid: plain rounding stores them unchanged,
    # where GPTQ would move them again.
    quantizer = PrecisionQuantizer(
        float_copy, dataset.x_train, options=conversion, weight_algorithm="min_max"
    )
    precision_plan = {n: p for n, p in plan.items() if n in quantizer.quantizable_layers}
    tflite = quantizer.quantize(precision_plan)
    metric = dataset_metric(dataset)
    quality = evaluate_tflite(tflite, dataset, split=split, metric=metric).accuracy
    untrained = tuple(n for n in int4 if n not in trained)
    notes = [f"int4-aware training of {', '.join(trained)} ({len(history.get('loss', []))} epochs)"]
    if untrained:
        notes.append(
            f"{', '.join(untrained)}: int4 after training only (tfmot's per-axis quantizer does "
            "not take a depthwise kernel's channels)."
        )
    tflite = replace(tflite, mode="mixed_qat", notes=(*tflite.notes, *notes))
    logger.info("int4-aware QAT: %s %s %s", split, metric.label, metric.format(quality))
    return Int4QATResult(
        tflite=tflite,
        trained_layers=tuple(trained),
        untrained_int4_layers=untrained,
        epochs_run=len(history.get("loss", [])),
        history=history,
        quality=quality,
        split=split,
        metric=metric,
        notes=tuple(notes),
    )


def _annotated(model: Any, int4: set[str], kernels: Mapping[str, np.ndarray] | None = None) -> Any:
    """A QAT copy of ``model`` with only the ``int4`` layers fake-quantized (4-bit kernels),
    their kernels taken from ``kernels`` where given."""
    kernels = kernels or {}
    quantize = tfmot.quantization.keras

    def annotate(layer: Any) -> Any:
        copy = layer.__class__.from_config(layer.get_config())
        return (
            quantize.quantize_annotate_layer(copy, Int4WeightConfig())
            if layer.name in int4
            else copy
        )

    with quantize.quantize_scope({"Int4WeightConfig": Int4WeightConfig}):
        annotated = tf_keras.models.clone_model(model, clone_function=annotate)
        by_name = {getattr(layer, "layer", layer).name: layer for layer in annotated.layers}
        for layer in model.layers:
            if layer.weights:
                target = by_name[layer.name]
                values = layer.get_weights()
                if layer.name in kernels:
                    values[0] = kernels[layer.name]
                getattr(target, "layer", target).set_weights(values)
        return quantize.quantize_apply(annotated)


def gptq_start(
    model: Any, quantizer: PrecisionQuantizer, layers: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each of ``layers``' Keras kernel moved to its GPTQ int4 rounding: the file's codes on
    the layer's own grid ``max|w| / 7`` per output channel (BatchNorm folding scales a channel,
    which keeps the codes and may flip their sign). Layers GPTQ does not round are left out."""
    start = {}
    for name in layers:
        codes = quantizer.gptq_codes(name)
        if codes is None:
            continue
        kernel = model.get_layer(name).get_weights()[0]
        # Keras kernels end in the output axis; per output, the order is TFLite's (kh, kw, cin).
        flat = kernel.reshape(-1, kernel.shape[-1]).T
        if flat.shape != codes.shape:
            continue
        sign = np.where(np.sum(codes * flat, axis=1, keepdims=True) < 0, -1.0, 1.0)
        moved = sign * codes * np.abs(flat).max(axis=1, keepdims=True) / 7
        start[name] = moved.T.reshape(kernel.shape).astype(kernel.dtype)
    return start


def _trained_kernels(qat_model: Any) -> dict[str, np.ndarray]:
    """Each fake-quantized layer's kernel as the QAT model multiplies with it, on the final
    range (the quantizer stores the range of the step before the last optimizer update)."""
    kernels = {}
    for wrapper in qat_model.layers:
        for kernel, quantizer, variables in getattr(wrapper, "_weight_vars", None) or ():
            values = kernel.numpy()
            peak = np.abs(values.reshape(-1, values.shape[-1])).max(axis=0)
            variables["min_var"].assign(-peak)
            variables["max_var"].assign(peak)
            kernels[wrapper.layer.name] = quantizer(kernel, False, weights=variables).numpy()
    return kernels


def _float_copy(model: Any, qat_model: Any, kernels: Mapping[str, np.ndarray]) -> Any:
    """``model``'s architecture with the QAT model's weights, int4 kernels on their grid."""
    copy = tf_keras.models.clone_model(model)
    # A wrapped layer's variables keep their "<layer>/<weight>" names inside the wrapper's.
    trained = {_short(v.name): v for v in qat_model.weights}
    for layer in copy.layers:
        if not layer.weights:
            continue
        values = []
        for variable in layer.weights:
            key = f"{layer.name}/{_short(variable.name).rsplit('/', 1)[-1]}"
            if layer.name in kernels and key.endswith("/kernel"):
                values.append(kernels[layer.name])
            else:
                values.append(trained[key].numpy())
        layer.set_weights(values)
    return copy


def _short(name: str) -> str:
    """``conv2/kernel`` from ``quant_conv2/conv2/kernel:0`` or ``conv2/kernel:0``."""
    parts = name.split(":")[0].split("/")
    return "/".join(parts[-2:])


def mixed_qat(
    model: Any,
    dataset: LabeledDataset,
    *,
    budget: Targets,
    precisions: str | Sequence[str] | None = None,
    objective: str = "bytes",
    relax: float = 3.0,
    options: QATOptions | None = None,
    conversion: ConversionOptions | None = None,
    split: str = "validation",
    profile_mode: str = "fast",
) -> Int4QATResult:
    """The ``mixed_qat`` candidate: a plan chosen with ``relax`` times the budget's allowed drop
    (training wins part of it back), its int4 layers trained on the int4 grid, the plan
    exported. Whether the budget itself holds is said in the notes; the gate decides.

    Raises:
        InvalidOptionError: ``relax`` below 1, or a plan without a trainable int4 layer.
    """
    if not relax >= 1:
        raise InvalidOptionError(f"relax must be >= 1 (the budget times relax), got {relax!r}.")
    quantizer = PrecisionQuantizer(model, dataset.x_train, options=conversion)
    profile = profile_for_objective(
        model, dataset, quantizer, precisions, objective=objective, mode=profile_mode, split=split
    )
    metric = dataset_metric(dataset)
    if budget.metric != metric:
        budget = budget.with_metric(metric)
    x, y = dataset.split(split)
    reference = metric.score(keras_outputs(model, x), y, x)
    allowed = metric.worse_by(reference, budget.quality_floor(reference))
    relaxed = metric.shifted(reference, allowed * relax)
    all_int8 = metric.score(run_tflite(quantizer.quantize(), x), y, x)
    plan = choose_plan(
        profile,
        slack=metric.worse_by(all_int8, relaxed),
        objective=objective,
        precisions=parse_precisions(precisions),
    )
    if plan is None:
        raise InvalidOptionError(
            f"No plan fits even {relax:g} times the budget: allow more precisions or a larger drop."
        )
    result = int4_aware_training(
        model,
        dataset,
        plan=plan,
        options=options,
        conversion=conversion,
        split=split,
        quantizer=quantizer,
    )
    met = budget.quality_met(reference, result.quality)
    note = (
        f"plan chosen within {relax:g}x the allowed drop, then trained: {split} "
        f"{metric.format(result.quality)} against the floor "
        f"{metric.format(budget.quality_floor(reference))} ({'met' if met else 'not met'})"
    )
    return replace(result, tflite=replace(result.tflite, notes=(*result.tflite.notes, note)))
