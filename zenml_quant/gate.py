"""The deployment gate: does a compressed candidate meet the device's targets?

Pure functions over plain figures (no ZenML, no TensorFlow): :func:`check_candidate` checks one
candidate against a :class:`GatePolicy`, :func:`decide` checks them all and picks the one to
promote. The ZenML step :func:`zenml_quant.integration.gate_step.deployment_gate` feeds it the
measurements and the current production model's accuracy (the "champion"), and promotes the
model version when the decision passes.

The gate fails closed: a target whose measurement is missing, NaN, or belongs to a candidate
that failed (``error`` set) is not met.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .errors import InvalidOptionError
from .report import render_html

__all__ = [
    "CHECK_NAMES",
    "LATENCY_PERCENTILES",
    "STAGES",
    "CandidateMeasurements",
    "GateCheck",
    "GateDecision",
    "GatePolicy",
    "check_candidate",
    "decide",
    "decision_html",
    "decision_table",
]

#: The checks the gate can run, in the order it reports them. ``"error"`` is added (and fails)
#: only for a candidate whose measurement failed.
CHECK_NAMES: tuple[str, ...] = (
    "accuracy",
    "accuracy_drop",
    "size",
    "latency",
    "peak_memory",
    "champion",
)
LATENCY_PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "mean")
#: Stages a passing candidate's model version may be promoted to (None: decide only).
STAGES: tuple[str | None, ...] = ("staging", "production", None)
#: Checks that may be listed in ``GatePolicy.required`` (``champion`` needs a margin instead).
_REQUIRABLE = ("accuracy", "accuracy_drop", "size", "latency", "peak_memory")
_EPS = 1e-9  # absorbs float rounding in accuracy comparisons


def _bad_number(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)


@dataclass(frozen=True)
class GatePolicy:
    """Deployment targets. A limit left at None is not checked (unless named in ``required``).

    - ``min_accuracy``: accuracy units (``0.98`` is 98 %).
    - ``max_accuracy_drop``: the largest drop from the candidate's ``baseline_accuracy`` (the
      float Keras model), in accuracy units (``0.01`` = 1 point); with ``relative_drop`` a
      fraction of the baseline accuracy (``0.01`` = 1 % of it).
    - ``max_size_bytes``: the ``.tflite`` file size.
    - ``max_latency_ms`` at ``latency_percentile`` (``p50``, ``p90``, ``p99`` or ``mean``) and
      ``latency_threads`` threads: the candidate's ``latency_ms["p50@1"]`` and so on.
    - ``max_peak_memory_bytes``: peak activation (arena) memory.
    - ``required``: checks whose figure must be measured even without a limit, e.g.
      ``("latency",)``.
    - ``champion_margin``: when set, a candidate's accuracy must be at least the current
      production model's accuracy minus this margin (accuracy units); ``0.0`` means "not worse".
    """

    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    relative_drop: bool = False
    max_size_bytes: int | None = None
    max_latency_ms: float | None = None
    latency_percentile: str = "p50"
    latency_threads: int = 1
    max_peak_memory_bytes: int | None = None
    required: tuple[str, ...] = ()
    champion_margin: float | None = None

    def __post_init__(self) -> None:
        limits = {
            "min_accuracy": self.min_accuracy,
            "max_accuracy_drop": self.max_accuracy_drop,
            "max_size_bytes": self.max_size_bytes,
            "max_latency_ms": self.max_latency_ms,
            "max_peak_memory_bytes": self.max_peak_memory_bytes,
            "champion_margin": self.champion_margin,
        }
        for name, value in limits.items():
            if value is not None and (_bad_number(value) or value < 0):
                raise InvalidOptionError(
                    f"{name} must be a number >= 0 or None (not checked), got {value!r}."
                )
        if self.min_accuracy is not None and self.min_accuracy > 1:
            raise InvalidOptionError(
                f"min_accuracy is in accuracy units (0.98 is 98 %), got {self.min_accuracy!r}: "
                f"divide a percentage by 100."
            )
        if self.relative_drop and self.max_accuracy_drop is not None and self.max_accuracy_drop > 1:
            raise InvalidOptionError(
                f"A relative max_accuracy_drop is a fraction of the baseline accuracy (0.01 = 1 % "
                f"of it), got {self.max_accuracy_drop!r}."
            )
        if self.latency_percentile not in LATENCY_PERCENTILES:
            raise InvalidOptionError(
                f"latency_percentile {self.latency_percentile!r} is unknown: use one of "
                f"{', '.join(LATENCY_PERCENTILES)}."
            )
        if (
            isinstance(self.latency_threads, bool)
            or not isinstance(self.latency_threads, int)
            or self.latency_threads < 1
        ):
            raise InvalidOptionError(
                f"latency_threads must be an integer >= 1 (the thread count the latency was "
                f"measured with), got {self.latency_threads!r}."
            )
        if isinstance(self.required, str):
            raise InvalidOptionError(
                f"required must be a sequence of check names, e.g. ({self.required!r},), not a "
                f"string."
            )
        unknown = [r for r in self.required if r not in _REQUIRABLE]
        if unknown:
            hint = (
                " (set champion_margin to compare with the champion)"
                if "champion" in unknown
                else ""
            )
            raise InvalidOptionError(
                f"Unknown required check(s) {', '.join(map(repr, unknown))}: use any of "
                f"{', '.join(_REQUIRABLE)}{hint}."
            )
        object.__setattr__(self, "required", tuple(self.required))

    @property
    def latency_key(self) -> str:
        """The ``CandidateMeasurements.latency_ms`` key the latency check reads, e.g. ``p50@1``."""
        return f"{self.latency_percentile}@{self.latency_threads}"


@dataclass(frozen=True)
class CandidateMeasurements:
    """What the gate knows about one candidate: plain figures, None where not measured.

    ``latency_ms`` maps ``"<percentile>@<threads>"`` (``"p50@1"``, ``"p90@4"``, ``"mean@1"``) to
    milliseconds. ``error`` is set when the candidate could not be built or measured; it then
    fails every check.
    """

    name: str
    accuracy: float | None
    baseline_accuracy: float | None
    size_bytes: int | None
    latency_ms: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class GateCheck:
    """One target checked for one candidate. ``value`` is None when it was not measured."""

    name: str
    value: float | None
    limit: float | str | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    ``selected`` is the candidate to promote (None when nothing passed) and ``stage`` where to
    (None when nothing passed or no promotion was asked). ``checks`` are those of the selected
    candidate, or of the best failing one (fewest failed checks) when nothing passed; ``checked``
    names that candidate. ``reasons`` say why, readable on their own. ``per_candidate`` holds
    every candidate's checks. ``champion_accuracy`` is the production accuracy compared with.
    """

    passed: bool
    selected: str | None
    stage: str | None
    checks: tuple[GateCheck, ...]
    reasons: tuple[str, ...]
    per_candidate: dict[str, tuple[GateCheck, ...]] = field(default_factory=dict)
    checked: str | None = None
    champion_accuracy: float | None = None

    @property
    def failed_checks(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed)


