"""The per-layer precision step: int4, int8, 16x8 and float chosen layer by layer."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from ... import candidates as _candidates
from ...report import precision as _report
from ...report.html import render_html
from ...targets import Targets
from ...tasks import dataset_metric
from ...types import ConversionOptions, LabeledDataset, QATOptions, TFLiteModel
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import TFLiteModelMaterializer
from ._names import TFLITE_OUTPUT

__all__ = ["allocate_precisions", "int4_aware_qat"]

logger = logging.getLogger(__name__)


@step(
    name="zq_allocate_precisions",
    output_materializers={TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "mixed"},
)
def allocate_precisions(
    model: Any,
    dataset: LabeledDataset,
    precisions: list[str] | None = None,
    objective: str = "bytes",
    max_quality_drop: float = 0.01,
    relative_drop: bool = False,
    profile_mode: str = "fast",
    weight_algorithm: str = "gptq",
    split: str = "validation",
    conversion: ConversionOptions | None = None,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)],
    Annotated[pd.DataFrame, "zq_precision_profile"],
    Annotated[pd.DataFrame, "zq_precision_attempts"],
    Annotated[HTMLString, "zq_precision_report"],
]:
    """One precision per layer (``precisions``, default int4, int8, float) minimising
    ``objective`` (``bytes``, ``latency``, ``energy`` or ``peak_memory``) with at most ``max_quality_drop``
    lost on ``split``. A budget that cannot be met gives the best model tried, marked in its
    notes; an error gives a failed model with the reason. Output ``zq_tflite_mixed``.
    """
    options = conversion or ConversionOptions()
    budget = Targets(
        max_quality_drop=max_quality_drop,
        relative_drop=relative_drop,
        metric=dataset_metric(dataset),
    )
    result = _candidates.allocation_candidate(
        model,
        dataset,
        budget=budget,
        precisions=precisions,
        objective=objective,
        profile_mode=profile_mode,
        weight_algorithm=weight_algorithm,
        split=split,
        options=options,
    )
    if isinstance(result, TFLiteModel):  # failed alone: the rest of the run goes on
        record_metadata({"status": "failed", "error": result.error})
        page = render_html(pd.DataFrame(), title="Per-layer precision failed", notes=[result.error])
        return result, pd.DataFrame(), pd.DataFrame(), HTMLString(page)
    record_metadata(
        {
            "status": result.status,
            "reason": result.reason,
            "objective": result.objective,
            "size_bytes": result.model.size_bytes,
            "int8_bytes": result.profile.int8_bytes,
            "quality": result.quality,
            "reference_quality": result.reference_quality,
            "precisions": dict(result.model.precisions),
            "models_scored": len(result.attempts),
        }
    )
    return (
        result.model,
        result.profile.table,
        _report.allocation_attempts_table(result),
        HTMLString(_report.allocation_html(result)),
    )


@step(
    name="zq_int4_aware_qat",
    output_materializers={TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "mixed_qat"},
)
def int4_aware_qat(
    model: Any,
    dataset: LabeledDataset,
    precisions: list[str] | None = None,
    objective: str = "bytes",
    max_quality_drop: float = 0.01,
    relative_drop: bool = False,
    relax: float = 3.0,
    training: QATOptions | None = None,
    split: str = "validation",
    conversion: ConversionOptions | None = None,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)],
    Annotated[HTMLString, "zq_mixed_qat_report"],
]:
    """The ``mixed_qat`` candidate: a per-layer plan chosen within ``relax`` times the budget,
    its int4 layers fine-tuned on the int4 grid (``training``, None: ``QATOptions()``),
    exported with the trained int4 weights. An
    error gives a failed model with the reason. Output ``zq_tflite_mixed_qat``.
    """
    result = _candidates.mixed_qat_candidate(
        model,
        dataset,
        budget=Targets(
            max_quality_drop=max_quality_drop,
            relative_drop=relative_drop,
            metric=dataset_metric(dataset),
        ),
        precisions=precisions,
        objective=objective,
        relax=relax,
        options=training or QATOptions(),
        conversion=conversion,
        split=split,
    )
    if isinstance(result, TFLiteModel):
        record_metadata({"status": "failed", "error": result.error})
        page = render_html(pd.DataFrame(), title="int4-aware QAT failed", notes=[result.error])
        return result, HTMLString(page)
    model_out = result.tflite
    record_metadata(
        {
            "trained_layers": list(result.trained_layers),
            "epochs_run": result.epochs_run,
            "quality": result.quality,
            "size_bytes": model_out.size_bytes,
            "precisions": dict(model_out.precisions),
        }
    )
    history = pd.DataFrame(result.history)
    history.index.name = "epoch"
    page = render_html(
        history.reset_index(),
        title=(
            f"int4-aware QAT: {model_out.size_bytes:,} B, {result.split} "
            f"{result.metric.format(result.quality)}"
        ),
        notes=[
            "Precision per layer (read from the file): "
            + ", ".join(f"{layer} {p}" for layer, p in model_out.precisions),
            *model_out.notes,
        ],
    )
    return model_out, HTMLString(page)
