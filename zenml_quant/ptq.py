"""Post-training quantization: any conversion mode, selective int8, and accuracy control.

Accuracy control answers "quantize everything you can while the quality drop stays within my
budget, and tell me which layers you kept in float". Quality is the dataset's metric (top-1
accuracy, AUC, MAE, ...). It starts from full int8 and keeps layers in float in order of
sensitivity until the budget is met on the validation split, then tries to put each of them
back to int8 (so the float set is as small as this order allows). Every model tried is
recorded. When no model tried meets the budget, the best one is returned with status
``"budget not met"`` and the reason: the deployment gate decides, not this function.

Float layers cost bytes, so they are kept only for a gain the validation split can tell from
noise: the chosen model must beat full int8 in a one-sided paired test on the same examples
(:mod:`zenml_quant.paired`); otherwise full int8 is returned and the reason says why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .calibration import check_calibrated, int8_from_calibrated
from .convert import convert_model
from .errors import InvalidOptionError
from .evaluate import keras_outputs
from .interpreter import run_tflite
from .metrics import Metric
from .paired import PairedTest, paired_gain
from .selective import SelectiveQuantizer
from .sensitivity import profile_sensitivity
from .targets import Targets
from .tasks import dataset_metric
from .types import (
    MODES,
    CalibratedModel,
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
    calibrated: CalibratedModel | None = None,
) -> PTQResult:
    """Quantize ``model`` after training, in one of three ways.

    - No budget and no float layers: a plain conversion in ``mode`` (any of the five modes).
    - ``float_layers`` / ``float_layer_types``: int8 with those layers (or every layer of those
      Keras classes) kept in float.
    - ``budget``: accuracy control (:func:`quantize_with_accuracy_budget`), starting from the
      given float layers, if any.

    The last two need ``mode="int8"``. ``calibrated`` (``model`` already calibrated with
    ``options`` on the train split, :func:`zenml_quant.calibration.calibrate`) saves calibrating
    again in ``int8``.
    """
    if mode not in MODES:
        raise InvalidOptionError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    selective = bool(float_layers) or bool(float_layer_types)
    if (selective or budget is not None) and mode != "int8":
        raise InvalidOptionError(
            f"Float layers and accuracy budgets apply to int8 models; got mode {mode!r}. Use "
            "mode='int8', or drop float_layers/max_quality_drop for a plain conversion."
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
            calibrated=calibrated,
        )
    if selective:
        quantizer = SelectiveQuantizer(
            model, dataset.x_train, options=options, calibrated=calibrated
        )
        tflite = quantizer.quantize(quantizer.resolve(float_layers, float_layer_types))
        reason = f"int8 with {len(tflite.float_layers)} layer(s) kept in float, as asked"
    elif calibrated is not None and mode == "int8":
        check_calibrated(calibrated, model, dataset.x_train, options)
        tflite = int8_from_calibrated(calibrated)
        reason = "plain int8 conversion (from the shared calibration)"
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
    calibrated: CalibratedModel | None = None,
) -> PTQResult:
    """The int8 model with the fewest float layers whose quality drop on ``split`` fits ``budget``.

    Args:
        budget: the quality drop allowed against the float Keras model on ``split``, in the
            dataset's metric (a budget in another metric is read in the dataset's).
        keep_float / keep_float_types: layers kept in float in every attempt.
        ranking: layer names, most sensitive first (e.g. ``SensitivityReport.ranking``); by
            default a fast sensitivity profile is run. Layers missing from it are tried last.
        search: ``"greedy"`` or ``"bisect"`` (see :data:`SEARCHES`).
        max_float_layers: at most this many layers beyond ``keep_float`` are kept in float.
        quantizer: a calibrated :class:`SelectiveQuantizer` to reuse.
        calibrated: ``model`` already calibrated with ``options`` on the train split, to
            quantize from without calibrating (when no ``quantizer`` is given).
    """
    if search not in SEARCHES:
        raise InvalidOptionError(f"Unknown search {search!r}: use 'greedy' or 'bisect'.")
    if max_float_layers is not None and max_float_layers < 0:
        raise InvalidOptionError(f"max_float_layers must be >= 0, got {max_float_layers}.")
    x, y = dataset.split(split)
    if len(y) == 0:
        raise InvalidOptionError(f"The {split!r} split is empty: accuracy control needs examples.")
    quantizer = quantizer or SelectiveQuantizer(
        model, dataset.x_train, options=options, calibrated=calibrated
    )
    base = quantizer.resolve(keep_float, keep_float_types)
    if ranking is None:
        ranking = profile_sensitivity(model, dataset, split=split, quantizer=quantizer).ranking
    else:
        quantizer.resolve(ranking)  # a name from another model is an error, not skipped
    candidates = _order(quantizer.quantizable_layers, ranking, exclude=base)
    if max_float_layers is not None:
        candidates = candidates[:max_float_layers]

    metric = dataset_metric(dataset)
    if budget.metric != metric:
        budget = budget.with_metric(metric)
    reference = metric.score(keras_outputs(model, x), y, x)
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
        allowed = metric.worse_by(reference, budget.quality_floor(reference))
        reason = (
            f"drop {metric.format_change(final.drop)} {metric.change_unit} <= allowed "
            f"{metric.format_change(allowed)} with {len(chosen)} float layer(s)"
            + (f": {', '.join(chosen)}" if chosen else "")
        )
    else:
        final = trial.best()
        status = "budget not met"
        reason = _not_met_reason(trial, final, len(candidates), budget, reference)
    final, status, reason = _noise_check(trial, base, final, status, reason)
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
        self.metric: Metric = budget.metric
        self.attempts: list[QuantizationAttempt] = []
        self.models: dict[tuple[str, ...], TFLiteModel] = {}
        self.outputs: dict[tuple[str, ...], Any] = {}
        self._order = {name: i for i, name in enumerate(layer.layer for layer in quantizer.layers)}

    def key(self, layers: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(set(layers), key=self._order.__getitem__))

    def run(self, layers: Sequence[str], action: str) -> QuantizationAttempt:
        key = self.key(layers)
        if key in self.models:
            return self.attempt_for(key)
        model = self.quantizer.quantize(key)
        worst = float("-inf") if self.metric.higher_is_better else float("inf")
        accuracy = worst
        if model.ok:
            self.outputs[key] = run_tflite(model, self.x)
            accuracy = self.metric.score(self.outputs[key], self.y, self.x)
        attempt = QuantizationAttempt(
            step=len(self.attempts) + 1,
            action=action,
            float_layers=key,
            accuracy=accuracy,
            drop=self.metric.worse_by(self.reference, accuracy),
            size_bytes=model.size_bytes,
            meets_budget=model.ok and self.budget.quality_met(self.reference, accuracy),
        )
        self.models[key] = model
        self.attempts.append(attempt)
        logger.info(
            "attempt %d (%s): %d float layer(s), %s %s, drop %s %s, %s B%s",
            attempt.step,
            action,
            len(key),
            self.metric.label,
            self.metric.format(accuracy),
            self.metric.format_change(attempt.drop),
            self.metric.change_unit,
            f"{attempt.size_bytes:,}",
            ", meets the budget" if attempt.meets_budget else "",
        )
        return attempt

    def attempt_for(self, layers: Sequence[str]) -> QuantizationAttempt:
        key = self.key(layers)
        return next(a for a in self.attempts if a.float_layers == key)

    def best_met(self) -> QuantizationAttempt | None:
        met = [a for a in self.attempts if a.meets_budget]
        return min(met, key=lambda a: (len(a.float_layers), a.size_bytes, a.drop), default=None)

    def best(self) -> QuantizationAttempt:
        return min(self.attempts, key=lambda a: (a.drop, a.size_bytes))

    def paired(self, a: Sequence[str], b: Sequence[str]) -> PairedTest | None:
        """The paired test of attempt ``a`` against attempt ``b`` (None if either failed)."""
        ka, kb = self.key(a), self.key(b)
        if ka not in self.outputs or kb not in self.outputs:
            return None
        return paired_gain(self.metric, self.outputs[ka], self.outputs[kb], self.y, self.x)


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


def _noise_check(
    trial: _Trials,
    base: Sequence[str],
    final: QuantizationAttempt,
    status: str,
    reason: str,
) -> tuple[QuantizationAttempt, str, str]:
    """Keep ``final``'s extra float layers only if they beat ``base`` (full int8, or the
    user's float layers) beyond validation noise; else fall back to ``base``."""
    extra = [n for n in final.float_layers if n not in base]
    if not extra:
        return final, status, reason
    test = trial.paired(final.float_layers, base)
    if test is None:
        return final, status, reason
    metric = trial.metric
    if test.significant:
        return final, status, f"{reason}; gain over int8: {test.describe(metric)}"
    start = trial.attempt_for(base)
    note = (
        f"keeping {len(extra)} layer(s) in float ({', '.join(extra)}) would gain "
        f"{test.describe(metric)}, so they stay int8"
    )
    if status == "budget met" and not start.meets_budget:
        status = "budget not met"
        note = (
            f"int8 misses the budget on validation (drop {metric.format_change(start.drop)} "
            f"{metric.change_unit}), and {note}"
        )
    elif status == "budget not met":
        note = f"{reason} {note[0].upper()}{note[1:]}."
    return start, status, note


def _not_met_reason(
    trial: _Trials, best: QuantizationAttempt, tried: int, budget: Targets, reference: float
) -> str:
    metric = trial.metric
    allowed = metric.worse_by(reference, budget.quality_floor(reference))
    text = (
        f"no model tried meets the budget ({budget.describe_quality()}: drop <= "
        f"{metric.format_change(allowed)} {metric.change_unit} from {metric.format(reference)})."
        f" Best: {metric.format(best.accuracy)} (drop {metric.format_change(best.drop)} "
        f"{metric.change_unit}) with {len(best.float_layers)} float layer(s), after "
        f"{len(trial.attempts)} attempts over {tried} candidate layer(s)."
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
