"""The quality of Keras and TFLite models on one split of a dataset, by the run's metric.

Both paths reduce to model outputs plus labels (and inputs, which a reconstruction metric
compares with the outputs), scored by one :class:`~zenml_quant.metrics.Metric`, so a Keras model
and its TFLite conversions are measured the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .convert import remapper_disabled
from .inputs import for_keras
from .interpreter import measure_latency, run_tflite
from .metrics import METRICS, Metric
from .outputs import scored
from .types import CandidateResult, Evaluation, LabeledDataset, TFLiteModel

__all__ = [
    "accuracy_from_outputs",
    "evaluate_candidate",
    "evaluate_keras",
    "evaluate_tflite",
    "keras_outputs",
    "score",
]


def accuracy_from_outputs(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy: argmax over classes, or ``> 0.5`` for a single sigmoid output."""
    labels = np.asarray(labels).reshape(-1)
    if np.asarray(outputs).reshape(len(outputs), -1).shape[1] == 1:
        return METRICS["accuracy"].score(outputs, labels)
    return METRICS["top1"].score(outputs, labels)


def score(
    metric: Metric | None, outputs: np.ndarray, labels: np.ndarray, inputs: np.ndarray
) -> float:
    """``metric`` (top-1 accuracy when None) of ``outputs`` against ``labels``."""
    if metric is None:
        return accuracy_from_outputs(outputs, labels)
    return metric.score(outputs, labels, inputs)


def keras_outputs(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for ``x``, in batches (``predict`` without its progress bar).

    Run without grappler's remapper: its oneDNN fusion of Conv2D + BatchNorm + tanh fails at
    run time (see :func:`zenml_quant.convert.remapper_disabled`).
    """
    with remapper_disabled():
        return scored(model.predict(for_keras(x), batch_size=batch_size, verbose=0))


def evaluate_keras(
    model: Any,
    dataset: LabeledDataset,
    *,
    split: str = "test",
    batch_size: int = 256,
    metric: Metric | None = None,
    compiled_metrics: bool = True,
) -> Evaluation:
    """``metric`` (top-1 accuracy by default) and the model's compiled Keras metrics (if
    compiled) on ``split``.

    ``compiled_metrics=False`` skips the second pass over the data that Keras' own metrics need,
    for callers that only want the quality.
    """
    x, y = dataset.split(split)
    outputs = keras_outputs(model, x, batch_size)
    with remapper_disabled():
        metrics = _compiled_metrics(model, x, y, batch_size) if compiled_metrics else {}
    return Evaluation(
        split=split,
        n_samples=len(y),
        accuracy=score(metric, outputs, y, x),
        metrics=metrics,
        metric=_name(metric),
    )


def _name(metric: Metric | None) -> str:
    return "top1" if metric is None else metric.key


def _compiled_metrics(
    model: Any, x: np.ndarray, y: np.ndarray, batch_size: int
) -> dict[str, float]:
    # tf_keras marks a compiled model with _is_compiled, Keras 3 with .compiled; an uncompiled
    # model has no loss or metrics to report and evaluate() would raise.
    compiled = getattr(model, "_is_compiled", False) or getattr(model, "compiled", False)
    if not compiled:
        return {}
    try:
        results = model.evaluate(
            for_keras(x), y, batch_size=batch_size, verbose=0, return_dict=True
        )
    except Exception:  # a loss compiled for other labels (e.g. one-hot) cannot score ours
        return {}
    return {f"keras_{name}": float(value) for name, value in results.items()}


def evaluate_tflite(
    model: TFLiteModel,
    dataset: LabeledDataset,
    *,
    split: str = "test",
    batch_size: int = 256,
    num_threads: int = 1,
    metric: Metric | None = None,
) -> Evaluation:
    """``metric`` (top-1 accuracy by default) of a TFLite model on ``split``, via
    ai-edge-litert."""
    x, y = dataset.split(split)
    outputs = run_tflite(model, x, batch_size=batch_size, num_threads=num_threads)
    return Evaluation(
        split=split,
        n_samples=len(y),
        accuracy=score(metric, outputs, y, x),
        metric=_name(metric),
    )


def evaluate_candidate(
    model: TFLiteModel,
    dataset: LabeledDataset,
    *,
    name: str | None = None,
    split: str = "test",
    num_threads: int = 1,
    latency_runs: int = 200,
    metric: Metric | None = None,
) -> CandidateResult:
    """Evaluate one converted candidate: ``metric`` on ``split`` plus batch-1 median latency.

    A candidate whose flatbuffer failed to allocate is returned with its ``error`` and no
    figures rather than raising, so one bad mode does not sink a comparison.
    """
    name = name or model.mode
    if not model.ok:
        return CandidateResult(
            name=name,
            mode=model.mode,
            size_bytes=model.size_bytes,
            accuracy=None,
            split=split,
            metrics={},
            latency_ms_p50=None,
            threads=num_threads,
            peak_activation_bytes=None,
            operators=(),
            error=model.error,
            float_layers=model.float_layers,
            precisions=model.precisions,
            notes=model.notes,
            metric=_name(metric),
        )
    evaluation = evaluate_tflite(
        model, dataset, split=split, num_threads=num_threads, metric=metric
    )
    x, _ = dataset.split(split)
    latency = measure_latency(model, x[0], num_threads=num_threads, runs=latency_runs)
    return CandidateResult(
        name=name,
        mode=model.mode,
        size_bytes=model.size_bytes,
        accuracy=evaluation.accuracy,
        split=split,
        metrics=evaluation.metrics,
        latency_ms_p50=latency.p50_ms,
        threads=latency.threads,
        peak_activation_bytes=model.peak_activation_bytes,
        operators=tuple(sorted(set(model.operators))),
        float_layers=model.float_layers,
        precisions=model.precisions,
        notes=model.notes,
        metric=evaluation.metric,
    )
