"""The baseline: what the Keras model costs and scores before any compression."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .convert import convert_model
from .errors import InvalidOptionError
from .evaluate import evaluate_keras
from .metrics import Metric
from .models import check_model, model_flavour
from .profile import layer_table, parameter_counts
from .tasks import dataset_task
from .types import BaselineSummary, LabeledDataset, TFLiteModel

__all__ = ["profile_baseline"]


def profile_baseline(
    model: Any,
    dataset: LabeledDataset,
    *,
    split: str = "test",
    metric: Metric | None = None,
    float_model: TFLiteModel | None = None,
) -> tuple[BaselineSummary, pd.DataFrame]:
    """Evaluate ``model`` on ``split`` and profile it layer by layer.

    Returns the summary (``metric``'s value, top-1 accuracy by default; compiled metrics; parameters, MACs, float32 weight bytes, estimated
    peak activation memory and float32 TFLite size) and the per-layer table of
    :func:`zenml_quant.profile.layer_table`. The peak memory is read off the float32 TFLite
    graph, where BatchNorm is already folded, so it is what the device will see. Pass
    ``float_model`` when the float32 conversion exists already, to avoid converting twice.
    """
    check_model(model)
    evaluation = evaluate_keras(model, dataset, split=split, metric=metric)
    layers = layer_table(model)
    total, trainable = parameter_counts(model)
    if float_model is None:
        float_model = convert_model(model, "float32")
    elif float_model.mode != "float32":
        raise InvalidOptionError(
            f"float_model must be the float32 conversion of the model, got a {float_model.mode!r} "
            "one: pass the output of the float32 conversion, or nothing."
        )
    summary = BaselineSummary(
        model_name=str(model.name),
        flavour=model_flavour(model),
        split=split,
        n_samples=evaluation.n_samples,
        accuracy=evaluation.accuracy,
        metrics=evaluation.metrics,
        params=int(total),
        trainable_params=int(trainable),
        macs=int(layers["macs"].sum()),
        float32_weight_bytes=int(layers["weight_bytes_float32"].sum()),
        peak_activation_bytes=int(float_model.peak_activation_bytes or 0),
        float_tflite_bytes=float_model.size_bytes,
        metric=evaluation.metric,
        higher_is_better=True if metric is None else metric.higher_is_better,
        task=dataset_task(dataset),
        validation_source=dataset.validation_source,
    )
    return summary, layers
