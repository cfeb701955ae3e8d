"""Which layers lose accuracy when quantized to int8, named by their Keras layer names.

Two exact measures per quantizable layer, on one split, against the float Keras model:

Drops are in the dataset's metric (:mod:`zenml_quant.metrics`): percentage points of an
accuracy or AUC, the metric's own units otherwise (e.g. MAE), larger meaning worse.

- ``drop_alone_pts``: the quality drop when only this layer is int8 and the rest stay float;
- ``drop_all_but_pts``: the drop when every layer but this one is int8 (``recovery_pts`` is how
  much of the full-int8 drop keeping this one layer in float wins back).

Plus the TFLite quantization debugger's per-layer error statistics (see
:meth:`SelectiveQuantizer.layer_errors`). ``mode="exhaustive"`` measures both drops for every
layer (two evaluations each); ``mode="fast"`` runs the debugger once and measures the drop
alone of only the ``top_k`` layers it suspects most (one evaluation each: the drop alone is the
one that also flags a pair of layers that only help together, such as both ends of an outlier
tensor). Both calibrate once and re-quantize in milliseconds, so the cost is the evaluations.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidOptionError
from .evaluate import accuracy_from_outputs, keras_outputs
from .interpreter import run_tflite
from .selective import SelectiveQuantizer
from .tasks import dataset_metric
from .types import CalibratedModel, ConversionOptions, LabeledDataset, TFLiteModel

__all__ = ["SENSITIVITY_MODES", "SensitivityReport", "profile_sensitivity", "tflite_accuracy"]

logger = logging.getLogger(__name__)

SENSITIVITY_MODES = ("fast", "exhaustive")


@dataclass(frozen=True, eq=False)
class SensitivityReport:
    """The ranked per-layer table and the figures it was measured against.

    ``table`` has one row per quantizable layer, most sensitive first: ``rank``, ``layer``,
    ``type``, ``ops``, ``measured`` (exact drops taken), ``drop_alone_pts``,
    ``drop_all_but_pts`` and ``recovery_pts`` (exhaustive mode only), ``sensitivity_pts`` (the
    larger of drop-alone and recovery: what this layer costs or can win back), ``rmse_over_scale``, ``noise_to_signal``
    and ``input_noise_to_signal`` (debugger statistics) and ``suspicion`` (the debugger's
    ranking signal). Accuracy figures are in percentage points.
    """

    table: pd.DataFrame
    mode: str
    split: str
    n_samples: int
    float_accuracy: float
    int8_accuracy: float
    evaluations: int
    seconds: float

    @property
    def ranking(self) -> tuple[str, ...]:
        """Layer names, most sensitive first."""
        return tuple(self.table["layer"])


def tflite_accuracy(model: TFLiteModel, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a TFLite model on ``(x, y)``."""
    return accuracy_from_outputs(run_tflite(model, x), y)


