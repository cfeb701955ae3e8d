"""A candidate's BatchNorm statistics recomputed after its edits, kept when validation says so.

Shared by the trial that measures a candidate and by :func:`~.apply.apply_plan`, which rebuilds
a suggestion: both take the same decision on the same data, so the rebuilt model is the one
the search measured.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..batchnorm import batchnorm_layers, reestimate_batchnorm
from ..inputs import for_keras
from ..outputs import scored

__all__ = ["distillation_teacher", "outputs_of", "recalibrated"]


def outputs_of(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's scored outputs on ``x``, by direct calls (``predict`` traces a new function
    for every candidate model)."""
    parts = [
        scored(model(for_keras(x[i : i + batch_size]), training=False))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts)


def recalibrated(
    model: Any,
    x_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    metric: Any,
    *,
    max_examples: int,
    seed: int,
    quality: float | None = None,
    subject: str = "after the edits",
) -> tuple[Any, float, str | None]:
    """``model`` with its BatchNorm statistics recomputed on ``x_train`` when that scores
    better on validation (else ``model`` itself), its validation quality (``quality`` is the
    model's own when already measured), and a note (None for a model without BatchNorm)."""
    if quality is None:
        quality = metric.score(outputs_of(model, x_val), y_val, x_val)
    if not batchnorm_layers(model):
        return model, quality, None
    result = reestimate_batchnorm(model, x_train, max_examples=max_examples, seed=seed)
    after = metric.score(outputs_of(result.model, x_val), y_val, x_val)
    kept = metric.worse_by(quality, after) < 0
    note = (
        f"BatchNorm statistics re-estimated {subject}: validation {metric.format(quality)} "
        f"-> {metric.format(after)} ({'kept' if kept else 'not kept'})"
    )
    return (result.model, after, note) if kept else (model, quality, note)


def distillation_teacher(model: Any, dataset: Any, *, max_examples: int) -> tuple[Any, str | None]:
    """The teacher candidates are distilled from: the original, with its BatchNorm statistics
    re-estimated on the user's train split when that scores better on validation (a model
    trained on other images teaches better with statistics of the user's), and a note."""
    from ..tasks import dataset_metric

    teacher, _, note = recalibrated(
        model,
        dataset.x_train,
        dataset.x_val,
        dataset.y_val,
        dataset_metric(dataset),
        max_examples=max_examples,
        seed=0,
        subject="for the distillation teacher (the original)",
    )
    return teacher, note
