"""The quantization-aware training step."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from ... import candidates as _candidates
from ...report import compress as _report
from ...report.html import render_html
from ...types import ConversionOptions, LabeledDataset, QATOptions, TFLiteModel
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import (
    TFLiteModelMaterializer,
)
from ._names import TFLITE_OUTPUT

__all__ = ["quantization_aware_training"]

logger = logging.getLogger(__name__)


@step(
    name="zq_quantization_aware_training",
    output_materializers={TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "qat"},
)
def quantization_aware_training(
    model: Any,
    dataset: LabeledDataset,
    layers: list[str] | None = None,
    skip_layers: list[str] | None = None,
    training: QATOptions | None = None,
    split: str = "validation",
    conversion: ConversionOptions | None = None,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=TFLITE_OUTPUT)],
    Annotated[pd.DataFrame, "zq_qat_history"],
    Annotated[HTMLString, "zq_qat_report"],
]:
    """Fine-tune with fake quantization (tfmot, ``tf_keras`` models) and convert to int8.

    Whole model by default; ``layers`` quantizes only those, ``skip_layers`` all but those
    (e.g. layers tfmot cannot quantize, or the most sensitive ones). ``training``: epochs,
    batch size, learning rate, early stopping and seed (None: ``QATOptions()``, 3 epochs).
    Reports the Keras QAT and the int8 ``.tflite`` accuracy on ``split``. Layers tfmot cannot annotate are skipped and listed. A failure returns a failed model with
    the reason (the candidate fails alone). Output ``zq_tflite_qat``.
    """
    result = _candidates.qat_candidate(
        model,
        dataset,
        layers=layers,
        skip_layers=skip_layers or (),
        options=training or QATOptions(),
        conversion=conversion,
        split=split,
    )
    if isinstance(result, TFLiteModel):  # QAT failed: the reason is in the model's error
        record_metadata({"error": result.error})
        page = render_html(
            pd.DataFrame(), title="Quantization-aware training failed", notes=[result.error or ""]
        )
        return result, pd.DataFrame(), HTMLString(page)
    record_metadata(
        {
            "keras_qat_accuracy": result.keras_accuracy,
            "tflite_accuracy": result.tflite_accuracy,
            "epochs_run": result.epochs_run,
            "size_bytes": result.tflite.size_bytes,
            "float_layers": list(result.float_layers),
            "quantized_layers": len(result.quantized_layers),
            "skipped_layers": {name: why for name, why in result.skipped_layers},
        }
    )
    history = pd.DataFrame(result.history).rename_axis("epoch").reset_index()
    return result.tflite, history, HTMLString(_report.qat_html(result, history))
