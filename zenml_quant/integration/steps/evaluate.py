"""Steps that measure converted candidates and compare them."""

from __future__ import annotations

import logging
from typing import Annotated

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from ... import evaluate as _evaluate
from ...report import compress as _report
from ...tasks import dataset_metric
from ...types import (
    BaselineSummary,
    CandidateResult,
    LabeledDataset,
    TFLiteModel,
)
from .._runtime import STEP_SETTINGS, record_metadata

__all__ = ["compare_candidates", "evaluate_tflite_model"]

logger = logging.getLogger(__name__)


# Latency is a measurement of the machine the step runs on: never reuse an old one.
@step(
    name="zq_evaluate_tflite_model",
    enable_cache=False,
    settings=STEP_SETTINGS,
    substitutions={"candidate": "model"},
)
def evaluate_tflite_model(
    tflite_model: TFLiteModel,
    dataset: LabeledDataset,
    split: str = "test",
    num_threads: int = 1,
    latency_runs: int = 200,
    name: str | None = None,
) -> Annotated[CandidateResult, ArtifactConfig(name="zq_evaluation_{candidate}")]:
    """Quality (the dataset's metric) on ``split`` with ai-edge-litert, and median batch-1
    latency at ``num_threads``. The output is ``zq_evaluation_<candidate>``.
    """
    result = _evaluate.evaluate_candidate(
        tflite_model,
        dataset,
        name=name,
        split=split,
        num_threads=num_threads,
        latency_runs=latency_runs,
        metric=dataset_metric(dataset),
    )
    record_metadata(
        {
            "metric": result.metric,
            "quality": result.accuracy,
            "size_bytes": result.size_bytes,
            "latency_ms_p50": result.latency_ms_p50,
            "threads": result.threads,
            "error": result.error,
        }
    )
    return result


@step(name="zq_compare_candidates", enable_cache=False, settings=STEP_SETTINGS)
def compare_candidates(
    baseline: BaselineSummary, candidates: list[CandidateResult]
) -> tuple[Annotated[pd.DataFrame, "zq_comparison"], Annotated[HTMLString, "zq_comparison_report"]]:
    """One table: the Keras baseline and every candidate, on the same split."""
    table = _report.comparison_table(baseline, candidates)
    record_metadata(
        {
            f"{c.name}": {
                "accuracy": c.accuracy,
                "size_bytes": c.size_bytes,
                "latency_ms_p50": c.latency_ms_p50,
            }
            for c in candidates
        }
    )
    return table, HTMLString(_report.comparison_html(baseline, candidates))
