"""The plugin's ZenML steps. Each checks its inputs, calls one core function, returns named
outputs and logs key figures as metadata. Artifact names start with ``zq_``.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from .. import baseline as _baseline
from .. import convert as _convert
from .. import datasets as _datasets
from .. import evaluate as _evaluate
from .. import models as _models
from .. import report as _report
from ..types import BaselineSummary, CandidateResult, ConversionOptions, LabeledDataset, TFLiteModel
from ._runtime import STEP_SETTINGS, local_copy, record_metadata
from .materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    TFLiteModelMaterializer,
)

__all__ = [
    "compare_candidates",
    "convert_to_tflite",
    "evaluate_baseline",
    "evaluate_tflite_model",
    "load_keras_model",
    "load_labeled_dataset",
]


# Loading steps read external files: a cached result would hide a model or dataset that
# changed at the same path, so they always run.
@step(enable_cache=False, output_materializers=KerasModelMaterializer, settings=STEP_SETTINGS)
def load_keras_model(path: str, allow_unsafe: bool = False) -> Annotated[Any, "zq_keras_model"]:
    """Load a ``.keras``, ``.h5`` or SavedModel (local path or artifact-store URI).

    ``allow_unsafe`` lets ``Lambda`` layers (Python code run on load) through: only for files
    you trust.
    """
    model = _models.load_model(local_copy(path), allow_unsafe=allow_unsafe)
    total, _trainable = _models.count_params(model)
    record_metadata({"flavour": _models.model_flavour(model), "params": total, "source": path})
    return model


@step(enable_cache=False, output_materializers=LabeledDatasetMaterializer, settings=STEP_SETTINGS)
def load_labeled_dataset(
    source: str,
    model: Any = None,
    scale: float = 1 / 255,
    offset: float = 0.0,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> Annotated[LabeledDataset, "zq_dataset"]:
    """Load ``source`` (``"digits"``, ``.npz``, ``.csv`` or an image folder) and fit it to ``model``.

    Integer features become ``x * scale + offset``. With a ``model``, a missing channel axis is
    added and shapes and labels are checked against it.
    """
    source = source if source == "digits" else local_copy(source)
    data = _datasets.load_dataset(
        source, scale=scale, offset=offset, validation_fraction=validation_fraction, seed=seed
    )
    if model is not None:
        data = _datasets.conform_to_model(
            data, input_shape=_models.input_shape(model), num_classes=_models.num_outputs(model)
        )
    record_metadata(
        {
            "train": len(data.y_train),
            "validation": len(data.y_val),
            "test": len(data.y_test),
            "classes": data.num_classes,
        }
    )
    return data


@step(settings=STEP_SETTINGS)
def evaluate_baseline(
    model: Any,
    dataset: LabeledDataset,
    float_model: TFLiteModel | None = None,
    split: str = "test",
    metric: str | None = None,
) -> tuple[
    Annotated[BaselineSummary, "zq_baseline"],
    Annotated[pd.DataFrame, "zq_layer_table"],
    Annotated[HTMLString, "zq_baseline_report"],
]:
    """Accuracy, parameters, per-layer MACs and weight bytes, peak memory, float32 TFLite size.

    ``metric`` optionally names an extra ``(labels, outputs) -> float`` function as
    ``"package.module:function"``. ``float_model``, the output of a float32
    :func:`convert_to_tflite`, spares a second conversion.
    """
    summary, layers = _baseline.profile_baseline(
        model,
        dataset,
        split=split,
        metric_fn=_evaluate.resolve_metric(metric),
        float_model=float_model,
    )
    record_metadata(
        {
            "accuracy": summary.accuracy,
            "params": summary.params,
            "macs": summary.macs,
            "peak_activation_bytes": summary.peak_activation_bytes,
            "float_tflite_bytes": summary.float_tflite_bytes,
        }
    )
    page = HTMLString(_report.layer_table_html(summary, layers))
    return summary, layers, page


@step(output_materializers=TFLiteModelMaterializer, settings=STEP_SETTINGS)
def convert_to_tflite(
    model: Any,
    dataset: LabeledDataset,
    mode: str = "float32",
    calibration_samples: int = 500,
    quantized_io: bool = True,
    seed: int = 0,
    compact_names: bool = True,
) -> Annotated[TFLiteModel, "zq_tflite_model"]:
    """Convert to TFLite in ``mode``; ``int8``/``int16x8`` calibrate on the train split."""
    options = ConversionOptions(
        calibration_samples=calibration_samples,
        quantized_io=quantized_io,
        seed=seed,
        compact_names=compact_names,
    )
    tflite = _convert.convert_model(
        model, mode, representative_data=dataset.x_train, options=options
    )
    record_metadata(
        {"mode": mode, "size_bytes": tflite.size_bytes, "ok": tflite.ok, "error": tflite.error}
    )
    return tflite


# Latency is a measurement of the machine the step runs on: never reuse an old one.
@step(enable_cache=False, settings=STEP_SETTINGS)
def evaluate_tflite_model(
    tflite_model: TFLiteModel,
    dataset: LabeledDataset,
    split: str = "test",
    num_threads: int = 1,
    latency_runs: int = 200,
    name: str | None = None,
    metric: str | None = None,
) -> Annotated[CandidateResult, "zq_candidate"]:
    """Accuracy on ``split`` with ai-edge-litert, and median batch-1 latency at ``num_threads``.

    ``metric`` as in :func:`evaluate_baseline`.
    """
    result = _evaluate.evaluate_candidate(
        tflite_model,
        dataset,
        name=name,
        split=split,
        num_threads=num_threads,
        latency_runs=latency_runs,
        metric_fn=_evaluate.resolve_metric(metric),
    )
    record_metadata(
        {
            "accuracy": result.accuracy,
            "size_bytes": result.size_bytes,
            "latency_ms_p50": result.latency_ms_p50,
            "threads": result.threads,
            "error": result.error,
        }
    )
    return result


@step(enable_cache=False, settings=STEP_SETTINGS)
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