def profile_sensitivity(
    model: Any,
    dataset: LabeledDataset,
    *,
    mode: str = "fast",
    top_k: int = 3,
    split: str = "validation",
    debug_samples: int = 200,
    options: ConversionOptions | None = None,
    quantizer: SelectiveQuantizer | None = None,
    calibrated: CalibratedModel | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> SensitivityReport:
    """Rank the quantizable layers of ``model`` by how much int8 costs them on ``split``.

    Args:
        model: the float Keras model.
        dataset: train features calibrate; ``split`` scores.
        mode: ``"fast"`` (debugger pass, then exact drops for the ``top_k`` suspects) or
            ``"exhaustive"`` (exact drops for every layer).
        top_k: how many suspects ``"fast"`` measures exactly.
        debug_samples: examples of ``split`` the debugger runs.
        options: conversion options (calibration samples, seed, quantized I/O).
        quantizer: a calibrated :class:`SelectiveQuantizer` to reuse.
        calibrated: ``model`` already calibrated with ``options`` on the train split
            (:func:`zenml_quant.calibration.calibrate`), to quantize from without calibrating.
        progress: called as ``progress(done, total, message)`` after each evaluation.
    """
    if mode not in SENSITIVITY_MODES:
        raise InvalidOptionError(
            f"Unknown sensitivity mode {mode!r}: use 'fast' (one debugger pass plus exact drops "
            "for the top_k suspects) or 'exhaustive' (exact drops for every layer)."
        )
    if top_k < 1:
        raise InvalidOptionError(f"top_k must be at least 1, got {top_k}.")
    started = time.perf_counter()
    x, y = dataset.split(split)
    if len(y) == 0:
        raise InvalidOptionError(f"The {split!r} split is empty: sensitivity needs examples.")
    quantizer = quantizer or SelectiveQuantizer(
        model, dataset.x_train, options=options, calibrated=calibrated
    )
    layers = list(quantizer.quantizable_layers)
    errors = quantizer.layer_errors(x, max_samples=debug_samples)
    errors = errors[errors["layer"].isin(layers)].reset_index(drop=True)
    errors["suspicion"] = errors[["noise_to_signal", "input_noise_to_signal"]].max(axis=1)
    chosen = layers if mode == "exhaustive" else _top(errors, top_k)

    metric = dataset_metric(dataset)
    float_accuracy = metric.score(keras_outputs(model, x), y, x)

    def score(tflite: TFLiteModel) -> float:
        return metric.score(run_tflite(tflite, x), y, x)

    int8_accuracy = score(quantizer.quantize())
    per_layer = 2 if mode == "exhaustive" else 1
    total, done = per_layer * len(chosen), 0
    exact: dict[str, tuple[float, float]] = {}
    for name in chosen:
        alone = score(quantizer.quantize([n for n in layers if n != name]))
        all_but = math.nan
        if mode == "exhaustive":
            all_but = metric.worse_by(float_accuracy, score(quantizer.quantize([name])))
        exact[name] = (metric.worse_by(float_accuracy, alone), all_but)
        done += per_layer
        unit = metric.change_unit
        message = (
            f"sensitivity {done // per_layer}/{len(chosen)}: {name} drop alone "
            f"{metric.format_change(exact[name][0])} {unit}"
            + (
                f", all but it {metric.format_change(all_but)} {unit}"
                if mode == "exhaustive"
                else ""
            )
        )
        logger.info(message)
        if progress is not None:
            progress(done, total, message)
    table = _table(
        errors,
        exact,
        metric.worse_by(float_accuracy, int8_accuracy),
        100.0 if metric.fraction else 1.0,
    )
    return SensitivityReport(
        table=table,
        mode=mode,
        split=split,
        n_samples=len(y),
        float_accuracy=float_accuracy,
        int8_accuracy=int8_accuracy,
        evaluations=total + 1,
        seconds=time.perf_counter() - started,
    )


def _top(errors: pd.DataFrame, k: int) -> list[str]:
    ranked = errors.sort_values("suspicion", ascending=False, na_position="last", kind="stable")
    return list(ranked["layer"][:k])


def _table(
    errors: pd.DataFrame, exact: dict[str, tuple[float, float]], int8_drop: float, scale: float
) -> pd.DataFrame:
    # "pts" columns are percentage points for an accuracy or AUC (scale 100), else the metric's
    # own units, always oriented so that a larger value is a larger loss.
    def pts(name: str, which: int) -> float:
        return scale * exact[name][which] if name in exact else math.nan

    table = errors.assign(
        measured=errors["layer"].isin(list(exact)),
        drop_alone_pts=[pts(n, 0) for n in errors["layer"]],
        drop_all_but_pts=[pts(n, 1) for n in errors["layer"]],
    )
    table["recovery_pts"] = scale * int8_drop - table["drop_all_but_pts"]
    table["sensitivity_pts"] = table[["drop_alone_pts", "recovery_pts"]].max(axis=1)
    # Measured layers first, by what they cost; then the rest in the debugger's order.
    table = table.sort_values(
        ["measured", "sensitivity_pts", "suspicion"],
        ascending=[False, False, False],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    columns = [
        "rank",
        "layer",
        "type",
        "ops",
        "measured",
        "sensitivity_pts",
        "drop_alone_pts",
        "drop_all_but_pts",
        "recovery_pts",
        "rmse_over_scale",
        "noise_to_signal",
        "input_noise_to_signal",
        "suspicion",
    ]
    return table[columns]
