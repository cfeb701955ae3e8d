"""The conversion step: one TFLite file per candidate."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from zenml import ArtifactConfig, step

from ... import candidates as _candidates
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

__all__ = ["convert_to_tflite"]

logger = logging.getLogger(__name__)


@step(
    name="zq_convert_to_tflite",
    output_materializers=TFLiteModelMaterializer,
    settings=STEP_SETTINGS,
    substitutions={"candidate": "model"},
)
def convert_to_tflite(
    model: Any,
    dataset: LabeledDataset,
    mode: str = "float32",
    conversion: ConversionOptions | None = None,
    calibrated: CalibratedModel | None = None,
) -> Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)]:
    """Convert to TFLite in ``mode``; ``int8``/``int16x8`` calibrate on the train split.

    ``int8`` quantizes from ``calibrated`` (the output of :func:`calibrate`) when given,
    instead of calibrating again.

    A conversion that fails returns a model with ``error`` set (the candidate fails alone).
    The output is ``zq_tflite_<candidate>`` (substitution ``candidate``, default ``model``).
    """
    tflite = _candidates.convert_candidate(
        model, mode, representative_data=dataset.x_train, options=conversion, calibrated=calibrated
    )
    record_metadata(
        {"mode": mode, "size_bytes": tflite.size_bytes, "ok": tflite.ok, "error": tflite.error}
    )
    return tflite
