"""The per-layer quantization sensitivity step."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from ... import sensitivity as _sensitivity
from ...errors import InvalidOptionError
from ...report import compress as _report
from ...report.html import render_html
from ...types import (
    CalibratedModel,
    ConversionOptions,
    LabeledDataset,
)
from .._runtime import STEP_SETTINGS, record_metadata

__all__ = ["profile_sensitivity"]

logger = logging.getLogger(__name__)


@step(name="zq_profile_sensitivity", settings=STEP_SETTINGS)
def profile_sensitivity(
    model: Any,
    dataset: LabeledDataset,
    mode: str = "fast",
    top_k: int = 3,
    split: str = "validation",
    debug_samples: int = 200,
    conversion: ConversionOptions | None = None,
    calibrated: CalibratedModel | None = None,
) -> tuple[
    Annotated[pd.DataFrame, "zq_sensitivity"], Annotated[HTMLString, "zq_sensitivity_report"]
]:
    """Rank the layers by the accuracy int8 costs them (``mode`` ``"fast"`` or ``"exhaustive"``).

    The int8 models are quantized from ``calibrated`` (the output of :func:`calibrate`) when
    given, instead of calibrating again.

    The table is ranked, most sensitive first; feed it to :func:`quantize_post_training` so
    accuracy control tries the most sensitive layers first.
    """
    try:
        report = _sensitivity.profile_sensitivity(
            model,
            dataset,
            mode=mode,
            top_k=top_k,
            split=split,
            debug_samples=debug_samples,
            options=conversion,
            calibrated=calibrated,
        )
    except InvalidOptionError:
        raise
    except Exception as exc:  # profiling informs the candidates; its failure must not end them
        why = f"sensitivity profiling failed ({type(exc).__name__}: {str(exc)[:300]})"
        logger.warning("%s: the candidates go on without a ranking", why)
        record_metadata({"mode": mode, "error": why})
        page = render_html(pd.DataFrame(), title="Sensitivity profiling failed", notes=[why])
        return pd.DataFrame(columns=["rank", "layer"]), HTMLString(page)
    top = report.table.head(5)
    record_metadata(
        {
            "mode": report.mode,
            "float_accuracy": report.float_accuracy,
            "int8_accuracy": report.int8_accuracy,
            "evaluations": report.evaluations,
            "seconds": report.seconds,
            "most_sensitive": {
                str(row.layer): None if pd.isna(row.sensitivity_pts) else float(row.sensitivity_pts)
                for row in top.itertuples()
            },
        }
    )
    return report.table, HTMLString(_report.sensitivity_html(report))