# -- formatting ---------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _points(value: float) -> str:
    return f"{100 * value:.2f} points"


def _bytes(value: float) -> str:
    return f"{int(value):,} B"


def _ms(value: float) -> str:
    return f"{value:,.4g} ms"


def _measured(value: float | int | None) -> float | None:
    """The value as a float, or None when missing or NaN."""
    if value is None or _bad_number(value):
        return None
    return float(value)


def _limit_check(
    name: str,
    label: str,
    value: float | None,
    limit: float | None,
    show: Callable[[float], str],
    *,
    upper: bool = True,
) -> GateCheck:
    """A check of ``value <= limit`` (``upper``) or ``value >= limit``; no limit: measured?"""
    if value is None:
        return GateCheck(name, None, limit, False, f"{label} not measured")
    if limit is None:
        return GateCheck(name, value, None, True, f"{label} {show(value)} measured (no limit)")
    if upper:
        ok = value <= limit + (_EPS if name == "accuracy_drop" else 0)
        sign = "<=" if ok else ">"
        return GateCheck(
            name, value, limit, ok, f"{label} {show(value)} {sign} limit {show(limit)}"
        )
    ok = value >= limit - _EPS
    sign = ">=" if ok else "<"
    return GateCheck(name, value, limit, ok, f"{label} {show(value)} {sign} minimum {show(limit)}")


