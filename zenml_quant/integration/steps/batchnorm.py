"""The zero-training candidate: BatchNorm statistics re-estimated on the user's data."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import ArtifactConfig, step

from ... import candidates as _candidates
from ...types import ConversionOptions, LabeledDataset, TFLiteModel
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import TFLiteModelMaterializer
from ._names import TFLITE_OUTPUT

__all__ = ["recalibrate_batchnorm"]


@step(
    name="zq_recalibrate_batchnorm",
    output_materializers={TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "bn_int8"},
)
def recalibrate_batchnorm(
    model: Any,
    dataset: LabeledDataset,
    max_examples: int = 4096,
    split: str = "validation",
    conversion: ConversionOptions | None = None,
) -> Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)]:
    """The ``bn_int8`` candidate: BatchNorm statistics re-estimated on (at most
    ``max_examples`` of) the train split, no training, then plain int8. Its notes and metadata
    say how the Keras model scores on ``split`` before and after; the gate judges the file like
    any other. A model without BatchNorm, or any failure, gives a failed model with the reason.
    Output ``zq_tflite_bn_int8``.
    """
    result = _candidates.batchnorm_candidate(
        model,
        dataset,
        split=split,
        max_examples=max_examples,
        options=conversion,
    )
    if isinstance(result, TFLiteModel):
        record_metadata({"status": "failed", "error": result.error})
        return result
    record_metadata(
        {
            "layers": list(result.reestimate.layers),
            "examples": result.reestimate.examples,
            "mean_shift_in_old_std": list(result.reestimate.shift),
            f"keras_{split}_before": result.quality_before,
            f"keras_{split}_after": result.quality_after,
            "improved": result.improved,
            "size_bytes": result.tflite.size_bytes,
        }
    )
    return result.tflite
