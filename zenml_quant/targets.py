"""The quality and resource targets of a deployment: one immutable type, checked when made.

The CLI, the YAML config, the Python API, the deployment gate, the PTQ accuracy budget and the
architecture search all take a :class:`Targets`. A target left at None is not set, but quality
always has a floor: without ``min_accuracy`` or ``max_accuracy_drop``, a candidate may lose at
most :data:`DEFAULT_MAX_ACCURACY_DROP` (1 point) against the original model. Set either target to
override it (``min_accuracy=0`` switches the floor off).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ._validate import check_integer, check_number
from .errors import InvalidOptionError

__all__ = ["DEFAULT_MAX_ACCURACY_DROP", "LATENCY_PERCENTILES", "Targets"]

#: The accuracy a candidate may lose against the original when the user sets no accuracy
#: target: 1 point (accuracy units).
DEFAULT_MAX_ACCURACY_DROP = 0.01
#: Latency statistics a latency target may refer to.
LATENCY_PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "mean")
_EPS = 1e-9  # absorbs float rounding in accuracy comparisons


@dataclass(frozen=True)
class Targets:
    """What a deployable model must reach. Every field is checked when the object is made.

    - ``min_accuracy``: lowest accuracy, in [0, 1] (``0.98`` is 98 %).
    - ``max_accuracy_drop``: largest drop from the original model's accuracy on the same split,
      in [0, 1) accuracy units (``0.01`` is 1 point); with ``relative_drop`` a fraction of the
      original accuracy (``0.01`` is 1 % of it).
    - ``max_size_bytes``: the ``.tflite`` file, > 0.
    - ``max_peak_memory_bytes``: the activation arena, > 0.
    - ``max_latency_ms``: batch-1 latency at ``latency_percentile`` (p50, p90, p99, mean) and
      ``latency_threads`` threads, > 0.
    - ``max_energy_uj``: the per-inference energy estimate (architecture search), > 0.
    """

    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    relative_drop: bool = False
    max_size_bytes: int | None = None
    max_peak_memory_bytes: int | None = None
    max_latency_ms: float | None = None
    max_energy_uj: float | None = None
    latency_percentile: str = "p50"
    latency_threads: int = 1

    def __post_init__(self) -> None:
        checked: dict[str, Any] = {}
        if self.min_accuracy is not None:
            checked["min_accuracy"] = check_number(
                "min_accuracy",
                self.min_accuracy,
                minimum=0,
                maximum=1,
                hint="Accuracy is in [0, 1]: 0.98 is 98 %.",
            )
        if self.max_accuracy_drop is not None:
            checked["max_accuracy_drop"] = check_number(
                "max_accuracy_drop",
                self.max_accuracy_drop,
                minimum=0,
                maximum=1,
                max_inclusive=False,
                hint="A drop is in [0, 1): 0.01 is 1 point"
                + (" (relative: 1 % of the original)." if self.relative_drop else "."),
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
    def from_dict(cls, values: dict[str, Any] | None) -> Targets:
        """Targets from a plain mapping (a YAML block, a JSON summary); unknown keys refused."""
        values = dict(values or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidOptionError(
                f"Unknown target(s) {', '.join(unknown)}: use any of {', '.join(sorted(known))}."
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The targets as plain values (ZenML metadata, JSON, YAML)."""
        return asdict(self)

    # -- quality --------------------------------------------------------------------------------

    @property
    def has_quality_target(self) -> bool:
        """Whether the user set an accuracy target (else the default floor applies)."""
        return self.min_accuracy is not None or self.max_accuracy_drop is not None

    def allowed_drop(self, original_accuracy: float) -> float:
        """The largest absolute drop allowed from ``original_accuracy`` by the drop target, or
        the default 1 point when no quality target is set."""
        if self.max_accuracy_drop is None:
            return 0.0 if self.min_accuracy is not None else DEFAULT_MAX_ACCURACY_DROP
        if self.relative_drop:
            return self.max_accuracy_drop * original_accuracy
        return self.max_accuracy_drop

    def accuracy_floor(self, original_accuracy: float) -> float:
        """The lowest acceptable accuracy given the original model's: the highest of
        ``min_accuracy`` and ``original - allowed drop``; the default floor (1 point below the
        original) when no quality target is set."""
        floors = []
        if self.min_accuracy is not None:
            floors.append(float(self.min_accuracy))
        if self.max_accuracy_drop is not None or self.min_accuracy is None:
            floors.append(original_accuracy - self.allowed_drop(original_accuracy))
        return max(floors)

    def accuracy_met(self, original_accuracy: float, accuracy: float) -> bool:
        """Whether ``accuracy`` is at or above :meth:`accuracy_floor` (float rounding absorbed)."""
        return accuracy >= self.accuracy_floor(original_accuracy) - _EPS

    def describe_quality(self) -> str:
        """The quality target in words, e.g. ``"drop <= 0.5 points"``."""
        parts = []
        if self.min_accuracy is not None:
            parts.append(f"accuracy >= {100 * self.min_accuracy:g} %")
        if self.max_accuracy_drop is not None:
            parts.append(
                f"drop <= {100 * self.max_accuracy_drop:g} % of the original"
                if self.relative_drop
                else f"drop <= {100 * self.max_accuracy_drop:g} points"
            )
        if not parts:
            parts.append(
                f"drop <= {100 * DEFAULT_MAX_ACCURACY_DROP:g} point (default floor: no accuracy "
                f"target set)"
            )
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
