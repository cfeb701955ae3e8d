"""The deployment gate: may this compressed candidate replace what is deployed?

Pure functions over plain figures (no ZenML, no TensorFlow). :func:`decide` checks every
candidate against the :class:`~zenml_quant.targets.Targets` and, when a model is already in the
stage asked for, against that "champion", and picks the one to promote. The ZenML step
:func:`zenml_quant.integration.steps.gate.deployment_gate` reads the champion, calls
:func:`decide`, and promotes the model version when the decision passes.

The gate fails closed and never raises:

- every figure it reads (the candidate's quality, size, latency, peak memory; the original
  model's quality; the champion's) must be a finite number in its range, else its check fails
  with a reason that names the figure and the value read. Quality is the targets' metric
  (:attr:`Targets.metric`): top-1 accuracy, AUC, MAE, ... each with its direction and range;
- a figure a target needs that is missing fails that target;
- a candidate that failed upstream (``error`` set) fails;
- quality always has a floor: without a quality target, at most 1 point of an accuracy (or 1 %
  of another metric) lost against the original;
- a champion that exists but cannot be read blocks promotion unless
  ``GateOptions.replace_unreadable_champion``;
- anything unexpected (a malformed input, a bug) is a refusal whose reason says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._validate import as_finite
from .errors import InvalidOptionError
from .metrics import Metric
from .targets import Targets

__all__ = [
    "CHECK_NAMES",
    "FIGURE_RANGES",
    "STAGES",
    "CandidateMeasurements",
    "Champion",
    "GateCheck",
    "GateDecision",
    "GateOptions",
    "check_candidate",
    "decide",
]

#: The checks the gate can report, in order. ``error`` appears for a failed candidate only.
CHECK_NAMES: tuple[str, ...] = (
    "error",
    "baseline",
    "quality",
    "quality_drop",
    "size",
    "latency",
    "peak_memory",
    "champion",
)
#: Stages a passing candidate's model version may be promoted to (None: decide only).
STAGES: tuple[str | None, ...] = ("staging", "production", None)
#: Figures that may be listed in ``GateOptions.required`` (must be measured without a limit).
_REQUIRABLE = ("latency", "peak_memory")
#: The range a resource figure must lie in to be believed, as (low, low inclusive, high, high
#: inclusive). A TFLite flatbuffer cannot exceed 2 GiB; a batch-1 latency over an hour or an
#: arena over 1 TiB is a measuring error, not a model. Quality figures must lie in the range of
#: their metric (:meth:`Metric.plausible`).
FIGURE_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "size": (0.0, False, float(2**31), False),
    "latency": (0.0, False, 3_600_000.0, False),
    "peak memory": (0.0, False, float(2**40), False),
}
_EPS = 1e-9  # absorbs float rounding in accuracy comparisons
_MISSING = object()


@dataclass(frozen=True)
class CandidateMeasurements:
    """What the gate knows about one candidate, as measured (the gate checks every value).

    ``latency_ms`` maps ``"<percentile>@<threads>"`` (``"p50@1"``, ``"p90@4"``, ``"mean@1"``) to
    milliseconds. ``error`` is set when the candidate could not be built or measured; it then
    fails. ``baseline_accuracy`` is the original (Keras) model's accuracy on the same split.
    """

    name: str
    accuracy: float | None
    baseline_accuracy: float | None
    size_bytes: int | None
    latency_ms: dict[str, Any] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    error: str | None = None
    #: What ``accuracy`` and ``baseline_accuracy`` measure; the gate refuses a candidate whose
    #: metric is not its targets'.
    metric: str = "top1"
    higher_is_better: bool = True
    #: How many examples ``accuracy`` was measured on (None: not known), which sets how far
    #: apart two qualities must be to tell them apart.
    n_examples: int | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CandidateMeasurements:
        """From a plain mapping (a JSON file, a device runner's result); absent keys are
        missing figures, kept as such for the gate to refuse."""
        latency = values.get("latency_ms", {})
        return cls(
            name=str(values.get("name", "")),
            accuracy=values.get("accuracy", None),
            baseline_accuracy=values.get("baseline_accuracy", None),
            size_bytes=values.get("size_bytes", None),
            latency_ms=dict(latency) if isinstance(latency, Mapping) else {"?": latency},
            peak_memory_bytes=values.get("peak_memory_bytes", None),
            error=values.get("error", None),
            metric=str(values.get("metric", "top1")),
            higher_is_better=bool(values.get("higher_is_better", True)),
            n_examples=values.get("n_examples", None),
        )


@dataclass(frozen=True)
class Champion:
    """The model version already in the stage a candidate would be promoted to.

    ``accuracy`` is what was read for it (checked by the gate: an unreadable value blocks
    promotion); ``source`` says where it came from, for the report.
    """

    version: str
    accuracy: Any  # as read: the gate checks it
    source: str = ""
    #: What else was recorded when it was promoted (candidate name, size, latency, memory),
    #: shown next to the challenger's figures; not checked.
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateOptions:
    """How the gate decides, beyond the targets.

    - ``champion_margin``: how much worse than the champion the challenger may be, >= 0 in the
      metric's units (0.01 = 1 point of accuracy; 0 means "not worse").
    - ``replace_unreadable_champion``: promote even when the champion's quality cannot be read.
    - ``required``: figures that must be measured even without a limit (``"latency"``,
      ``"peak_memory"``).
    """

    champion_margin: float = 0.0
    replace_unreadable_champion: bool = False
    required: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        margin = as_finite(self.champion_margin)
        if margin is None or margin < 0:
            raise InvalidOptionError(
                f"champion_margin must be a number >= 0 in the metric's units (0.01 = 1 point "
                f"of accuracy), got {self.champion_margin!r}."
            )
        object.__setattr__(self, "champion_margin", margin)
        if isinstance(self.required, str):
            raise InvalidOptionError(
                f"required must be a list of figure names, e.g. [{self.required!r}], not a string."
            )
        unknown = [r for r in self.required if r not in _REQUIRABLE]
        if unknown:
            raise InvalidOptionError(
                f"Unknown required figure(s) {', '.join(map(repr, unknown))}: use any of "
                f"{', '.join(_REQUIRABLE)}."
            )
        object.__setattr__(self, "required", tuple(self.required))


@dataclass(frozen=True)
class GateCheck:
    """One check of one candidate. ``value`` is the figure when it was a valid number."""

    name: str
    value: float | None
    limit: float | str | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    ``selected`` is the candidate to promote (None when nothing passed). ``requested_stage`` is
    where the caller asked to promote it; ``stage`` is where a model version was actually moved
    (None until the caller promoted one: :func:`decide` never promotes), and
    ``promotion`` says what happened or why nothing was promoted. ``checks`` are those of the
    selected candidate, or of the closest failing one (``checked``); ``per_candidate`` holds
    everyone's. ``reasons`` are readable on their own.
    """

    passed: bool
    selected: str | None
    checks: tuple[GateCheck, ...]
    reasons: tuple[str, ...]
    per_candidate: dict[str, tuple[GateCheck, ...]] = field(default_factory=dict)
    checked: str | None = None
    requested_stage: str | None = None
    stage: str | None = None
    promotion: str = "nothing promoted: no stage was asked"
    champion: Champion | None = None
    targets: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_checks(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def champion_accuracy(self) -> float | None:
        """The champion's quality (in the targets' metric) when it was readable, else None."""
        if self.champion is None:
            return None
        try:
            metric = Targets.from_dict(self.targets).metric
        except InvalidOptionError:
            return None
        return _quality("champion", self.champion.accuracy, metric)[0]

    def promoted(self, stage: str, version: str) -> GateDecision:
        """This decision after model version ``version`` was moved to ``stage``."""
        return replace(self, stage=stage, promotion=f"model version {version} promoted to {stage}")

    def not_promoted(self, why: str) -> GateDecision:
        """This decision with the reason nothing was promoted."""
        return replace(self, stage=None, promotion=f"nothing promoted: {why}")


# -- figures ------------------------------------------------------------------------------------


def _change(metric: Metric, value: float) -> str:
    return f"{100 * value:.2f} points" if metric.fraction else f"{value:.4g}"


def _bytes(value: float) -> str:
    return f"{int(value):,} B"


def _ms(value: float) -> str:
    return f"{value:,.4g} ms"


def _number(kind: str, raw: object) -> tuple[float | None, str | None]:
    """``(value, None)`` for a finite number, ``(None, None)`` when missing, else the problem."""
    if raw is None or raw is _MISSING:
        return None, None
    value = as_finite(raw)
    if value is None:
        what = (
            "not a number"
            if isinstance(raw, (str, bytes, bool)) or not isinstance(raw, (int, float))
            else "not finite"
        )
        return None, f"{kind} is {what} ({raw!r})"
    return value, None


def _figure(kind: str, raw: object) -> tuple[float | None, str | None]:
    """``(value, None)`` for a believable figure, ``(None, problem)`` otherwise.

    ``problem`` is None with value None only when the figure is missing (None or absent).
    """
    value, problem = _number(kind, raw)
    if value is None:
        return None, problem
    low, low_in, high, high_in = FIGURE_RANGES[kind]
    if (
        value < low
        or (value == low and not low_in)
        or value > high
        or (value == high and not high_in)
    ):
        bounds = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        return None, f"{kind} {raw!r} is impossible (outside {bounds})"
    return value, None


def _quality(whose: str, raw: object, metric: Metric) -> tuple[float | None, str | None]:
    """Like :func:`_figure` for a value of ``metric``, named e.g. ``"baseline accuracy"``."""
    kind = f"{whose} {metric.label}".strip()
    value, problem = _number(kind, raw)
    if value is None:
        return None, problem
    if not metric.plausible(value):
        low = "-inf" if metric.lower is None else f"{metric.lower:g}"
        high = "inf" if metric.upper is None else f"{metric.upper:g}"
        return None, f"{kind} {raw!r} is impossible (outside [{low}, {high}])"
    if whose in ("baseline", "champion") and metric.fraction and value == 0:
        # A reference that scores 0 is a broken measurement, and would let anything pass.
        return None, f"{kind} {raw!r} is impossible (a working model scores above 0)"
    return value, None


def _invalid(name: str, limit: float | str | None, problem: str) -> GateCheck:
    return GateCheck(name, None, limit, False, f"{problem}: refused")


def _limit_check(
    name: str,
    kind: str,
    raw: object,
    limit: float | None,
    show: Callable[[float], str],
    *,
    required: bool,
    label: str | None = None,
) -> GateCheck | None:
    """``figure <= limit``; without a limit: a present figure must be valid, a required one
    present. None when there is nothing to check."""
    value, problem = _figure(kind, raw)
    label = label or kind
    if problem is not None:
        return _invalid(name, limit, problem)
    if value is None:
        if limit is None and not required:
            return None
        return GateCheck(name, None, limit, False, f"{label} not measured: refused")
    if limit is None:
        return GateCheck(name, value, None, True, f"{label} {show(value)} (no limit)")
    ok = value <= limit
    return GateCheck(
        name, value, limit, ok, f"{label} {show(value)} {'<=' if ok else '>'} limit {show(limit)}"
    )


# -- checks -------------------------------------------------------------------------------------


def _quality_checks(targets: Targets, m: CandidateMeasurements) -> list[GateCheck]:
    metric, checks = targets.metric, []
    name = metric.label
    baseline, baseline_problem = _quality("baseline", m.baseline_accuracy, metric)
    if baseline_problem is not None or baseline is None:
        checks.append(
            _invalid("baseline", None, baseline_problem or f"baseline {name} not measured")
        )
    else:
        checks.append(
            GateCheck(
                "baseline", baseline, None, True, f"original {name} {metric.format(baseline)}"
            )
        )
    value, problem = _quality("", m.accuracy, metric)
    if problem is not None or value is None:
        checks.append(_invalid("quality", targets.min_quality, problem or f"{name} not measured"))
        return checks

    if targets.min_quality is not None:
        ok = metric.at_least_as_good(value, targets.min_quality)
        sign = (">=" if ok else "<") if metric.higher_is_better else ("<=" if ok else ">")
        bound = "minimum" if metric.higher_is_better else "maximum"
        checks.append(
            GateCheck(
                "quality",
                value,
                targets.min_quality,
                ok,
                f"{name} {metric.format(value)} {sign} {bound} {metric.format(targets.min_quality)}",
            )
        )
    if (targets.max_quality_drop is not None or not targets.has_quality_target) and (
        baseline is not None
    ):
        allowed = targets.allowed_drop(baseline)
        drop = metric.worse_by(baseline, value)
        ok = drop <= allowed + _EPS
        default = "" if targets.has_quality_target else " (default floor: no quality target set)"
        checks.append(
            GateCheck(
                "quality_drop",
                drop,
                allowed,
                ok,
                f"{name} worse by {_change(metric, drop)} ({metric.format(baseline)} -> "
                f"{metric.format(value)}) {'<=' if ok else '>'} allowed "
                f"{_change(metric, allowed)}{default}",
            )
        )
    return checks


def _champion_check(
    champion: Champion | None, raw: object, options: GateOptions, metric: Metric
) -> GateCheck | None:
    if champion is None:
        return None
    value, problem = _quality("champion", champion.accuracy, metric)
    if problem is not None or value is None:
        problem = problem or f"champion {metric.label} is missing"
        where = f"champion {champion.version}" + (
            f" ({champion.source})" if champion.source else ""
        )
        if options.replace_unreadable_champion:
            return GateCheck("champion", None, None, True, f"{where}: {problem}; replaced as asked")
        return GateCheck(
            "champion",
            None,
            None,
            False,
            f"{where}: {problem}: cannot compare, so it is kept. Pass "
            f"--replace-unreadable-champion (replace_unreadable_champion=True) to replace it",
        )
    mine, _ = _quality("", raw, metric)
    limit = metric.shifted(value, options.champion_margin)
    if mine is None:
        return GateCheck(
            "champion", None, limit, False, f"{metric.label} not valid: cannot beat the champion"
        )
    ok = metric.at_least_as_good(mine, limit)
    sign = "-" if metric.higher_is_better else "+"
    text = (
        f"{metric.label} {metric.format(mine)} {'no worse than' if ok else 'worse than'} champion "
        f"{champion.version} {metric.format(value)} {sign} margin "
        f"{_change(metric, options.champion_margin)}"
    )
    return GateCheck(
        "champion", mine, limit, ok, text if ok else f"worse than the champion: {text}"
    )


def check_candidate(
    targets: Targets,
    m: CandidateMeasurements,
    *,
    champion: Champion | None = None,
    options: GateOptions | None = None,
) -> tuple[GateCheck, ...]:
    """Every check of candidate ``m``, in :data:`CHECK_NAMES` order.

    Quality (the original's metric value, the candidate's, the floor) and size are always checked;
    latency and peak memory when a limit is set, ``options.required`` names them, or a value was
    reported (a reported value must be believable). A champion adds the ``champion`` check. A
    candidate that failed upstream (``error`` set) has the one ``error`` check, which fails.
    """
    options = options or GateOptions()
    if m.error is not None:  # its figures are whatever was left: the failure is the one reason
        return (GateCheck("error", None, None, False, f"candidate failed: {m.error}"),)
    if m.metric != targets.metric.key:
        return (
            GateCheck(
                "error",
                None,
                None,
                False,
                f"measured by {m.metric}, but the targets are in {targets.metric.key}: refused",
            ),
        )
    checks: list[GateCheck] = []
    checks += _quality_checks(targets, m)
    size = _limit_check(
        "size", "size", m.size_bytes, _limit(targets.max_size_bytes), _bytes, required=True
    )
    latency_raw = (
        m.latency_ms.get(targets.latency_key, _MISSING)
        if isinstance(m.latency_ms, Mapping)
        else m.latency_ms
    )
    latency = _limit_check(
        "latency",
        "latency",
        latency_raw,
        targets.max_latency_ms,
        _ms,
        required="latency" in options.required,
        label=f"latency {targets.latency_key}",
    )
    if latency is not None and latency.value is None and isinstance(m.latency_ms, Mapping):
        measured = ", ".join(sorted(map(str, m.latency_ms))) or "none"
        latency = replace(latency, reason=f"{latency.reason} (measured: {measured})")
    peak = _limit_check(
        "peak_memory",
        "peak memory",
        m.peak_memory_bytes,
        _limit(targets.max_peak_memory_bytes),
        _bytes,
        required="peak_memory" in options.required,
    )
    checks += [c for c in (size, latency, peak) if c is not None]
    champion_check = _champion_check(champion, m.accuracy, options, targets.metric)
    if champion_check is not None:
        checks.append(champion_check)
    return tuple(checks)


def _limit(value: int | None) -> float | None:
    return None if value is None else float(value)


# -- the decision -------------------------------------------------------------------------------


def _rank_key(targets: Targets, m: CandidateMeasurements) -> tuple[float, ...]:
    size_key, latency_key, accuracy_key = _smallest_first(targets, m)
    if targets.empty:  # nothing asked but the floor: keep the most accurate, then the smallest
        return (accuracy_key, size_key, latency_key)
    return (size_key, latency_key, accuracy_key)


def _smallest_first(targets: Targets, m: CandidateMeasurements) -> tuple[float, float, float]:
    """Size, then latency at the targets' percentile, then quality: smaller sorts first."""
    size = _figure("size", m.size_bytes)[0]
    latency_raw = (
        m.latency_ms.get(targets.latency_key) if isinstance(m.latency_ms, Mapping) else None
    )
    latency = _figure("latency", latency_raw)[0]
    quality = _quality("", m.accuracy, targets.metric)[0]
    size_key = math.inf if size is None else size
    latency_key = math.inf if latency is None else latency
    # Smaller sorts first: the better quality, whichever way the metric points.
    accuracy_key = math.inf if quality is None else targets.metric.worse_by(0.0, quality)
    return (size_key, latency_key, accuracy_key)


def _noise(targets: Targets, best: CandidateMeasurements, ns: Sequence[int | None]) -> float:
    """One standard error of the difference of two qualities measured on ``ns`` examples, for
    fraction metrics (accuracy, AUC-like rates); 0 when it cannot be told."""
    quality = _quality("", best.accuracy, targets.metric)[0]
    known = [n for n in ns if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    if not targets.metric.fraction or quality is None or len(known) < len(ns) or not known:
        return 0.0
    q = min(max(quality, 0.0), 1.0)
    return math.sqrt(2 * q * (1 - q) / min(known))


def _best_beyond_noise(
    targets: Targets, passing: Sequence[CandidateMeasurements], best: CandidateMeasurements
) -> tuple[CandidateMeasurements, str]:
    """With no target set: ``best`` (the most accurate) unless a smaller candidate's quality
    is within one standard error of it, in which case the smallest of those (a 6x larger file
    is not worth a 0.2-point gain that a test split of 1,000 cannot tell from noise)."""
    order = "best quality, then smallest (no target set)"
    noise = _noise(targets, best, [c.n_examples for c in passing])
    if noise <= 0 or len(passing) < 2:
        return best, order
    top = _quality("", best.accuracy, targets.metric)[0]
    tied = [
        c
        for c in passing
        if (q := _quality("", c.accuracy, targets.metric)[0]) is not None
        and top is not None
        and targets.metric.worse_by(top, q) <= noise + _EPS
    ]
    chosen = min(tied, key=lambda c: (*_smallest_first(targets, c), c.name))
    order = (
        f"no target set: the smallest of the candidates within one standard error "
        f"({100 * noise:.2f} points on "  # only fraction metrics have a noise margin
        f"{min(c.n_examples or 0 for c in passing):,} examples) of the best quality, "
        f"{best.name}'s"
    )
    return chosen, order


def _refusal(reason: str, targets: Targets | None, stage: object) -> GateDecision:
    return GateDecision(
        passed=False,
        selected=None,
        checks=(GateCheck("gate", None, None, False, reason),),
        reasons=(reason,),
        requested_stage=stage if stage in STAGES else None,
        promotion=f"nothing promoted: {reason}",
        targets={} if targets is None else targets.to_dict(),
    )


def decide(
    targets: Targets,
    candidates: Sequence[CandidateMeasurements | Mapping[str, Any]],
    *,
    champion: Champion | None = None,
    options: GateOptions | None = None,
    stage: str | None = None,
) -> GateDecision:
    """Check every candidate and pick the one to promote to ``stage``. Never raises.

    Among the candidates that pass every check: with no target set at all, the most accurate,
    then the smallest, where a smaller candidate within one standard error of the most
    accurate (fraction metrics, ``n_examples`` known for all) counts as accurate and wins;
    otherwise the smallest ``size_bytes``, then the lowest latency at the
    targets' percentile and threads, then the most accurate; ties by name. When none passes,
    ``checks`` are those of the candidate with the fewest failed checks and ``reasons`` list every
    failed check of every candidate. ``stage`` is recorded as ``requested_stage``: promoting is
    the caller's job (see :meth:`GateDecision.promoted`).
    """
    try:
        return _decide(targets, candidates, champion, options or GateOptions(), stage)
    except Exception as exc:  # the gate fails closed: a bug or a malformed input refuses
        return _refusal(
            f"the gate could not check the candidates ({type(exc).__name__}: {exc})",
            targets if isinstance(targets, Targets) else None,
            stage,
        )


def _decide(
    targets: Targets,
    raw_candidates: Sequence[CandidateMeasurements | Mapping[str, Any]],
    champion: Champion | None,
    options: GateOptions,
    stage: str | None,
) -> GateDecision:
    if not isinstance(targets, Targets):
        return _refusal(f"targets must be a Targets, got {type(targets).__name__}", None, stage)
    if targets.metric.fraction and options.champion_margin >= 1:
        return _refusal(
            f"champion_margin {options.champion_margin:g} is not below 1, so any candidate would "
            f"beat the champion: {targets.metric.label} is a fraction (0.01 = 1 point)",
            targets,
            stage,
        )
    if stage not in STAGES:
        return _refusal(
            f"stage {stage!r} is not a promotion stage: use 'staging', 'production' or None",
            targets,
            stage,
        )
    candidates = [
        c if isinstance(c, CandidateMeasurements) else CandidateMeasurements.from_mapping(c)
        for c in raw_candidates
    ]
    names = [c.name for c in candidates]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        return _refusal(
            f"candidate names must be unique, {', '.join(map(repr, repeated))} repeat(s)",
            targets,
            stage,
        )
    if not candidates:
        return _refusal(
            "no candidates to check: the pipeline produced no compressed model", targets, stage
        )

    per_candidate = {
        c.name: check_candidate(targets, c, champion=champion, options=options) for c in candidates
    }
    common: dict[str, Any] = {
        "per_candidate": per_candidate,
        "requested_stage": stage,
        "champion": champion,
        "targets": targets.to_dict(),
    }
    passing = [c for c in candidates if all(ch.passed for ch in per_candidate[c.name])]
    if passing:
        best = min(passing, key=lambda c: (*_rank_key(targets, c), c.name))
        order = f"smallest size, then lowest latency {targets.latency_key}, then most accurate"
        if targets.empty:
            best, order = _best_beyond_noise(targets, passing, best)
        reasons = [f"{best.name} meets every target ({targets.describe_quality()})"]
        if len(passing) > 1:
            reasons.append(
                f"chosen among {len(passing)} passing candidates "
                f"({', '.join(c.name for c in passing)}): {order}"
            )
        return GateDecision(
            passed=True,
            selected=best.name,
            checks=per_candidate[best.name],
            reasons=tuple(reasons),
            checked=best.name,
            promotion="nothing promoted: no stage was asked"
            if stage is None
            else f"not promoted yet: {stage} was asked",
            **common,
        )

    def failures(c: CandidateMeasurements) -> int:
        return sum(not ch.passed for ch in per_candidate[c.name])

    closest = min(candidates, key=lambda c: (failures(c), *_rank_key(targets, c), c.name))
    failed_reasons = tuple(
        f"{c.name}: {ch.reason}"
        for c in candidates
        for ch in per_candidate[c.name]
        if not ch.passed
    )
    return GateDecision(
        passed=False,
        selected=None,
        checks=per_candidate[closest.name],
        reasons=failed_reasons,
        checked=closest.name,
        promotion="nothing promoted: no candidate passed the gate",
        **common,
    )
