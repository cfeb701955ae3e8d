"""The baseline step: the float model's quality and resources."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from ... import baseline as _baseline
from ...report import compress as _report
from ...tasks import dataset_metric
from ...types import (
    BaselineSummary,
    LabeledDataset,
    TFLiteModel,
)
from .._runtime import STEP_SETTINGS, record_metadata

__all__ = ["evaluate_baseline"]

logger = logging.getLogger(__name__)


@step(name="zq_evaluate_baseline", settings=STEP_SETTINGS)
def evaluate_baseline(
    model: Any,
    dataset: LabeledDataset,
    float_model: TFLiteModel | None = None,
    split: str = "test",
) -> tuple[
    Annotated[BaselineSummary, "zq_baseline"],
    Annotated[pd.DataFrame, "zq_layer_table"],
    Annotated[HTMLString, "zq_baseline_report"],
]:
    """Quality (the dataset's metric), parameters, per-layer MACs and weight bytes, peak memory,
    float32 TFLite size. ``float_model``, the output of a float32 :func:`convert_to_tflite`,
    spares a second conversion.
    """
    summary, layers = _baseline.profile_baseline(
        model,
        dataset,
        split=split,
        metric=dataset_metric(dataset),
        float_model=float_model,
    )
    record_metadata(
        {
            "metric": summary.metric,
            "quality": summary.accuracy,
            "params": summary.params,
            "macs": summary.macs,
            "peak_activation_bytes": summary.peak_activation_bytes,
            "float_tflite_bytes": summary.float_tflite_bytes,
        }
    )
    page = HTMLString(_report.layer_table_html(summary, layers))
    return summary, layers, page
