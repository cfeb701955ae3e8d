"""One precision per layer, chosen to minimise bytes (or latency, energy, peak memory) under a
quality budget, then verified on the whole model and repaired until the budget holds.

The choice is a multiple-choice knapsack, solved exactly as an integer program (HAWQ-V3's
formulation, with scipy's HiGHS ``milp``): one binary variable per (layer, precision) row of a
:class:`~zenml_quant.precision_profile.PrecisionProfile`, exactly one per layer, the sum of the
rows' quality changes within what the budget allows beyond the measured all-int8 model (a
layer's change from int8 to another precision as measured alone in the float model), the sum
of their costs (each layer alone moved in the all-int8 model) minimised. Changes are
measured one layer at a time, so the sum is a prediction: the chosen model is then built and
scored on the whole split. When it misses the budget, the layer whose current precision costs
the most quality moves one step up the fidelity ladder (int4 -> int8 -> float among the allowed
precisions) and the model is scored again, until the budget holds or nothing can move; then the
best model tried is returned with status ``"budget not met"`` and the reason.

Per-layer changes are noisy on a validation split, so a measured gain counts as no change. The uniform models (every layer at one
precision below int8) are scored too: the allocator never returns a plan worse than the best
uniform choice that meets the budget.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from .convert import convert_model
from .errors import InvalidOptionError
from .evaluate import keras_outputs
from .interpreter import measure_latency, run_tflite
from .mixed_precision import PrecisionQuantizer
from .paired import paired_gain
from .precision_profile import PrecisionProfile, profile_precisions
from .precisions import OBJECTIVES, PRECISIONS, parse_precisions
from .targets import Targets
from .tasks import dataset_metric
from .types import ConversionOptions, LabeledDataset, TFLiteModel

__all__ = [
    "OBJECTIVES",
    "Allocation",
    "AllocationAttempt",
    "allocate_precisions",
    "choose_plan",
    "profile_for_objective",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AllocationAttempt:
    """One whole model scored: how it was made, its plan (layer -> precision) and figures."""

    origin: str  # "optimiser", "repair", "uniform <precision>"
    plan: tuple[tuple[str, str], ...]
    quality: float
    change: float  # worse than the float Keras model by this much, in the metric's units
    size_bytes: int
    met: bool


@dataclass(frozen=True, eq=False)
class Allocation:
    """The chosen model, how it was chosen and every model scored on the way."""

    model: TFLiteModel
    status: str  # "budget met" or "budget not met"
    reason: str
    objective: str
    split: str
    reference_quality: float
    quality: float
    attempts: tuple[AllocationAttempt, ...]
    profile: PrecisionProfile

    @property
    def plan(self) -> dict[str, str]:
        return dict(self.model.precisions)


def choose_plan(
    profile: PrecisionProfile,
    *,
    slack: float,
    objective: str = "bytes",
    precisions: Sequence[str] | None = None,
) -> dict[str, str] | None:
    """The plan minimising ``objective`` within ``slack``, or None when no plan fits.

    ``slack`` is the quality the plan may lose against the all-int8 model (the metric's units,
    worse = positive; negative when all-int8 misses the floor and layers must win quality
    back). A layer's step from int8 to another precision counts as the difference of the two
    changes measured alone in the float model: anchoring the prediction at the measured all-int8
    model keeps every unmoved layer's measurement noise out of it. Ties in the objective go to
    the smaller file.
    """
    if objective not in OBJECTIVES:
        raise InvalidOptionError(
            f"Unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}."
        )
    from scipy.optimize import Bounds, LinearConstraint, milp

    rows = profile.table[profile.table["applied"]].reset_index(drop=True)
    if precisions is not None:
        rows = rows[rows["precision"].isin([*precisions, "int8"])].reset_index(drop=True)
    column = OBJECTIVES[objective]
    cost = rows[column or "bytes_delta"].to_numpy(dtype=float)
    if not np.isfinite(cost).all():  # latency not measured, or energy not countable
        raise InvalidOptionError(
            f"The profile has no {objective} figure for every move: profile with latency_runs > 0 "
            "for the latency objective, or use objective='bytes'."
        )
    int8_change = {
        row.layer: float(row.change)
        for row in rows.itertuples(index=False)
        if row.precision == "int8"
    }
    missing = sorted(set(rows["layer"]) - set(int8_change))
    if missing:
        raise InvalidOptionError(
            f"The profile has no int8 row for {', '.join(missing)}: profile with int8 allowed."
        )
    step = rows["change"].to_numpy(dtype=float) - rows["layer"].map(int8_change).to_numpy()
    fidelity = rows["precision"].map(lambda p: PRECISIONS[p].fidelity).to_numpy()
    # Going below int8 cannot really help, nor going above it hurt: such a measured difference
    # is noise, and crediting it would let noise pay for another layer's loss.
    int8_level = PRECISIONS["int8"].fidelity
    change = np.where(fidelity < int8_level, np.maximum(step, 0.0), np.minimum(step, 0.0))
    size = rows["bytes_delta"].to_numpy(dtype=float)
    if objective != "bytes":  # a tie-break by bytes, too small to outweigh the objective
        scale = np.abs(cost).max() or 1.0
        cost = cost + 1e-6 * scale * size / (np.abs(size).max() or 1.0)
    layers = list(dict.fromkeys(rows["layer"]))
    one_each = np.zeros((len(layers), len(rows)))
    for i, layer in enumerate(layers):
        one_each[i, (rows["layer"] == layer).to_numpy()] = 1.0
    # One more variable, the peak, for the peak-memory objective (unused otherwise).
    peak_cost, peak_rows, peak_bound = 0.0, np.zeros((0, len(rows))), np.zeros(0)
    if column is None:
        peak_rows, base = _activation_bytes(rows, profile)
        scale = float((peak_rows.sum(axis=1) + base).max()) or 1.0
        peak_rows, peak_bound, peak_cost = peak_rows / scale, -base / scale, 1.0
        cost = 1e-4 * size / (np.abs(size).max() or 1.0)
    result = milp(
        np.append(cost, peak_cost),
        constraints=[
            LinearConstraint(np.pad(one_each, ((0, 0), (0, 1))), 1, 1),
            LinearConstraint(np.append(change, 0.0)[None, :], -np.inf, slack),
            # Each point of the inference: its activation bytes minus the peak stay <= 0.
            LinearConstraint(
                np.hstack([peak_rows, -np.ones((len(peak_rows), 1))]), -np.inf, peak_bound
            ),
        ],
        integrality=np.append(np.ones(len(rows)), 0),
        bounds=Bounds(0, np.append(np.ones(len(rows)), np.inf)),
    )
    if result.status != 0 or result.x is None:
        return None
    picked = rows[np.round(result.x[: len(rows)]) == 1]
    return dict(zip(picked["layer"], picked["precision"]))


def _activation_bytes(
    rows: pd.DataFrame, profile: PrecisionProfile
) -> tuple[np.ndarray, np.ndarray]:
    """At each point of the inference, the activation bytes each row would hold (its layer's
    live elements times the row's activation width), and the bytes no row changes (int8)."""
    if not profile.live_elements:
        raise InvalidOptionError(
            "The profile does not say which activations are live when: profile the model with "
            "this version (profile_precisions), or use objective='bytes'."
        )
    width = rows["precision"].map(lambda p: PRECISIONS[p].activation_bits / 8).to_numpy(float)
    layers = rows["layer"].to_numpy()
    known = set(layers)
    per_row = np.zeros((len(profile.live_elements), len(rows)))
    base = np.zeros(len(profile.live_elements))
    for s, step in enumerate(profile.live_elements):
        for layer, elements in step:
            if layer in known:
                per_row[s] += np.where(layers == layer, elements * width, 0.0)
            else:
                base[s] += elements
    return per_row, base


def profile_for_objective(
    model: Any,
    dataset: LabeledDataset,
    quantizer: PrecisionQuantizer,
    precisions: str | Sequence[str] | None,
    *,
    objective: str,
    mode: str = "fast",
    split: str = "validation",
) -> PrecisionProfile:
    """The precision profile an allocation for ``objective`` needs (latency timed only for the
    latency objective)."""
    return profile_precisions(
        model,
        dataset,
        precisions=precisions,
        mode=mode,
        split=split,
        quantizer=quantizer,
        latency_runs=50 if objective == "latency" else 0,
    )


def allocate_precisions(
    model: Any,
    dataset: LabeledDataset,
    *,
    budget: Targets,
    precisions: str | Sequence[str] | None = None,
    objective: str = "bytes",
    split: str = "validation",
    profile: PrecisionProfile | None = None,
    profile_mode: str = "fast",
    quantizer: PrecisionQuantizer | None = None,
    options: ConversionOptions | None = None,
    weight_algorithm: str = "gptq",
    max_repairs: int | None = None,
) -> Allocation:
    """The model with one precision per layer that minimises ``objective`` within ``budget``.

    Args:
        budget: the quality drop allowed against the float Keras model on ``split``.
        precisions: the precisions a layer may take (default ``int4,int8,float``).
        objective: ``"bytes"``, ``"latency"`` (measured), ``"energy"`` (estimated) or
            ``"peak_memory"`` (the activation arena: predicted from which activations are live
            together, then measured on each file).
        profile: a :func:`profile_precisions` result to reuse (else one is measured).
        quantizer: a calibrated :class:`PrecisionQuantizer` to reuse (else one is made from
            ``options`` and ``weight_algorithm``).
        max_repairs: at most this many one-step moves after the optimiser's plan (default:
            as many as there are steps to take).
    """
    allowed = parse_precisions(precisions)
    if objective not in OBJECTIVES:
        raise InvalidOptionError(
            f"Unknown objective {objective!r}: use one of {', '.join(OBJECTIVES)}."
        )
    x, y = dataset.split(split)
    if len(y) == 0:
        raise InvalidOptionError(f"The {split!r} split is empty: allocation needs examples.")
    quantizer = quantizer or PrecisionQuantizer(
        model, dataset.x_train, options=options, weight_algorithm=weight_algorithm
    )
    profile = profile or profile_for_objective(
        model, dataset, quantizer, allowed, objective=objective, mode=profile_mode, split=split
    )
    metric = dataset_metric(dataset)
    if budget.metric != metric:
        budget = budget.with_metric(metric)
    reference = metric.score(keras_outputs(model, x), y, x)
    floor = budget.quality_floor(reference)
    built: dict[tuple[tuple[str, str], ...], TFLiteModel] = {}
    tried = _Tried(metric, budget, reference, x, y)

    def score(plan: Mapping[str, str], origin: str) -> AllocationAttempt:
        key = tuple(sorted(plan.items()))
        if key not in built:
            built[key] = quantizer.quantize(plan)
        return tried.add(built[key], origin)

    # The converter's plain int8 is what doing nothing more would give: every plan must beat it.
    plain = convert_model(
        model, "int8", representative_data=dataset.x_train, options=quantizer.options
    )
    if plain.ok:
        tried.add(plain, PLAIN_INT8)
    all_int8 = score({}, "all int8")
    # What the plan may lose against all-int8 and stay above the floor (negative: must win).
    slack = metric.worse_by(all_int8.quality, floor)
    plan = choose_plan(profile, slack=slack, objective=objective, precisions=allowed)
    if plan is None:  # nothing fits the prediction: start from the most faithful plan
        plan = {
            layer: _most_faithful(profile, layer, allowed) for layer in quantizer.quantizable_layers
        }
        origin = "most faithful (optimiser found no plan within the budget)"
    else:
        origin = "optimiser"
    current = score(plan, origin)
    steps = max_repairs if max_repairs is not None else _steps_available(profile, plan, allowed)
    for _ in range(steps):
        if current.met:
            break
        moves = _repair_moves(profile, plan, allowed)
        if not moves:
            break
        gain, layer, moved = moves[0]
        if gain > 0 or len(moves) == 1:
            plan, current = moved, score(moved, "repair")
            continue
        # The profile blames no layer (each move measured alone cost nothing): the loss comes
        # from layers together, so measure the tied one-step moves on the whole model instead.
        tied = [m for m in moves if m[0] >= gain][:MAX_REPAIR_PROBES]
        probes = [(score(p, f"repair (measured: {name} up)"), p) for _, name, p in tied]
        current, plan = min(probes, key=lambda ap: (ap[0].change, ap[0].size_bytes))
    for precision in allowed:
        if PRECISIONS[precision].fidelity < PRECISIONS["int8"].fidelity:
            uniform = {
                layer: precision
                for layer in quantizer.quantizable_layers
                if precision in quantizer.allowed(layer, (precision,))
            }
            score(uniform, f"uniform {precision}")
    chosen, status, reason = _decide(tried, profile, objective, split)
    model_out = tried.files[chosen]
    if status == "budget not met":
        model_out = replace(
            model_out, notes=(*model_out.notes, f"precision budget not met: {reason}")
        )
    return Allocation(
        model=model_out,
        status=status,
        reason=reason,
        objective=objective,
        split=split,
        reference_quality=reference,
        quality=tried.attempts[chosen].quality,
        attempts=tuple(tried.attempts),
        profile=profile,
    )


#: At most this many one-step moves are measured when the profile cannot tell them apart.
MAX_REPAIR_PROBES = 8

#: The origin of the converter's plain int8 file among the attempts.
PLAIN_INT8 = "plain int8 (TFLite converter)"


class _Tried:
    """Every whole model scored: its attempt record, file and outputs on the split."""

    def __init__(self, metric: Any, budget: Targets, reference: float, x: Any, y: Any) -> None:
        self.metric, self.budget, self.reference, self.x, self.y = metric, budget, reference, x, y
        self.attempts: list[AllocationAttempt] = []
        self.files: list[TFLiteModel] = []
        self.outputs: list[np.ndarray] = []

    def add(self, tflite: TFLiteModel, origin: str) -> AllocationAttempt:
        outputs = run_tflite(tflite, self.x)
        quality = self.metric.score(outputs, self.y, self.x)
        attempt = AllocationAttempt(
            origin=origin,
            plan=tflite.precisions,
            quality=quality,
            change=self.metric.worse_by(self.reference, quality),
            size_bytes=tflite.size_bytes,
            met=self.budget.quality_met(self.reference, quality),
        )
        self.attempts.append(attempt)
        self.files.append(tflite)
        self.outputs.append(outputs)
        logger.info(
            "allocation %s: %s, %s B, %s",
            origin,
            self.metric.format(quality),
            f"{tflite.size_bytes:,}",
            "met" if attempt.met else "not met",
        )
        return attempt

    def index_of(self, origin: str) -> int | None:
        return next((i for i, a in enumerate(self.attempts) if a.origin == origin), None)


def _decide(
    tried: _Tried, profile: PrecisionProfile, objective: str, split: str
) -> tuple[int, str, str]:
    """The attempt to return, its status and the reason.

    Among the models that meet the budget: the smallest file (bytes), the lowest predicted
    energy, the smallest measured peak activation memory, or the lowest predicted latency
    checked by measuring it against plain int8. A
    model larger than plain int8 must beat it in a one-sided paired test on the split, as the
    int8-with-float-layers candidate must: a gain within noise keeps plain int8.
    """
    metric, budget, reference = tried.metric, tried.budget, tried.reference
    attempts = tried.attempts
    floor = metric.format(budget.quality_floor(reference))
    met = [i for i, a in enumerate(attempts) if a.met]
    if not met:
        best = max(
            range(len(attempts)),
            key=lambda i: (
                attempts[i].quality if metric.higher_is_better else -attempts[i].quality,
                -attempts[i].size_bytes,
            ),
        )
        return (
            best,
            "budget not met",
            (
                f"no model tried reaches {floor} on the {split} split: the best, "
                f"{attempts[best].origin}, scores {metric.format(attempts[best].quality)} after "
                f"{len(attempts)} models; allow more precisions (e.g. float) or a larger drop"
            ),
        )
    if objective == "bytes":
        chosen = min(met, key=lambda i: attempts[i].size_bytes)
    elif objective == "peak_memory":  # measured on each file, not predicted
        chosen = min(met, key=lambda i: (_peak(tried.files[i]), attempts[i].size_bytes))
    else:
        cost = _predicted_cost(profile, objective)
        chosen = min(
            met,
            key=lambda i: (sum(cost.get(p, 0.0) for p in attempts[i].plan), attempts[i].size_bytes),
        )
    status, notes = "budget met", []
    plain = tried.index_of(PLAIN_INT8)
    if plain is not None and chosen != plain:
        if attempts[chosen].size_bytes > attempts[plain].size_bytes:
            test = paired_gain(
                metric, tried.outputs[chosen], tried.outputs[plain], tried.y, tried.x
            )
            if not test.significant:
                notes.append(
                    f"{attempts[chosen].origin} ({attempts[chosen].size_bytes:,} B) would gain "
                    f"{test.describe(metric)} over plain int8, so plain int8 is kept"
                )
                if not attempts[plain].met:
                    status = "budget not met"
                chosen = plain
        if objective == "latency" and chosen != plain and attempts[plain].met:
            mine, theirs = _side_by_side(tried.files[chosen], tried.files[plain], tried.x)
            if mine >= theirs:
                notes.append(
                    f"{attempts[chosen].origin} measured {1000 * mine:.0f} µs against plain "
                    f"int8's {1000 * theirs:.0f} µs, so plain int8 is kept"
                )
                chosen = plain
            else:
                notes.append(f"{1000 * mine:.0f} µs against plain int8's {1000 * theirs:.0f} µs")
    if objective == "peak_memory" and plain is not None:
        notes.append(
            f"peak activations {_peak(tried.files[chosen]):,.0f} B against plain int8's "
            f"{_peak(tried.files[plain]):,.0f} B"
        )
    attempt = attempts[chosen]
    moved = [f"{layer} {p}" for layer, p in attempt.plan if p != "int8"]
    reason = (
        f"{attempt.origin}: quality {metric.format(attempt.quality)} (drop "
        f"{metric.format_change(attempt.change)} {metric.change_unit}, floor {floor}), "
        f"{attempt.size_bytes:,} B; {len(moved)} layer(s) not int8"
        + (f": {', '.join(moved)}" if moved else "")
        + "".join(f"; {n}" for n in notes)
    )
    return chosen, status, reason


def _peak(model: TFLiteModel) -> float:
    return float(model.peak_activation_bytes) if model.peak_activation_bytes else np.inf


def _side_by_side(a: TFLiteModel, b: TFLiteModel, x: Any, rounds: int = 5) -> tuple[float, float]:
    """Median batch-1 latency (ms, one thread) of ``a`` and ``b``, measured in alternation so
    that a noisy neighbour slows both alike."""
    sample = np.asarray(x[:1])[0]
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for which, model in enumerate((a, b)):
            times[which].append(measure_latency(model, sample, warmup=10, runs=100).p50_ms)
    return float(np.median(times[0])), float(np.median(times[1]))


def _predicted_cost(profile: PrecisionProfile, objective: str) -> dict[tuple[str, str], float]:
    table = profile.table[profile.table["applied"]]
    column = OBJECTIVES[objective]
    return {
        (row.layer, row.precision): float(getattr(row, column))
        for row in table.itertuples(index=False)
    }


def _ladder(profile: PrecisionProfile, layer: str, allowed: Sequence[str]) -> list[str]:
    options = profile.options_for(layer)
    offered = set(options["precision"]) & {*allowed, "int8"}
    return sorted(offered, key=lambda p: PRECISIONS[p].fidelity)


def _most_faithful(profile: PrecisionProfile, layer: str, allowed: Sequence[str]) -> str:
    return _ladder(profile, layer, allowed)[-1]


def _steps_available(
    profile: PrecisionProfile, plan: Mapping[str, str], allowed: Sequence[str]
) -> int:
    total = 0
    for layer, precision in plan.items():
        ladder = _ladder(profile, layer, allowed)
        total += len(ladder) - 1 - ladder.index(precision) if precision in ladder else 0
    return total


def _repair_moves(
    profile: PrecisionProfile, plan: Mapping[str, str], allowed: Sequence[str]
) -> list[tuple[float, str, dict[str, str]]]:
    """Every one-step move up a layer's ladder as ``(gain, layer, plan)``, the largest gain
    (the measured change now minus the change one step up) first, then the cheapest step."""
    table = profile.table.set_index(["layer", "precision"])
    moves = []
    for layer, precision in plan.items():
        ladder = _ladder(profile, layer, allowed)
        if precision not in ladder or precision == ladder[-1]:
            continue
        up = ladder[ladder.index(precision) + 1]
        change, after = (float(table.loc[(layer, p), "change"]) for p in (precision, up))
        gain = change - after if np.isfinite(change) and np.isfinite(after) else 0.0
        cost = float(
            table.loc[(layer, up), "bytes_delta"] - table.loc[(layer, precision), "bytes_delta"]
        )
        moves.append((gain, cost, layer, {**plan, layer: up}))
    moves.sort(key=lambda m: (-m[0], m[1]))
    return [(gain, layer, moved) for gain, _, layer, moved in moves]
