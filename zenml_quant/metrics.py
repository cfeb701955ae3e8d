"""The quality metrics a model is judged by, one per task, with their direction and range.

A :class:`Metric` is a small frozen value (its name, task and direction), so it crosses step
boundaries and JSON as plain data; its scoring function is looked up by name when it is used.
Every figure the tool compares (baseline, budget, sensitivity, search reward, gate) is a value
of the run's metric, and every comparison goes through :meth:`Metric.worse_by`, so "higher is
better" and "lower is better" metrics are handled in one place.

Scores take ``(outputs, labels, inputs)``: the model's raw outputs, the split's labels and its
inputs (a reconstruction metric compares the output with the input).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import InvalidDatasetError, InvalidOptionError

__all__ = [
    "UNSETTLED",
    "METRICS",
    "TASKS",
    "TASK_METRICS",
    "Metric",
    "get_metric",
    "metric_from_dict",
    "metric_named",
]

#: The tasks the tool knows how to score and train.
TASKS: tuple[str, ...] = ("classification", "binary", "regression", "reconstruction")

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]
PerExampleFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A named quality measure of one task.

    ``lower``/``upper`` bound the values it can take (``None``: unbounded); a figure outside
    them is impossible and never passes a check. ``fraction`` metrics (accuracies, AUC) are
    shown as percentages and their default allowed drop is absolute (1 point); the others'
    default is relative (1 % of the original). ``spec`` names a user function
    ``package.module:function`` for custom metrics.
    """

    name: str
    task: str
    higher_is_better: bool = True
    lower: float | None = None
    upper: float | None = None
    fraction: bool = False
    spec: str | None = None
    description: str = ""

    # -- scoring --------------------------------------------------------------------------------

    def score(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: np.ndarray | None = None
    ) -> float:
        """The metric on one split; raises :class:`InvalidDatasetError` when it cannot be had."""
        outputs, labels = _checked(outputs, labels)
        if self.spec is not None:
            return float(_resolve_user(self.spec)(labels, outputs))
        return float(_SCORES[self.name](outputs, labels, inputs))

    def per_example(
        self, outputs: np.ndarray, labels: np.ndarray, inputs: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Each example's contribution, oriented so that higher is better (``-error`` for
        error metrics), for paired comparisons of two models; ``None`` when the metric is not a
        mean over examples (AUC, R², a user function)."""
        fn = _PER_EXAMPLE.get(self.name) if self.spec is None else None
        if fn is None:
            return None
        outputs, labels = _checked(outputs, labels)
        values = fn(outputs, labels, inputs).astype(np.float64)
        return values if self.higher_is_better else -values

    # -- comparing ------------------------------------------------------------------------------

    def worse_by(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference``, in the metric's units (negative when
        better): ``reference - value`` for higher-is-better metrics, else ``value - reference``."""
        return reference - value if self.higher_is_better else value - reference

    def shifted(self, reference: float, allowed: float) -> float:
        """The worst value that is at most ``allowed`` worse than ``reference``."""
        return reference - allowed if self.higher_is_better else reference + allowed

    def at_least_as_good(self, value: float, bound: float, eps: float = 1e-9) -> bool:
        """Whether ``value`` meets ``bound`` in the metric's direction (rounding absorbed)."""
        return value >= bound - eps if self.higher_is_better else value <= bound + eps

    def best(self, values: list[float]) -> float:
        """The best of ``values``."""
        return max(values) if self.higher_is_better else min(values)

    def plausible(self, value: object) -> bool:
        """A finite number inside the metric's range (an impossible figure is never trusted)."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            return False
        number = float(value)
        if not math.isfinite(number):
            return False
        return (self.lower is None or number >= self.lower - 1e-9) and (
            self.upper is None or number <= self.upper + 1e-9
        )

    # -- words ----------------------------------------------------------------------------------

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def key(self) -> str:
        """What names it in figures: the built-in's name or the user function's spec."""
        return self.spec or self.name

    @property
    def label(self) -> str:
        """The name shown in tables: ``accuracy`` for top-1, else the metric's own name."""
        return "accuracy" if self.name in ("top1", "accuracy") else self.name

    def format(self, value: float | None) -> str:
        """``95.56 %`` for fractions, ``0.1234`` (4 significant digits) otherwise."""
        if value is None or not math.isfinite(float(value)):
            return "—"
        return f"{100 * value:.2f} %" if self.fraction else f"{value:.4g}"

    def format_change(self, change: float) -> str:
        """A signed change, ``+0.28`` points for fractions, ``-0.0012`` otherwise."""
        return f"{100 * change:+.2f}" if self.fraction else f"{change:+.4g}"

    @property
    def change_unit(self) -> str:
        """``"pts"`` for fractions (percentage points), else the metric's name."""
        return "pts" if self.fraction else self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain values (step parameters, JSON, ZenML metadata)."""
        return asdict(self)


def metric_from_dict(values: dict[str, Any] | Metric | None) -> Metric:
    """A :class:`Metric` from :meth:`Metric.to_dict` output (``None`` is top-1 accuracy)."""
    if values is None:
        return METRICS["top1"]
    if isinstance(values, Metric):
        return values
    try:
        metric = Metric(**values)
    except TypeError as exc:
        raise InvalidOptionError(f"Not a metric description: {values!r} ({exc}).") from None
    if metric == UNSETTLED:
        return UNSETTLED
    if metric.spec is None and metric.name not in METRICS:
        raise InvalidOptionError(
            f"Unknown metric {metric.name!r}: use one of {', '.join(METRICS)} or "
            "'package.module:function'."
        )
    return metric


def metric_named(name: str, higher_is_better: bool = True) -> Metric:
    """The metric a figure says it measures: a built-in by name, or the user function
    ``package.module:function`` with its direction (not imported: the figure was measured)."""
    if name in METRICS:
        return METRICS[name]
    if ":" not in name:
        raise InvalidOptionError(f"Unknown metric {name!r}: use one of {', '.join(METRICS)}.")
    return _user_metric(name, higher_is_better)


def _user_metric(spec: str, higher_is_better: bool) -> Metric:
    return Metric(
        name=spec.rpartition(":")[2],
        task="custom",
        higher_is_better=higher_is_better,
        spec=spec,
        description=f"your function {spec}",
    )


def get_metric(name: str, *, higher_is_better: bool | None = None) -> Metric:
    """The metric called ``name`` (one of :data:`METRICS`), or a user function given as
    ``package.module:function`` taking ``(labels, outputs)``; a user function needs its
    direction (``higher_is_better``), since nothing else can say which way is better."""
    if ":" in name:
        _resolve_user(name)  # fail now, not after an hour of search
        if higher_is_better is None:
            raise InvalidOptionError(
                f"Metric {name!r} is your own function: say which way is better with "
                "--higher-is-better or --lower-is-better (higher_is_better=True/False)."
            )
        return _user_metric(name, higher_is_better)
    if name not in METRICS:
        raise InvalidOptionError(
            f"Unknown metric {name!r}: use one of {', '.join(METRICS)}, or your own function "
            "as 'package.module:function' with --higher-is-better/--lower-is-better."
        )
    metric = METRICS[name]
    if higher_is_better is not None and higher_is_better != metric.higher_is_better:
        raise InvalidOptionError(
            f"{name} is {metric.direction}; drop --higher-is-better/--lower-is-better, which "
            "only apply to your own metric functions."
        )
    return metric


# --- the built-in scores ----------------------------------------------------------------------


def _checked(outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    outputs, labels = np.asarray(outputs), np.asarray(labels)
    if len(outputs) != len(labels):
        raise InvalidDatasetError(
            f"{len(outputs)} model outputs for {len(labels)} labels: features and labels of a "
            "split must have the same length."
        )
    if len(labels) == 0:
        raise InvalidDatasetError("Cannot score an empty split: it has no examples.")
    return outputs, labels


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(len(a), -1)


def _class_scores(outputs: np.ndarray) -> np.ndarray:
    flat = _flat(outputs)
    if flat.shape[1] == 1:  # one sigmoid unit scores two classes: [1 - p, p]
        return np.concatenate([1 - flat, flat], axis=1)
    return flat


def _top_k_hits(outputs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    scores = _class_scores(outputs)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    k = min(k, scores.shape[1])
    if k == 1:
        return (scores.argmax(axis=1) == labels).astype(np.float64)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1).astype(np.float64)


def _binary_hits(outputs: np.ndarray, labels: np.ndarray, _: np.ndarray | None) -> np.ndarray:
    flat = _flat(outputs)
    predicted = flat[:, 0] > 0.5 if flat.shape[1] == 1 else flat.argmax(axis=1) == 1
    return (predicted.astype(np.int64) == np.asarray(labels).reshape(-1)).astype(np.float64)


def _auc(scores: np.ndarray, labels: np.ndarray, what: str) -> float:
    from sklearn.metrics import roc_auc_score  # sklearn is slow to import; only AUC needs it

    labels = np.asarray(labels).reshape(-1)
    present = np.unique(labels)
    if not set(present.tolist()) <= {0, 1}:
        raise InvalidDatasetError(
            f"{what} needs labels 0 and 1 (normal / anomaly, negative / positive), got "
            f"{present[:10].tolist()}: relabel the data or choose another --metric."
        )
    if present.size < 2:
        raise InvalidDatasetError(
            f"{what} needs examples of both labels 0 and 1 in every scored split, but this one "
            f"holds only {present.tolist()}: add examples of the other label to validation and "
            "test, or choose --metric reconstruction_error (for an autoencoder) or another one."
        )
    return float(roc_auc_score(labels, scores))


def _positive_score(outputs: np.ndarray) -> np.ndarray:
    flat = _flat(outputs)
    return flat[:, 0] if flat.shape[1] == 1 else flat[:, 1] - flat[:, 0]


def _errors(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out, want = _flat(outputs), _flat(labels)
    if out.shape != want.shape:
        raise InvalidDatasetError(
            f"The model outputs {out.shape[1]} value(s) per example but the labels hold "
            f"{want.shape[1]}: regression targets must match the model's output shape."
        )
    return out - want


def _reconstruction_error(
    outputs: np.ndarray, _: np.ndarray, inputs: np.ndarray | None
) -> np.ndarray:
    if inputs is None:
        raise InvalidOptionError("A reconstruction metric needs the split's inputs.")
    out, x = _flat(outputs), _flat(inputs)
    if out.shape != x.shape:
        raise InvalidDatasetError(
            f"The model outputs {out.shape[1]} values per example for {x.shape[1]} inputs: a "
            "reconstruction model's output must have the input's shape; pass --task for "
            "another task."
        )
    return np.mean((out - x) ** 2, axis=1)


def _r2(outputs: np.ndarray, labels: np.ndarray, _: np.ndarray | None) -> float:
    residual = np.sum(_errors(outputs, labels) ** 2)
    want = _flat(labels)
    total = np.sum((want - want.mean(axis=0)) ** 2)
    if total == 0:
        raise InvalidDatasetError(
            "R² is undefined when every target in the split is the same value: use "
            "--metric mae or rmse."
        )
    return float(1 - residual / total)


_PER_EXAMPLE: dict[str, PerExampleFn] = {
    "top1": lambda o, y, _: _top_k_hits(o, y, 1),
    "top5": lambda o, y, _: _top_k_hits(o, y, 5),
    "accuracy": _binary_hits,
    "mae": lambda o, y, _: np.mean(np.abs(_errors(o, y)), axis=1),
    "mse": lambda o, y, _: np.mean(_errors(o, y) ** 2, axis=1),
    "reconstruction_error": _reconstruction_error,
}


def _mean_of(fn: PerExampleFn) -> ScoreFn:
    return lambda o, y, x: float(np.mean(fn(o, y, x)))


_SCORES: dict[str, ScoreFn] = {
    **{name: _mean_of(fn) for name, fn in _PER_EXAMPLE.items()},
    "rmse": lambda o, y, _: float(np.sqrt(np.mean(_errors(o, y) ** 2))),
    "r2": _r2,
    "auc": lambda o, y, _: _auc(_positive_score(o), y, "AUC"),
    "reconstruction_auc": lambda o, y, x: _auc(
        _reconstruction_error(o, y, x), y, "Reconstruction AUC"
    ),
}

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("top1", "classification", True, 0.0, 1.0, True, description="top-1 accuracy"),
        Metric("top5", "classification", True, 0.0, 1.0, True, description="top-5 accuracy"),
        Metric("accuracy", "binary", True, 0.0, 1.0, True, description="accuracy at p > 0.5"),
        Metric("auc", "binary", True, 0.0, 1.0, True, description="ROC AUC of the output"),
        Metric("mae", "regression", False, 0.0, None, description="mean absolute error"),
        Metric("rmse", "regression", False, 0.0, None, description="root mean squared error"),
        Metric("mse", "regression", False, 0.0, None, description="mean squared error"),
        Metric("r2", "regression", True, None, 1.0, description="coefficient of determination"),
        Metric(
            "reconstruction_auc",
            "reconstruction",
            True,
            0.0,
            1.0,
            True,
            description="ROC AUC of the per-example reconstruction error against the "
            "normal (0) / anomaly (1) labels",
        ),
        Metric(
            "reconstruction_error",
            "reconstruction",
            False,
            0.0,
            None,
            description="mean squared reconstruction error",
        ),
    )
}

#: The metric of targets given before the model and data are read (the CLI's flags, a YAML
#: config): only finiteness and sign can be checked then. Whoever settles the task replaces it
#: (:meth:`zenml_quant.targets.Targets.with_metric`), checking the targets in the real units.
UNSETTLED = Metric("unsettled", "custom", True, description="the task's metric, not read yet")

#: The metrics that make sense for each task; the first is the default.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1", "top5"),
    "binary": ("accuracy", "auc"),
    "regression": ("mae", "rmse", "mse", "r2"),
    "reconstruction": ("reconstruction_auc", "reconstruction_error"),
}


def _resolve_user(spec: str) -> Callable[[np.ndarray, np.ndarray], float]:
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
    return function  # type: ignore[no-any-return]
