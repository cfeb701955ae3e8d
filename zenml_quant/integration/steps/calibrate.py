"""The calibration step: the run's int8 candidates quantize from its one calibration."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from zenml import step

from ... import candidates as _candidates
from ...types import CalibratedModel, ConversionOptions, LabeledDataset
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import CalibratedModelMaterializer

__all__ = ["calibrate"]

logger = logging.getLogger(__name__)


@step(
    name="zq_calibrate",
    output_materializers=CalibratedModelMaterializer,
    settings=STEP_SETTINGS,
)
def calibrate(
    model: Any,
    dataset: LabeledDataset,
    conversion: ConversionOptions | None = None,
) -> Annotated[CalibratedModel, "zq_calibrated_model"]:
    """Calibrate ``model`` for int8 on the train split, once for the whole run.

    The int8 conversion, the sensitivity profile and the int8 model with float layers take the
    output as ``calibrated`` and quantize from it in milliseconds instead of calibrating again
    (each calibration costs about a whole int8 conversion). A model that cannot be calibrated
    gives an output with ``error`` set, and every candidate quantized from it fails with that
    reason; the others go on.
    """
    calibrated = _candidates.calibrate_candidate(
        model, representative_data=dataset.x_train, options=conversion
    )
    record_metadata({"ok": calibrated.ok, "samples": calibrated.samples, "error": calibrated.error})
    return calibrated
