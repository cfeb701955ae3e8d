"""Accuracy and metrics of Keras and TFLite models on one split of a dataset.

Both paths reduce to model outputs plus labels, scored by :func:`accuracy_from_outputs` and
an optional user metric, so a Keras model and its TFLite conversions are measured the same way.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import InvalidDatasetError, InvalidOptionError
from .interpreter import measure_latency, run_tflite
from .types import CandidateResult, Evaluation, LabeledDataset, TFLiteModel

__all__ = [
    "MetricFn",
    "accuracy_from_outputs",
    "evaluate_candidate",
    "evaluate_keras",
    "evaluate_tflite",
]

#: ``metric_fn(labels, outputs) -> float``: labels are int class indices, outputs the model's
#: raw float outputs (logits or probabilities). Its ``__name__`` names it in reports.
MetricFn = Callable[[np.ndarray, np.ndarray], float]


def resolve_metric(spec: str | None) -> MetricFn | None:
    """The function named by ``"package.module:function"`` (``None`` stays ``None``).

    Pipelines pass metrics by name because step parameters must be plain values; the module
    must be importable where the step runs.
    """
    if spec is None:
        return None
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidOptionError(
            f"Metric {spec!r} is not of the form 'package.module:function': name an importable "
            "function that takes (labels, outputs) and returns a float."
        )
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidOptionError(
            f"Cannot import metric {spec!r} ({exc}): make sure the module is on the Python path "
            "where the step runs (for a container, in its image)."
        ) from None
    if not callable(function):
        raise InvalidOptionError(f"Metric {spec!r} is not a function.")
    return function


def accuracy_from_outputs(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy: argmax over classes, or ``> 0.5`` for a single sigmoid output."""
    outputs = np.asarray(outputs)
    labels = np.asarray(labels).reshape(-1)
    if len(outputs) != len(labels):
        raise InvalidDatasetError(
            f"{len(outputs)} model outputs for {len(labels)} labels: features and labels of a "
            "split must have the same length."
        )
    if len(labels) == 0:
        raise InvalidDatasetError("Cannot score an empty split: it has no examples.")
    flat = outputs.reshape(len(outputs), -1)
    if flat.shape[1] == 1:
        predicted = (flat[:, 0] > 0.5).astype(np.int64)
    else:
        predicted = flat.argmax(axis=1)
    return float(np.mean(predicted == labels))


def _user_metric(
    metric_fn: MetricFn | None, labels: np.ndarray, outputs: np.ndarray
) -> dict[str, float]:
    if metric_fn is None:
        return {}
    name = getattr(metric_fn, "__name__", "metric")
    return {name: float(metric_fn(labels, outputs))}


def evaluate_keras(
    model: Any,
    dataset: LabeledDataset,
    *,
    split: str = "test",
    batch_size: int = 256,
    metric_fn: MetricFn | None = None,
    compiled_metrics: bool = True,
) -> Evaluation:
    """Accuracy, the model's compiled Keras metrics (if compiled) and ``metric_fn`` on ``split``.

    ``compiled_metrics=False`` skips the second pass over the data that Keras' own metrics need,
    for callers that only want the accuracy.
    """
    x, y = dataset.split(split)
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    metrics = _compiled_metrics(model, x, y, batch_size) if compiled_metrics else {}
    metrics.update(_user_metric(metric_fn, y, outputs))
    return Evaluation(
        split=split, n_samples=len(y), accuracy=accuracy_from_outputs(outputs, y), metrics=metrics
    )


def _compiled_metrics(
    model: Any, x: np.ndarray, y: np.ndarray, batch_size: int
) -> dict[str, float]:
    # tf_keras marks a compiled model with _is_compiled, Keras 3 with .compiled; an uncompiled
    # model has no loss or metrics to report and evaluate() would raise.
    compiled = getattr(model, "_is_compiled", False) or getattr(model, "compiled", False)
    if not compiled:
        return {}
    try:
        results = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
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
    metric_fn: MetricFn | None = None,
) -> Evaluation:
    """Accuracy (and ``metric_fn``) of a TFLite model on ``split``, via ai-edge-litert."""
    x, y = dataset.split(split)
    outputs = run_tflite(model, x, batch_size=batch_size, num_threads=num_threads)
    return Evaluation(
        split=split,
        n_samples=len(y),
        accuracy=accuracy_from_outputs(outputs, y),
        metrics=_user_metric(metric_fn, y, outputs),
    )


def evaluate_candidate(
    model: TFLiteModel,
    dataset: LabeledDataset,
    *,
    name: str | None = None,
    split: str = "test",
    num_threads: int = 1,
    latency_runs: int = 200,
    metric_fn: MetricFn | None = None,
) -> CandidateResult:
    """Evaluate one converted candidate: accuracy on ``split`` plus batch-1 median latency.

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
            notes=model.notes,
        )
    evaluation = evaluate_tflite(
        model, dataset, split=split, num_threads=num_threads, metric_fn=metric_fn
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
        notes=model.notes,
    )
