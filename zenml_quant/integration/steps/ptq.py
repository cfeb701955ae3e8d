"""The post-training quantization step (plain, float layers kept, or under a budget)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from ... import candidates as _candidates
from ...report import compress as _report
from ...report.html import render_html
from ...targets import Targets
from ...tasks import dataset_metric
from ...types import (
    CalibratedModel,
    ConversionOptions,
    LabeledDataset,
    TFLiteModel,
)
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import (
    TFLiteModelMaterializer,
)
from ._names import TFLITE_OUTPUT

__all__ = ["quantize_post_training"]

logger = logging.getLogger(__name__)


@step(
    name="zq_quantize_post_training",
    output_materializers={TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "mixed"},
)
def quantize_post_training(
    model: Any,
    dataset: LabeledDataset,
    sensitivity: pd.DataFrame | None = None,
    mode: str = "int8",
    float_layers: list[str] | None = None,
    float_layer_types: list[str] | None = None,
    max_quality_drop: float | None = None,
    relative_drop: bool = False,
    search: str = "greedy",
    max_float_layers: int | None = None,
    split: str = "validation",
    conversion: ConversionOptions | None = None,
    calibrated: CalibratedModel | None = None,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)],
    Annotated[pd.DataFrame, "zq_ptq_attempts"],
    Annotated[HTMLString, "zq_ptq_report"],
]:
    """Post-training quantization: a plain ``mode``, int8 with float layers, or a budget.

    ``max_quality_drop`` (accuracy units: 0.005 is half a point; a fraction of the float
    accuracy with ``relative_drop``) turns on accuracy control on ``split``: the fewest layers
    kept in float, most sensitive first (from ``sensitivity``, the output of
    :func:`profile_sensitivity`, else a fast profile). A budget that cannot be met gives the
    best model found, marked ``budget not met``; it does not fail the step, and neither does
    an error (the model comes back failed, with the reason). Output ``zq_tflite_mixed``.
    ``int8`` models are quantized from ``calibrated`` (the output of :func:`calibrate`) when
    given, instead of calibrating again.
    """
    result = _candidates.ptq_candidate(
        model,
        dataset,
        mode=mode,
        float_layers=float_layers or (),
        float_layer_types=float_layer_types or (),
        budget=None
        if max_quality_drop is None
        else Targets(
            max_quality_drop=max_quality_drop,
            relative_drop=relative_drop,
            metric=dataset_metric(dataset),
        ),
        ranking=None if sensitivity is None else list(sensitivity["layer"]),
        search=search,
        max_float_layers=max_float_layers,
        split=split,
        options=conversion,
        calibrated=calibrated,
    )
    if not result.model.ok:
        record_metadata({"status": result.status, "error": result.model.error})
        page = render_html(
            pd.DataFrame(), title="Post-training quantization failed", notes=[result.reason]
        )
        return result.model, _report.attempts_table(result), HTMLString(page)
    record_metadata(
        {
            "status": result.status,
            "reason": result.reason,
            "mode": result.model.mode,
            "size_bytes": result.model.size_bytes,
            "float_layers": list(result.float_layers),
            "accuracy": result.accuracy,
            "reference_accuracy": result.reference_accuracy,
            "attempts": len(result.attempts),
        }
    )
    return result.model, _report.attempts_table(result), HTMLString(_report.ptq_html(result))
