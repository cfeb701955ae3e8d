"""The search's reward: a trial's measured figures and the targets become one number to maximise.

Pure functions over plain figures (no TensorFlow, no ZenML), so the controller, the studio and
the reports score a trial the same way. ``figures`` is :meth:`TrialRecord.figures`: accuracy,
size_bytes, peak_memory_bytes, latency_ms, energy_uj (None when not measured).

Three modes (:class:`RewardOptions`):

- ``"soft"`` (MnasNet, Tan et al. 2019): ``accuracy * prod((m/T) ** w)`` over the resource
  targets that are set, with ``w = 0`` when the figure ``m`` meets its target ``T`` and
  ``w = -penalty`` when it misses. Meeting a target is never penalised and never rewarded, so
  the search does not trade accuracy for headroom nobody asked for; missing one costs in
  proportion to how far it is missed, which gives the controller a gradient towards the target
  long before any candidate meets it.
- ``"hard"``: the accuracy when every target (accuracy floor included) is met, else 0: violating
  candidates are rejected outright.
- ``"forgiving"`` (AutoQKeras' forgiving factor, Coelho et al. 2021): per resource target,
  ``1 + d * log(T/m) / log(rate)`` with ``d = forgiving_delta / 100``: every halving of the
  cost below the target (with ``rate`` 2) adds ``d`` to the factor, every doubling above it takes
  ``d`` away. AutoQKeras compares against the original model's cost; here the target is the
  reference, so a candidate exactly at its target scores its plain accuracy. Each factor is
  clamped to ``[0, 2]`` so a zero cost or an absurd one stays finite.

In the soft and forgiving modes an accuracy below the floor (:meth:`Targets.quality_floor`)
multiplies the reward by ``(accuracy/floor) ** accuracy_penalty``.

"Accuracy" above is the targets' metric made a positive "goodness", higher is better: an
accuracy or AUC as it is; an error ``e`` (MAE, RMSE, ...) as ``1 / (1 + e / e0)`` against the
original's ``e0`` (0.5 at the original, 1 for a perfect model); any other higher-is-better
value ``v`` (R², a user function) as ``exp(v - v0)`` (1 at the original).

Missing figures: a missing (None or NaN) accuracy makes the reward 0 in every mode (the trial
cannot be judged). A set resource target whose figure is missing cannot be checked, so it
counts as missed: 0 in hard mode, and in the soft and forgiving modes it is scored as if the
figure were twice its target (a soft factor of ``0.5 ** penalty``): bad enough that the search
moves away, not so bad that one unmeasured latency erases an otherwise good candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ..metrics import Metric
from .types import RewardOptions, Targets

__all__ = ["meets_targets", "missed_targets", "reward"]

_EPS = 1e-9  # absorbs float rounding in accuracy comparisons
#: How a missing figure of a set target is scored in the soft and forgiving modes.
_MISSING_RATIO = 2.0
_FORGIVING_MAX = 2.0
_LABELS = {
    "size_bytes": "size",
    "peak_memory_bytes": "peak memory",
    "latency_ms": "latency",
    "energy_uj": "energy",
}


def _number(value: object) -> float | None:
    """The value as a float, or None when missing, NaN or not a number."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _met(measured: float, limit: float) -> bool:
    return measured <= limit


def _soft_factor(measured: float | None, limit: float, penalty: float) -> float:
    if measured is None:
        return float(_MISSING_RATIO**-penalty)
    if _met(measured, limit):
        return 1.0
    if limit <= 0:  # a zero target missed by any amount: infinitely far off
        return 0.0
    return float((measured / limit) ** -penalty)


def _forgiving_factor(measured: float | None, limit: float, options: RewardOptions) -> float:
    if measured is None:
        ratio = _MISSING_RATIO
    elif measured <= 0 and limit <= 0:
        ratio = 1.0
    elif limit <= 0:
        return 0.0
    elif measured <= 0:
        return _FORGIVING_MAX
    else:
        ratio = measured / limit
    delta = options.forgiving_delta / 100.0
    factor = 1.0 + delta * math.log(1.0 / ratio) / math.log(options.forgiving_rate)
    return min(max(factor, 0.0), _FORGIVING_MAX)


