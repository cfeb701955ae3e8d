"""The quality and resource targets of a deployment: one immutable type, checked when made.

The CLI, the YAML config, the Python API, the deployment gate, the PTQ budget and the
architecture search all take a :class:`Targets`. Quality is measured by the targets' ``metric``
(top-1 accuracy unless the task calls for another, see :mod:`zenml_quant.metrics`), and quality
targets are in that metric's units. A target left at None is not set, but quality always has a
floor: without ``min_quality`` or ``max_quality_drop``, a candidate may lose at most
:data:`DEFAULT_MAX_ACCURACY_DROP` (1 point) of an accuracy-like metric, or
:data:`DEFAULT_RELATIVE_DROP` (1 %) of any other metric, against the original model. Set either
target to override it (``min_quality=0`` switches the floor off for accuracy).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._validate import check_integer, check_number
from .errors import InvalidOptionError
from .metrics import METRICS, Metric, metric_from_dict

__all__ = [
    "DEFAULT_MAX_ACCURACY_DROP",
    "DEFAULT_RELATIVE_DROP",
    "LATENCY_PERCENTILES",
    "Targets",
]

#: The accuracy a candidate may lose against the original when the user sets no quality
#: target: 1 point (for metrics that are fractions: accuracies, AUC).
DEFAULT_MAX_ACCURACY_DROP = 0.01
#: For other metrics (errors, R², user functions) the default is relative: 1 % of the original.
DEFAULT_RELATIVE_DROP = 0.01
#: Latency statistics a latency target may refer to.
LATENCY_PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "mean")
#: The spellings the accuracy targets had before every task got its metric (YAML, JSON).
_ALIASES = {"min_accuracy": "min_quality", "max_accuracy_drop": "max_quality_drop"}


@dataclass(frozen=True)
class Targets:
    """What a deployable model must reach. Every field is checked when made.

    - ``min_quality``: the worst acceptable value of ``metric`` (a minimum for accuracy or AUC,
      a maximum for an error such as MAE); for accuracies in [0, 1] (``0.98`` is 98 %).
    - ``max_quality_drop``: how much worse than the original model (same split) a candidate may
      be, in the metric's units (``0.01`` is 1 point of accuracy); with ``relative_drop`` a
      fraction of the original's value (``0.01`` is 1 % of it), in [0, 1).
    - ``max_size_bytes``: the ``.tflite`` file, > 0.
    - ``max_peak_memory_bytes``: the activation arena, > 0.
    - ``max_latency_ms``: batch-1 latency at ``latency_percentile`` (p50, p90, p99, mean) and
      ``latency_threads`` threads, > 0.
    - ``max_energy_uj``: the per-inference energy estimate (architecture search), > 0.
    - ``metric``: what quality means (default top-1 accuracy).
    """

    min_quality: float | None = None
    max_quality_drop: float | None = None
    relative_drop: bool = False
    max_size_bytes: int | None = None
    max_peak_memory_bytes: int | None = None
    max_latency_ms: float | None = None
    max_energy_uj: float | None = None
    latency_percentile: str = "p50"
    latency_threads: int = 1
    metric: Metric = field(default_factory=lambda: METRICS["top1"])

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {"metric": metric_from_dict(self.metric)}  # type: ignore[arg-type]
        metric: Metric = checked["metric"]
        if self.min_quality is not None:
            checked["min_quality"] = check_number(
                "min_quality",
                self.min_quality,
                minimum=metric.lower,
                maximum=metric.upper,
                hint="Accuracy is in [0, 1]: 0.98 is 98 %."
                if metric.fraction
                else f"It is a value of {metric.name} ({metric.direction}).",
            )
        if self.max_quality_drop is not None:
            bounded = metric.fraction or self.relative_drop
            checked["max_quality_drop"] = check_number(
                "max_quality_drop",
                self.max_quality_drop,
                minimum=0,
                maximum=1 if bounded else None,
                max_inclusive=False,
                hint=(
                    "A relative drop is in [0, 1): 0.01 is 1 % of the original."
                    if self.relative_drop
                    else "A drop is in [0, 1): 0.01 is 1 point."
                    if metric.fraction
                    else f"A drop is >= 0, in units of {metric.name}."
                ),
            )
        if not isinstance(self.relative_drop, bool):
            raise InvalidOptionError(
                f"relative_drop must be true or false, got {self.relative_drop!r}."
            )
        for name in ("max_size_bytes", "max_peak_memory_bytes"):
            value = getattr(self, name)
            if value is not None:
                number = check_number(name, value, minimum=0, min_inclusive=False)
                checked[name] = max(1, round(number))
        for name in ("max_latency_ms", "max_energy_uj"):
            value = getattr(self, name)
            if value is not None:
                checked[name] = check_number(name, value, minimum=0, min_inclusive=False)
        if self.latency_percentile not in LATENCY_PERCENTILES:
            raise InvalidOptionError(
                f"latency_percentile {self.latency_percentile!r} is unknown: use one of "
                f"{', '.join(LATENCY_PERCENTILES)}."
            )
        checked["latency_threads"] = check_integer(
            "latency_threads",
            self.latency_threads,
            minimum=1,
            hint="It is the thread count the latency target refers to.",
        )
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None, *, metric: Metric | None = None) -> Targets:
        """Targets from a plain mapping (a YAML block, a JSON summary); unknown keys refused.

        ``min_accuracy``/``max_accuracy_drop`` are read as ``min_quality``/``max_quality_drop``.
        ``metric`` (when given) replaces the mapping's own.
        """
        values = dict(values or {})
        for old, new in _ALIASES.items():
            if old in values:
                if new in values:
                    raise InvalidOptionError(f"Set {new} or {old}, not both.")
                values[new] = values.pop(old)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidOptionError(
                f"Unknown target(s) {', '.join(unknown)}: use any of {', '.join(sorted(known))}."
            )
        if metric is not None:
            values["metric"] = metric
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The targets as plain values (ZenML metadata, JSON, YAML)."""
        return asdict(self)

    def with_metric(self, metric: Metric) -> Targets:
        """The same targets, judged by ``metric`` (checked again in its units)."""
        values = {k: v for k, v in self.to_dict().items() if k != "metric"}
        return Targets(**values, metric=metric)

    # -- quality --------------------------------------------------------------------------------

    @property
    def has_quality_target(self) -> bool:
        """Whether the user set a quality target (else the default floor applies)."""
        return self.min_quality is not None or self.max_quality_drop is not None

    def allowed_drop(self, original: float) -> float:
        """How much worse than ``original`` the drop target allows, in the metric's units (the
        default 1 point, or 1 % for non-fraction metrics, when no quality target is set)."""
        if self.max_quality_drop is None:
            if self.min_quality is not None:
                return 0.0
            if self.metric.fraction:
                return DEFAULT_MAX_ACCURACY_DROP
            return DEFAULT_RELATIVE_DROP * abs(original)
        if self.relative_drop:
            return self.max_quality_drop * abs(original)
        return self.max_quality_drop

    def quality_floor(self, original: float) -> float:
        """The worst acceptable value given the original model's: the stricter of
        ``min_quality`` and ``original`` made worse by the allowed drop; the default floor when
        no quality target is set."""
        floors = []
        if self.min_quality is not None:
            floors.append(float(self.min_quality))
        if self.max_quality_drop is not None or self.min_quality is None:
            floors.append(self.metric.shifted(original, self.allowed_drop(original)))
        # The stricter bound is the better value in the metric's direction.
        return self.metric.best(floors)

    def quality_met(self, original: float, value: float) -> bool:
        """Whether ``value`` is at least as good as :meth:`quality_floor` (rounding absorbed)."""
        return self.metric.at_least_as_good(value, self.quality_floor(original))

    def describe_quality(self) -> str:
        """The quality target in words, e.g. ``"drop <= 0.5 points"``."""
        metric, parts = self.metric, []
        unit = "points" if metric.fraction else metric.name
        if self.min_quality is not None:
            sign = ">=" if metric.higher_is_better else "<="
            parts.append(f"{metric.label} {sign} {metric.format(self.min_quality)}")
        if self.max_quality_drop is not None:
            amount = 100 * self.max_quality_drop if metric.fraction else self.max_quality_drop
            parts.append(
                f"{metric.label} at most {100 * self.max_quality_drop:g} % worse than the original"
                if self.relative_drop
                else f"drop <= {amount:g} {unit}"
            )
        if not parts:
            parts.append(
                f"drop <= {100 * DEFAULT_MAX_ACCURACY_DROP:g} point"
                if metric.fraction
                else f"{metric.label} at most {100 * DEFAULT_RELATIVE_DROP:g} % worse than the original"
            )
            parts[-1] += " (default floor: no quality target set)"
        return " and ".join(parts)

    # -- resources ------------------------------------------------------------------------------

    def resource_limits(self) -> dict[str, float]:
        """``{"size_bytes": limit, ...}`` for the resource targets that are set."""
        pairs = {
            "size_bytes": self.max_size_bytes,
            "peak_memory_bytes": self.max_peak_memory_bytes,
            "latency_ms": self.max_latency_ms,
            "energy_uj": self.max_energy_uj,
        }
        return {k: float(v) for k, v in pairs.items() if v is not None}

    @property
    def latency_key(self) -> str:
        """The benchmark key a latency target reads, e.g. ``"p50@1"``."""
        return f"{self.latency_percentile}@{self.latency_threads}"

    @property
    def empty(self) -> bool:
        """No target set at all (the default accuracy floor still applies)."""
        return not self.has_quality_target and not self.resource_limits()