def check_candidate(
    policy: GatePolicy, m: CandidateMeasurements, champion_accuracy: float | None = None
) -> tuple[GateCheck, ...]:
    """Every check ``policy`` asks for, on candidate ``m``, in :data:`CHECK_NAMES` order.

    A check exists only when its limit is set or it is in ``policy.required`` (then it passes
    iff the figure was measured). A candidate with ``error`` fails every check it has, and an
    extra ``"error"`` check, so it is never promoted even by a policy without limits.
    """
    checks: list[GateCheck] = []
    wanted = set(policy.required)
    accuracy = _measured(m.accuracy)

    if policy.min_accuracy is not None or "accuracy" in wanted:
        checks.append(
            _limit_check("accuracy", "accuracy", accuracy, policy.min_accuracy, _pct, upper=False)
        )

    if policy.max_accuracy_drop is not None or "accuracy_drop" in wanted:
        baseline = _measured(m.baseline_accuracy)
        if accuracy is None or baseline is None:
            missing = "accuracy" if accuracy is None else "baseline accuracy"
            checks.append(
                GateCheck(
                    "accuracy_drop",
                    None,
                    policy.max_accuracy_drop,
                    False,
                    f"accuracy drop not measured ({missing} missing)",
                )
            )
        elif policy.relative_drop:
            drop = (baseline - accuracy) / baseline if baseline > 0 else math.inf
            check = _limit_check(
                "accuracy_drop",
                "relative accuracy drop",
                drop,
                policy.max_accuracy_drop,
                lambda v: f"{100 * v:.2f} % of baseline",
            )
            checks.append(check)
        else:
            check = _limit_check(
                "accuracy_drop",
                f"accuracy drop ({_pct(baseline)} -> {_pct(accuracy)})",
                baseline - accuracy,
                policy.max_accuracy_drop,
                _points,
            )
            checks.append(check)

    if policy.max_size_bytes is not None or "size" in wanted:
        limit = None if policy.max_size_bytes is None else float(policy.max_size_bytes)
        checks.append(_limit_check("size", "size", _measured(m.size_bytes), limit, _bytes))

    if policy.max_latency_ms is not None or "latency" in wanted:
        key = policy.latency_key
        value = _measured(m.latency_ms.get(key))
        check = _limit_check("latency", f"latency {key}", value, policy.max_latency_ms, _ms)
        if value is None and m.latency_ms:
            others = ", ".join(sorted(m.latency_ms))
            check = GateCheck(
                check.name, None, check.limit, False, f"{check.reason} (measured: {others})"
            )
        checks.append(check)

    if policy.max_peak_memory_bytes is not None or "peak_memory" in wanted:
        limit = (
            None if policy.max_peak_memory_bytes is None else float(policy.max_peak_memory_bytes)
        )
        checks.append(
            _limit_check(
                "peak_memory", "peak memory", _measured(m.peak_memory_bytes), limit, _bytes
            )
        )

    if policy.champion_margin is not None:
        champion = _measured(champion_accuracy)
        margin = policy.champion_margin
        if champion is None:
            checks.append(GateCheck("champion", accuracy, None, True, "no champion"))
        elif accuracy is None:
            checks.append(
                GateCheck(
                    "champion",
                    None,
                    champion - margin,
                    False,
                    f"accuracy not measured: cannot compare with the champion ({_pct(champion)})",
                )
            )
        else:
            ok = accuracy >= champion - margin - _EPS
            text = (
                f"accuracy {_pct(accuracy)} {'>=' if ok else '<'} champion {_pct(champion)}"
                f" - margin {_points(margin)}"
            )
            checks.append(
                GateCheck(
                    "champion",
                    accuracy,
                    champion - margin,
                    ok,
                    text if ok else f"worse than champion: {text}",
                )
            )

    if m.error is not None:
        failed = f"candidate failed: {m.error}"
        checks = [
            GateCheck(c.name, c.value, c.limit, False, f"{c.reason}; {failed}") if c.passed else c
            for c in checks
        ]
        checks.append(GateCheck("error", None, None, False, failed))
    return tuple(checks)


def _rank(policy: GatePolicy, m: CandidateMeasurements) -> tuple[float, float, str]:
    size = _measured(m.size_bytes)
    latency = _measured(m.latency_ms.get(policy.latency_key))
    return (math.inf if size is None else size, math.inf if latency is None else latency, m.name)


