"""Post-training quantization: any conversion mode, selective int8, and accuracy control.

Accuracy control answers "quantize everything you can while the accuracy drop stays within my
budget, and tell me which layers you kept in float". It starts from full int8 and keeps layers
in float in order of sensitivity until the budget is met on the validation split, then tries
to put each of them back to int8 (so the float set is as small as this order allows). Every
model tried is recorded. When no model tried meets the budget, the best one is returned with
status ``"budget not met"`` and the reason: the deployment gate decides, not this function.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .convert import convert_model
from .errors import InvalidOptionError
from .evaluate import evaluate_keras
from .selective import SelectiveQuantizer
from .sensitivity import profile_sensitivity, tflite_accuracy
from .targets import Targets
from .types import (
    MODES,
    ConversionOptions,
    LabeledDataset,
    PTQResult,
    QuantizationAttempt,
    TFLiteModel,
)

__all__ = ["SEARCHES", "quantize_post_training", "quantize_with_accuracy_budget"]

logger = logging.getLogger(__name__)

#: ``greedy`` adds one layer at a time (fewest float layers); ``bisect`` halves the ranked list
#: (about log2(n) evaluations instead of n, assuming more float layers never hurt).
SEARCHES = ("greedy", "bisect")


def quantize_post_training(
    model: Any,
    dataset: LabeledDataset,
    *,
    mode: str = "int8",
    float_layers: Sequence[str] = (),
    float_layer_types: Sequence[str] = (),
    budget: Targets | None = None,
    ranking: Sequence[str] | None = None,
    search: str = "greedy",
    max_float_layers: int | None = None,
    split: str = "validation",
    options: ConversionOptions | None = None,
) -> PTQResult:
    """Quantize ``model`` after training, in one of three ways.

    - No budget and no float layers: a plain conversion in ``mode`` (any of the five modes).
    - ``float_layers`` / ``float_layer_types``: int8 with those layers (or every layer of those
      Keras classes) kept in float.
    - ``budget``: accuracy control (:func:`quantize_with_accuracy_budget`), starting from the
      given float layers, if any.

    The last two need ``mode="int8"``.
    """
    if mode not in MODES:
        raise InvalidOptionError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    selective = bool(float_layers) or bool(float_layer_types)
    if (selective or budget is not None) and mode != "int8":
        raise InvalidOptionError(
            f"Float layers and accuracy budgets apply to int8 models; got mode {mode!r}. Use "
            "mode='int8', or drop float_layers/max_accuracy_drop for a plain conversion."
        )
    if budget is not None:
        return quantize_with_accuracy_budget(
            model,
            dataset,
            budget=budget,
            keep_float=float_layers,
            keep_float_types=float_layer_types,
            ranking=ranking,
            search=search,
            max_float_layers=max_float_layers,
            split=split,
            options=options,
        )
    if selective:
        quantizer = SelectiveQuantizer(model, dataset.x_train, options=options)
        tflite = quantizer.quantize(quantizer.resolve(float_layers, float_layer_types))
        reason = f"int8 with {len(tflite.float_layers)} layer(s) kept in float, as asked"
    else:
        tflite = convert_model(model, mode, representative_data=dataset.x_train, options=options)
        reason = f"plain {mode} conversion"
    return PTQResult(model=tflite, status="converted", reason=reason, split=split)


def quantize_with_accuracy_budget(
    model: Any,
    dataset: LabeledDataset,
    *,
    budget: Targets,
    keep_float: Sequence[str] = (),
    keep_float_types: Sequence[str] = (),
    ranking: Sequence[str] | None = None,
    search: str = "greedy",
    max_float_layers: int | None = None,
    split: str = "validation",
    options: ConversionOptions | None = None,
    quantizer: SelectiveQuantizer | None = None,
) -> PTQResult:
    """The int8 model with the fewest float layers whose accuracy drop on ``split`` fits ``budget``.

    Args:
        budget: the accuracy drop allowed against the float Keras model on ``split``.
        keep_float / keep_float_types: layers kept in float in every attempt.
        ranking: layer names, most sensitive first (e.g. ``SensitivityReport.ranking``); by
            default a fast sensitivity profile is run. Layers missing from it are tried last.
        search: ``"greedy"`` or ``"bisect"`` (see :data:`SEARCHES`).
        max_float_layers: at most this many layers beyond ``keep_float`` are kept in float.
        quantizer: a calibrated :class:`SelectiveQuantizer` to reuse.
    """
    if search not in SEARCHES:
        raise InvalidOptionError(f"Unknown search {search!r}: use 'greedy' or 'bisect'.")
    if max_float_layers is not None and max_float_layers < 0:
        raise InvalidOptionError(f"max_float_layers must be >= 0, got {max_float_layers}.")
    x, y = dataset.split(split)
    if len(y) == 0:
        raise InvalidOptionError(f"The {split!r} split is empty: accuracy control needs examples.")
    quantizer = quantizer or SelectiveQuantizer(model, dataset.x_train, options=options)
    base = quantizer.resolve(keep_float, keep_float_types)
    if ranking is None:
        ranking = profile_sensitivity(model, dataset, split=split, quantizer=quantizer).ranking
    else:
        quantizer.resolve(ranking)  # a name from another model is an error, not skipped
    candidates = _order(quantizer.quantizable_layers, ranking, exclude=base)
    if max_float_layers is not None:
        candidates = candidates[:max_float_layers]

    reference = evaluate_keras(model, dataset, split=split, compiled_metrics=False).accuracy
    trial = _Trials(quantizer, budget, reference, x, y)
    trial.run(base, "start" if base else "full int8")
    if not trial.best_met():
        if search == "greedy":
            _greedy(trial, base, candidates)
        else:
            _bisect(trial, base, candidates)
    met = trial.best_met()
    if met is not None:
        chosen = _prune(trial, base, met.float_layers, candidates)
        final = trial.attempt_for(chosen)
        status = "budget met"
        reason = (
            f"drop {100 * final.drop:.2f} pts <= allowed {100 * (reference - budget.accuracy_floor(reference)):.2f}"
            f" pts with {len(chosen)} float layer(s)" + (f": {', '.join(chosen)}" if chosen else "")
        )
    else:
        final = trial.best()
        status = "budget not met"
        reason = _not_met_reason(trial, final, len(candidates), budget, reference)
    logger.info("accuracy control: %s (%s)", status, reason)
    model_out = trial.models[final.float_layers]
    if status == "budget not met":  # the note travels with the file into every report
        model_out = replace(
            model_out, notes=(*model_out.notes, f"accuracy budget not met: {reason}")
        )
    return PTQResult(
        model=model_out,
        status=status,
        reason=reason,
        split=split,
        budget=budget,
        reference_accuracy=reference,
        accuracy=final.accuracy,
        attempts=tuple(trial.attempts),
    )


class _Trials:
    """Quantize, score and remember every float-layer set tried (each set once)."""

    def __init__(
        self,
        quantizer: SelectiveQuantizer,
        budget: Targets,
        reference: float,
        x: Any,
        y: Any,
    ) -> None:
        self.quantizer = quantizer
        self.budget = budget
        self.reference = reference
        self.x, self.y = x, y
        self.attempts: list[QuantizationAttempt] = []
        self.models: dict[tuple[str, ...], TFLiteModel] = {}
        self._order = {name: i for i, name in enumerate(layer.layer for layer in quantizer.layers)}

    def key(self, layers: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(set(layers), key=self._order.__getitem__))

    def run(self, layers: Sequence[str], action: str) -> QuantizationAttempt:
        key = self.key(layers)
        if key in self.models:
            return self.attempt_for(key)
        model = self.quantizer.quantize(key)
        accuracy = tflite_accuracy(model, self.x, self.y) if model.ok else float("-inf")
        attempt = QuantizationAttempt(
            step=len(self.attempts) + 1,
            action=action,
            float_layers=key,
            accuracy=accuracy,
            drop=self.reference - accuracy,
            size_bytes=model.size_bytes,
            meets_budget=model.ok and self.budget.accuracy_met(self.reference, accuracy),
        )
        self.models[key] = model
        self.attempts.append(attempt)
        logger.info(
            "attempt %d (%s): %d float layer(s), accuracy %.4f, drop %+.2f pts, %s B%s",
            attempt.step,
            action,
            len(key),
            accuracy,
            100 * attempt.drop,
            f"{attempt.size_bytes:,}",
            ", meets the budget" if attempt.meets_budget else "",
        )
        return attempt

    def attempt_for(self, layers: Sequence[str]) -> QuantizationAttempt:
        key = self.key(layers)
        return next(a for a in self.attempts if a.float_layers == key)

    def best_met(self) -> QuantizationAttempt | None:
        met = [a for a in self.attempts if a.meets_budget]
        return min(
            met, key=lambda a: (len(a.float_layers), a.size_bytes, -a.accuracy), default=None
        )

    def best(self) -> QuantizationAttempt:
        return max(self.attempts, key=lambda a: (a.accuracy, -a.size_bytes))


def _order(layers: Sequence[str], ranking: Sequence[str], *, exclude: Sequence[str]) -> list[str]:
    ranked = [name for name in dict.fromkeys(ranking) if name in layers]
    rest = [name for name in layers if name not in ranked]
    return [name for name in ranked + rest if name not in exclude]


def _greedy(trial: _Trials, base: Sequence[str], candidates: Sequence[str]) -> None:
    for i, name in enumerate(candidates, start=1):
        if trial.run([*base, *candidates[:i]], f"keep {name} in float").meets_budget:
            return


def _bisect(trial: _Trials, base: Sequence[str], candidates: Sequence[str]) -> None:
    if (
        not candidates
        or not trial.run([*base, *candidates], "all candidates in float").meets_budget
    ):
        return
    low, high = 0, len(candidates)  # prefix `low` misses the budget, prefix `high` meets it
    while high - low > 1:
        mid = (low + high) // 2
        if trial.run([*base, *candidates[:mid]], f"top {mid} in float").meets_budget:
            high = mid
        else:
            low = mid


def _prune(
    trial: _Trials, base: Sequence[str], chosen: Sequence[str], candidates: Sequence[str]
) -> tuple[str, ...]:
    """Put each added float layer back to int8 (least sensitive first) while the budget holds."""
    current = list(chosen)
    for name in [n for n in reversed(candidates) if n in chosen and n not in base]:
        fewer = [n for n in current if n != name]
        if trial.run(fewer, f"back to int8: {name}").meets_budget:
            current = fewer
    return trial.key(current)


def _not_met_reason(
    trial: _Trials, best: QuantizationAttempt, tried: int, budget: Targets, reference: float
) -> str:
    allowed = 100 * (reference - budget.accuracy_floor(reference))
    text = (
        f"no model tried meets the budget ({budget.describe_quality()}: drop <= {allowed:.2f} pts from "
        f"{100 * reference:.2f} %). Best: {100 * best.accuracy:.2f} % (drop {100 * best.drop:.2f} "
        f"pts) with {len(best.float_layers)} float layer(s), after {len(trial.attempts)} "
        f"attempts over {tried} candidate layer(s)."
    )
    every = set(trial.quantizer.quantizable_layers)
    if any(set(a.float_layers) >= every for a in trial.attempts):
        text += (
            " Even with every layer in float the drop remains: it comes from the int8 inputs and "
            "outputs (try quantized_io=False) or from the calibration data."
        )
    else:
        text += " Allow more float layers (max_float_layers), a larger budget, or try QAT."
    return text
