"""The Pareto front of a search: the trials no other trial beats on every objective at once."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import InvalidOptionError
from ..metrics import Metric
from .types import TrialRecord

__all__ = ["DEFAULT_OBJECTIVES", "OBJECTIVE_FIGURES", "dominates", "objectives", "pareto_front"]

#: ``(figure, "max" | "min")`` pairs :func:`pareto_front` trades off by default.
DEFAULT_OBJECTIVES: tuple[tuple[str, str], ...] = (
    ("accuracy", "max"),
    ("size_bytes", "min"),
    ("latency_ms", "min"),
)


def objectives(metric: Metric) -> tuple[tuple[str, str], ...]:
    """:data:`DEFAULT_OBJECTIVES` with the quality figure in ``metric``'s direction (an error
    such as MAE is minimised)."""
    way = "max" if metric.higher_is_better else "min"
    return (("accuracy", way), *DEFAULT_OBJECTIVES[1:])


#: The :class:`TrialRecord` figures an objective may name.
OBJECTIVE_FIGURES = (
    "accuracy",
    "keras_accuracy",
    "size_bytes",
    "peak_memory_bytes",
    "latency_ms",
    "energy_uj",
    "params",
    "macs",
    "reward",
)
_DIRECTIONS = ("max", "min")


def _check(objectives: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    if isinstance(objectives, str):
        raise InvalidOptionError(
            f"objectives is a list of (figure, 'max' | 'min') pairs, got {objectives!r}."
        )
    checked = []
    for objective in objectives:
        if not isinstance(objective, (tuple, list)) or len(objective) != 2:
            raise InvalidOptionError(
                f"An objective is a (figure, 'max' | 'min') pair such as ('accuracy', 'max'), "
                f"got {objective!r}."
            )
        name, direction = objective
        if name not in OBJECTIVE_FIGURES:
            raise InvalidOptionError(
                f"Unknown objective {name!r}: use one of {', '.join(OBJECTIVE_FIGURES)}."
            )
        if direction not in _DIRECTIONS:
            raise InvalidOptionError(
                f"Objective {name!r} has direction {direction!r}: use 'max' or 'min'."
            )
        checked.append((str(name), str(direction)))
    if not checked:
        raise InvalidOptionError("pareto_front needs at least one objective.")
    names = [name for name, _ in checked]
    if len(set(names)) != len(names):
        raise InvalidOptionError(f"An objective is listed twice in {names}.")
    return tuple(checked)


def _value(record: TrialRecord, name: str) -> float | None:
    """The figure as a float, or None when missing (None or NaN)."""
    value: Any = getattr(record, name)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def dominates(
    a: TrialRecord,
    b: TrialRecord,
    objectives: Sequence[tuple[str, str]] = DEFAULT_OBJECTIVES,
) -> bool:
    """True when ``a`` is at least as good as ``b`` on every objective and better on one.

    Objectives that neither record measured are skipped; one that only one of them measured
    makes the two incomparable (False). The status is not looked at: :func:`pareto_front`
    leaves failed trials out before comparing.
    """
    better = False
    for name, direction in _check(objectives):
        x, y = _value(a, name), _value(b, name)
        if x is None and y is None:
            continue
        if x is None or y is None:
            return False
        if direction == "min":
            x, y = -x, -y
        if x < y:
            return False
        better = better or x > y
    return better


def pareto_front(
    records: Sequence[TrialRecord],
    objectives: Sequence[tuple[str, str]] = DEFAULT_OBJECTIVES,
) -> list[int]:
    """The ``trial`` numbers of the non-dominated successful records, smallest file first.

    Only ``record.ok`` records take part. An objective whose figure no successful record has
    (e.g. latency when it was not measured) is ignored; a record missing a figure that others
    have is left out of the front. Of several records with the very same figures only the
    earliest trial is kept. Ties in size are ordered by trial number.

    Raises:
        InvalidOptionError: an objective is not a (figure, ``"max"``/``"min"``) pair naming a
            :data:`OBJECTIVE_FIGURES` figure.
    """
    checked = _check(objectives)
    for record in records:
        if not isinstance(record, TrialRecord):
            raise InvalidOptionError(
                f"pareto_front takes TrialRecords, got {type(record).__name__}."
            )
    ok = [r for r in records if r.ok]
    active = tuple((name, d) for name, d in checked if any(_value(r, name) is not None for r in ok))
    candidates = [r for r in ok if all(_value(r, name) is not None for name, _ in active)]
    # The earliest of identical trials stands for all of them.
    unique: dict[tuple[float | None, ...], TrialRecord] = {}
    for record in sorted(candidates, key=lambda r: r.trial):
        unique.setdefault(tuple(_value(record, name) for name, _ in active), record)
    kept = list(unique.values())
    if active:
        front = [r for r in kept if not any(dominates(o, r, active) for o in kept if o is not r)]
    else:  # nothing measured to compare on: every trial ties and the earliest stands
        front = kept
    front.sort(key=lambda r: (r.size_bytes is None, r.size_bytes or 0, r.trial))
    return [r.trial for r in front]