def decide(
    policy: GatePolicy,
    candidates: Sequence[CandidateMeasurements],
    *,
    champion_accuracy: float | None = None,
    stage: str | None = None,
) -> GateDecision:
    """Check every candidate and pick the one to promote to ``stage``.

    Selection among the candidates that pass every check: the smallest ``size_bytes``, then the
    lowest latency at the policy's ``latency_percentile@latency_threads``, then the name
    (alphabetical); a missing figure sorts last. When none passes, the decision fails and its
    ``checks`` are those of the candidate with the fewest failed checks (ties broken the same
    way); ``reasons`` list every failed check of every candidate, prefixed by its name.
    """
    if stage not in STAGES:
        raise InvalidOptionError(
            f"stage {stage!r} is not a promotion stage: use 'staging', 'production' or None "
            f"(decide without promoting)."
        )
    names = [c.name for c in candidates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidOptionError(
            f"Candidate names must be unique, {', '.join(map(repr, duplicates))} repeat(s): "
            f"name each candidate after its mode or recipe."
        )
    champion = _measured(champion_accuracy)
    if not candidates:
        return GateDecision(
            passed=False,
            selected=None,
            stage=None,
            checks=(),
            reasons=("no candidates to check: the pipeline produced no compressed model",),
            per_candidate={},
            champion_accuracy=champion,
        )

    per_candidate = {c.name: check_candidate(policy, c, champion) for c in candidates}
    passing = [c for c in candidates if all(ch.passed for ch in per_candidate[c.name])]
    if passing:
        best = min(passing, key=lambda c: _rank(policy, c))
        reasons = [f"{best.name} meets every target"]
        if not per_candidate[best.name]:
            reasons.append("the policy sets no limit: nothing was checked")
        if len(passing) > 1:
            reasons.append(
                f"chosen among {len(passing)} passing candidates "
                f"({', '.join(c.name for c in passing)}): smallest size, then lowest latency "
                f"{policy.latency_key}, then name"
            )
        return GateDecision(
            passed=True,
            selected=best.name,
            stage=stage,
            checks=per_candidate[best.name],
            reasons=tuple(reasons),
            per_candidate=per_candidate,
            checked=best.name,
            champion_accuracy=champion,
        )

    def failures(c: CandidateMeasurements) -> int:
        return sum(not ch.passed for ch in per_candidate[c.name])

    best = min(candidates, key=lambda c: (failures(c), *_rank(policy, c)))
    failed_reasons = tuple(
        f"{c.name}: {ch.reason}"
        for c in candidates
        for ch in per_candidate[c.name]
        if not ch.passed
    )
    return GateDecision(
        passed=False,
        selected=None,
        stage=None,
        checks=per_candidate[best.name],
        reasons=failed_reasons,
        per_candidate=per_candidate,
        checked=best.name,
        champion_accuracy=champion,
    )


def decision_table(decision: GateDecision) -> pd.DataFrame:
    """One row per candidate and check: ``candidate, selected, check, value, limit, passed, reason``."""
    rows = [
        {
            "candidate": name,
            "selected": name == decision.selected,
            "check": check.name,
            "value": check.value,
            "limit": check.limit,
            "passed": check.passed,
            "reason": check.reason,
        }
        for name, checks in decision.per_candidate.items()
        for check in checks
    ]
    columns = ["candidate", "selected", "check", "value", "limit", "passed", "reason"]
    return pd.DataFrame(rows, columns=columns)


def decision_html(decision: GateDecision) -> str:
    """The decision as a dashboard page: the verdict in the caption, the reasons as notes."""
    if decision.passed:
        where = f" for {decision.stage}" if decision.stage else " (no promotion asked)"
        title = f"Deployment gate PASSED: {decision.selected} selected{where}"
    else:
        title = "Deployment gate FAILED: nothing promoted"
    notes = list(decision.reasons)
    if decision.champion_accuracy is not None:
        notes.append(f"champion (current production) accuracy: {_pct(decision.champion_accuracy)}")
    frame = decision_table(decision).assign(
        passed=lambda f: f["passed"].map(lambda p: "yes" if p else "NO"),
        value=lambda f: f["value"].map(lambda v: None if v is None or pd.isna(v) else f"{v:,.6g}"),
        limit=lambda f: f["limit"].map(
            lambda v: None if v is None else (v if isinstance(v, str) else f"{v:,.6g}")
        ),
    )
    return render_html(frame, title=title, notes=notes)