def goodness(metric: Metric, value: float, original: float) -> float:
    """``value`` of ``metric`` as a positive score, higher is better (see the module docstring)."""
    if metric.fraction and metric.higher_is_better:
        return max(value, 0.0)
    if not metric.higher_is_better:
        scale = abs(original) if original else 1.0
        return 1.0 / (1.0 + max(value, 0.0) / scale)
    return math.exp(min(value - original, 50.0))  # capped: exp() of a huge gain overflows


def reward(
    figures: Mapping[str, float | None],
    targets: Targets,
    original_accuracy: float,
    options: RewardOptions | None = None,
) -> float:
    """The trial's reward (>= 0; see the module docstring for the three modes).

    ``original_accuracy`` is the original model's validation accuracy, from which a
    ``max_quality_drop`` target gets its floor. ``options`` defaults to ``RewardOptions()``
    (soft, penalty 1, accuracy penalty 10).
    """
    options = options if options is not None else RewardOptions()
    raw = _number(figures.get("accuracy"))
    if raw is None:
        return 0.0
    metric = targets.metric
    accuracy = goodness(metric, raw, original_accuracy)
    limits = targets.resource_limits()
    measured = {name: _number(figures.get(name)) for name in limits}
    floor = goodness(metric, targets.quality_floor(original_accuracy), original_accuracy)

    if options.mode == "hard":
        return accuracy if meets_targets(figures, targets, original_accuracy) else 0.0

    value = accuracy
    for name, limit in limits.items():
        if options.mode == "soft":
            value *= _soft_factor(measured[name], limit, options.penalty)
        else:
            value *= _forgiving_factor(measured[name], limit, options)
    if accuracy < floor - _EPS and floor > 0:
        value *= (accuracy / floor) ** options.accuracy_penalty
    return float(value)


def missed_targets(
    figures: Mapping[str, float | None], targets: Targets, original_accuracy: float
) -> list[str]:
    """One readable line per missed target, e.g. ``"size 14.2 KB > 12.0 KB"``; [] when all met.

    A set target whose figure is missing (None or NaN) is missed: ``"latency not measured
    (target 2.5 ms)"``.
    """
    missed: list[str] = []
    metric = targets.metric
    floor = targets.quality_floor(original_accuracy)
    accuracy = _number(figures.get("accuracy"))
    if accuracy is None:
        missed.append(f"{metric.label} not measured (floor {metric.format(floor)})")
    elif not metric.at_least_as_good(accuracy, floor):
        fmt = _pct if metric.fraction else metric.format
        sign = "<" if metric.higher_is_better else ">"
        missed.append(f"{metric.label} {_pair(accuracy, floor, fmt, sign)}")
    for name, limit in targets.resource_limits().items():
        value = _number(figures.get(name))
        fmt = _bytes if name.endswith("_bytes") else _ms if name == "latency_ms" else _uj
        if value is None:
            missed.append(f"{_LABELS[name]} not measured (target {fmt(limit)})")
        elif not _met(value, limit):
            missed.append(f"{_LABELS[name]} {_pair(value, limit, fmt, '>')}")
    return missed


def meets_targets(
    figures: Mapping[str, float | None], targets: Targets, original_accuracy: float
) -> bool:
    """True when every set target is met (and measured); see :func:`missed_targets`."""
    return not missed_targets(figures, targets, original_accuracy)


# -- formatting ---------------------------------------------------------------------------------


def _pair(value: float, limit: float, fmt: Callable[[float], str], sign: str) -> str:
    """``"14.2 KB > 12.0 KB"``, with more digits when rounding would make both sides equal."""
    left, right = fmt(value), fmt(limit)
    if left == right:
        unit = right.rsplit(" ", 1)[-1]
        scale = 100.0 if unit == "%" else 1.0
        left, right = f"{value * scale:,.6g} {unit}", f"{limit * scale:,.6g} {unit}"
        if unit in ("KB", "MB"):
            left, right = f"{value:,.0f} B", f"{limit:,.0f} B"
    return f"{left} {sign} {right}"


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _bytes(value: float) -> str:
    if abs(value) < 10_000:
        return f"{value:,.0f} B"
    if abs(value) < 10_000_000:
        return f"{value / 1000:,.1f} KB"
    return f"{value / 1_000_000:,.1f} MB"


def _ms(value: float) -> str:
    return f"{value:,.3g} ms"


def _uj(value: float) -> str:
    return f"{value:,.3g} uJ"
