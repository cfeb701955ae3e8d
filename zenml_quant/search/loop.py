"""The search loop: propose edits, evaluate candidates in batches, reward, repeat, stop.

:func:`search_architecture` is the one entry point. The proposer (controller or random search)
only sees decision vectors and rewards; the executor only runs :func:`evaluate_trial`; this
module joins them, keeps the history, and decides when to stop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidDatasetError, InvalidOptionError
from ..inputs import example_shape, for_keras
from ..keras3_rebuild import as_tf_keras
from ..models import input_shapes
from ..outputs import scored
from ..tasks import dataset_metric, dataset_task
from ..types import LabeledDataset, TFLiteModel
from .apply import plan_meta
from .edits import EditPlan
from .executors import TrialExecutor, default_executor
from .finetune import FineTuneOptions, outputs_are_logits
from .pareto import DEFAULT_OBJECTIVES, objectives, pareto_front
from .proposers import ControllerRNN, LocalSearch, Proposal, Proposer, RandomSearch
from .recalibrate import distillation_teacher
from .reward import meets_targets, missed_targets, reward
from .space import SearchSpace, SpaceOptions
from .trial import (
    EvaluationOptions,
    SearchContext,
    evaluate_trial,
    failed_outcome,
    keras_bytes,
    native_failure,
)
from .types import (
    PHASE_COLUMNS,
    PROPOSERS,
    RewardOptions,
    Targets,
    TrialOutcome,
    TrialRecord,
    TrialTask,
)

__all__ = [
    "SearchOptions",
    "SearchResult",
    "Suggestion",
    "longest_first",
    "search_architecture",
]

logger = logging.getLogger(__name__)

#: Proposals in a row that repeat evaluated candidates before the search stops: by then the
#: space is exhausted (a narrowed space can be tiny) or the policy has settled on what it has.
MAX_REPEATS_IN_A_ROW = 1000


@dataclass(frozen=True)
class SearchOptions:
    """The search's budget and behaviour.

    Stops after ``max_trials`` candidates, after ``time_budget_s`` seconds (checked before each
    batch), or once the targets are met and ``patience`` further trials brought no better
    reward. ``batch_size`` candidates are proposed and evaluated together (the executor may run
    them in parallel). ``proposer`` is ``"controller"`` (the LSTM policy), ``"random"``
    or ``"local"`` (hill climbing from the best candidate so far, NetAdapt's way);
    ``controller`` holds extra keyword options for :class:`ControllerRNN`.

    ``halving`` (successive halving's rate, as ASHA uses it; 1 turns it off): each proposed
    candidate first gets 1/``halving`` of the fine-tuning's batches; once ``halving`` of them
    are measured, the best of every ``halving`` (by reward) is fine-tuned in full as a trial of
    its own. The budget then goes mostly to the candidates that can win. Both rungs are real,
    measured models, and either may be suggested.

    Precisions come from the mixed-precision allocator when ``evaluation.precisions`` names
    any besides int8; the search's own precision edits (float32 layers) are then off, and
    ``space.precision=None`` (the default) resolves so.
    """

    max_trials: int = 30
    time_budget_s: float | None = None
    patience: int = 10
    batch_size: int = 2
    halving: int = 1
    seed: int = 0
    proposer: str = "controller"
    controller: dict[str, Any] = field(default_factory=dict)
    reward: RewardOptions = field(default_factory=RewardOptions)
    space: SpaceOptions = field(default_factory=SpaceOptions)
    evaluation: EvaluationOptions = field(default_factory=EvaluationOptions)

    def __post_init__(self) -> None:
        for name in ("max_trials", "batch_size", "halving"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"SearchOptions.{name} must be an integer >= 1.")
        if (
            isinstance(self.patience, bool)
            or not isinstance(self.patience, int)
            or self.patience < 0
        ):
            raise InvalidOptionError("SearchOptions.patience must be an integer >= 0.")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise InvalidOptionError("SearchOptions.time_budget_s must be > 0 seconds or None.")
        if self.proposer not in PROPOSERS:
            raise InvalidOptionError(
                f"Unknown proposer {self.proposer!r}: use one of {', '.join(PROPOSERS)}."
            )
        allocating = self.evaluation.allocates
        if self.space.precision is None:
            object.__setattr__(self, "space", replace(self.space, precision=not allocating))
        elif self.space.precision and allocating:
            raise InvalidOptionError(
                "The allocator chooses each layer's precision (evaluation.precisions="
                f"{self.evaluation.precisions!r}), so the search's own float32 edits "
                "(space.precision=True) would overrule it: leave space.precision at None, or "
                "set evaluation.precisions=('int8',) to choose precisions by search instead."
            )


@dataclass(frozen=True)
class Suggestion:
    """A Pareto-optimal candidate: its edits against the original and its figures."""

    trial: int
    plan: EditPlan
    edits: tuple[str, ...]
    accuracy: float | None
    size_bytes: int | None
    peak_memory_bytes: int | None
    latency_ms: float | None
    energy_uj: float | None
    reward: float | None
    meets_targets: bool


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The history, the original model's figures, the best trial, the Pareto suggestions.

    ``records[0]`` is the original model (trial 0, empty plan, not fine-tuned). ``models``
    holds ``(tflite, keras)`` bytes for the best and the Pareto trials only. The tables and
    charts come from :mod:`zenml_quant.report.search`, imported when asked for: the report
    reads the search's types, so importing it as this module loads would be circular.
    """

    records: tuple[TrialRecord, ...]
    targets: Targets
    original_accuracy: float
    best_trial: int | None
    pareto: tuple[int, ...]
    suggestions: tuple[Suggestion, ...]
    stop_reason: str
    targets_met: bool
    first_met_trial: int | None
    seconds: float
    models: dict[int, tuple[bytes, bytes | None]] = field(repr=False, default_factory=dict)
    notes: tuple[str, ...] = ()
    #: Proposals that repeated an evaluated candidate: told its reward, not evaluated again and
    #: not counted as trials.
    repeats: int = 0

    @property
    def original(self) -> TrialRecord:
        return self.records[0]

    @property
    def trials(self) -> tuple[TrialRecord, ...]:
        """The searched candidates (without the original)."""
        return self.records[1:]

    @property
    def best(self) -> TrialRecord | None:
        return self.record(self.best_trial) if self.best_trial is not None else None

    def candidate_order(self) -> tuple[int, ...]:
        """The trials a pipeline takes forward as candidates, each once: the best, then the
        other suggestions by reward (highest first), those whose models were kept."""
        others = sorted(
            (s for s in self.suggestions if s.trial != self.best_trial),
            key=lambda s: -(s.reward or 0.0),
        )
        order = [self.best_trial] if self.best_trial is not None else []
        order += [s.trial for s in others]
        return tuple(t for t in dict.fromkeys(order) if t in self.models)

    def record(self, trial: int) -> TrialRecord:
        for r in self.records:
            if r.trial == trial:
                return r
        raise KeyError(trial)

    def history(self) -> pd.DataFrame:
        from ..report.search import history_frame

        return history_frame(self.records, self.pareto)

    def suggestions_table(self) -> pd.DataFrame:
        from ..report.search import suggestions_frame

        return suggestions_frame(self.records, self.pareto)

    @property
    def _searched_front(self) -> tuple[int, ...]:
        """The Pareto trials among the searched candidates (the original is drawn apart)."""
        return tuple(t for t in self.pareto if t != 0)

    def pareto_svg(self) -> str:
        from ..report.search import pareto_svg

        return pareto_svg(
            self.trials,
            self._searched_front,
            original=self.original,
            targets=self.targets,
            original_accuracy=self.original_accuracy,
        )

    def html(self) -> str:
        from ..report.search import search_html

        return search_html(
            self.trials,
            self._searched_front,
            original=self.original,
            targets=self.targets,
            original_accuracy=self.original_accuracy,
            stop_reason=self.stop_reason,
            notes=self.notes,
        )

    def tflite(self, trial: int | None = None) -> TFLiteModel:
        """The converted model of ``trial`` (default: the best)."""
        from ..convert import inspect_tflite

        trial = self.best_trial if trial is None else trial
        if trial is None or trial not in self.models:
            raise InvalidOptionError(
                f"No model kept for trial {trial}; models are kept for the best and Pareto trials "
                f"({sorted(self.models)})."
            )
        mode = "int8" if self.record(trial).plan.float_layers() == () else "mixed"
        tfl = inspect_tflite(self.models[trial][0], mode=mode, source_model=f"trial_{trial}")
        return replace(tfl, float_layers=self.record(trial).plan.float_layers())

    def keras_model(self, trial: int | None = None) -> Any:
        """The fine-tuned Keras model of ``trial`` (default: the best)."""
        from .trial import load_keras_bytes

        trial = self.best_trial if trial is None else trial
        if trial is None or trial not in self.models or self.models[trial][1] is None:
            raise InvalidOptionError(f"No Keras model kept for trial {trial}.")
        return load_keras_bytes(self.models[trial][1])  # type: ignore[arg-type]


Progress = Callable[[TrialRecord, "SearchState"], None]


@dataclass
class SearchState:
    """Where the search is, for progress displays."""

    done: int
    max_trials: int
    best: TrialRecord | None
    elapsed_s: float


def make_proposer(
    space: SearchSpace, options: SearchOptions, targets: Targets | None = None
) -> Proposer:
    """The proposer ``options.proposer`` names, seeded with ``options.seed``. The local search
    is given a cost to shrink while a resource target is missed: the weights' bytes at their
    precisions for a size target, else the multiply-accumulates; and the space's measure of
    how much of the model a candidate replaces, so its shrinking moves try pruning first."""
    if options.proposer == "random":
        return RandomSearch(space, seed=options.seed)
    if options.proposer == "local":
        limits = targets.resource_limits() if targets is not None else {}
        measure = space.weight_bytes if "size_bytes" in limits else space.macs
        return LocalSearch(
            space,
            seed=options.seed,
            cost=(lambda d: measure(space.plan(d))) if limits else None,
            disruption=lambda d: space.disruption(space.plan(d)),
        )
    return ControllerRNN(space, seed=options.seed, **options.controller)


def search_architecture(
    model: Any,
    dataset: LabeledDataset,
    *,
    targets: Targets,
    options: SearchOptions | None = None,
    proposer: Proposer | None = None,
    executor: TrialExecutor | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Search edits of ``model`` that meet ``targets`` on ``dataset``; return the best so far.

    The original model is measured first (trial 0: converted the same way, not fine-tuned);
    then ``options.batch_size`` candidates at a time are proposed, evaluated by ``executor``
    (default: :func:`~.executors.default_executor`, which runs the trials of a model of
    :data:`~.executors.PROCESS_MIN_PARAMS` parameters or more in a worker process, so that a
    native crash fails that trial only, and smaller models' trials in this process), rewarded
    and told back to the proposer. ``progress`` is called after every trial. Quality is the
    dataset's metric; targets in another metric are read in the dataset's.
    """
    options = options or SearchOptions()
    # Candidates are edited and fine-tuned as tf_keras models: a Keras 3 model is searched
    # through its tf_keras rebuild (same config and weights, outputs checked equal).
    model, rebuilt = as_tf_keras(model, probe=dataset.x_train[:8])
    _check_data(model, dataset)
    if targets.metric != dataset_metric(dataset):
        targets = targets.with_metric(dataset_metric(dataset))
    space = SearchSpace(model, options.space)
    if not space.positions:
        raise InvalidOptionError(
            f"Model {model.name!r} has no editable layer under these SpaceOptions; the search "
            "edits Conv2D, SeparableConv2D, DepthwiseConv2D, Dense, pooling, activation and "
            "Flatten layers."
        )
    proposer = proposer or make_proposer(space, options, targets)
    teacher, teacher_note = None, None
    evaluation = options.evaluation
    fine_tuning = evaluation.fine_tune.resolved(model, dataset_task(dataset))
    evaluation = replace(evaluation, fine_tune=fine_tuning)
    options = replace(options, evaluation=evaluation)
    if evaluation.fine_tune.distill and evaluation.reestimate_batchnorm:
        teacher, teacher_note = distillation_teacher(
            model, dataset, max_examples=evaluation.batchnorm_examples
        )
    context = _context(model, dataset, options, teacher)
    own_executor = executor is None
    executor = executor or default_executor(model, batch_size=options.batch_size)
    executor.start(
        evaluate_trial,
        context,
        on_error=lambda task, msg: failed_outcome(task, msg),
        native_failure=native_failure,
    )
    start = time.perf_counter()
    try:
        # Its plan says "not fine-tuned", so that its YAML rebuilds trial 0 itself when the
        # original is the suggestion (a plan without a recorded fine-tune gets the default).
        reference = EditPlan(model=model.name, meta={"trial": 0, "fine_tune": {"epochs": 0}})
        original = executor.map([TrialTask(0, reference, options.seed, False)])[0]
        result = _run(
            space, proposer, executor, original, dataset, targets, options, progress, start
        )
        if teacher_note:
            result = replace(result, notes=(*result.notes, teacher_note))
        if rebuilt:
            note = (
                f"model {model.name!r} is a Keras 3 model: the search edited and fine-tuned its "
                "tf_keras rebuild (same config and weights, outputs checked equal)."
            )
            result = replace(result, notes=(*result.notes, note))
        return result
    finally:
        if own_executor:
            executor.close()


def longest_first(tasks: list[TrialTask], space: SearchSpace) -> list[TrialTask]:
    """``tasks`` by estimated evaluation time, longest first.

    A pool of workers then starts the slow candidates first and fills in with quick ones, instead
    of leaving one worker to finish a slow candidate alone at the end of the batch.
    """
    return sorted(tasks, key=lambda task: space.evaluation_cost(task.plan), reverse=True)


def _check_data(model: Any, dataset: LabeledDataset) -> None:
    shapes = input_shapes(model)
    expected: tuple[Any, ...] = (
        tuple(shapes.items()) if len(shapes) > 1 else next(iter(shapes.values()))
    )
    got = example_shape(dataset.x_train)
    if got != expected or example_shape(dataset.x_val) != got:
        raise InvalidDatasetError(
            f"The dataset's examples have shape {got} but model {model.name!r} takes "
            f"{expected}: pass the dataset through fit_to_model first."
        )
    if len(dataset.x_val) == 0:
        raise InvalidDatasetError(
            "The search measures candidates on the validation split, which is empty: load the "
            "data with a validation fraction (e.g. validation_split=0.1)."
        )


def _context(
    model: Any, dataset: LabeledDataset, options: SearchOptions, teacher_model: Any = None
) -> SearchContext:
    evaluation = options.evaluation
    fine_tuning = evaluation.fine_tune.resolved(model, dataset_task(dataset))
    options = replace(options, evaluation=replace(evaluation, fine_tune=fine_tuning))
    teacher = None
    if options.evaluation.fine_tune.distill:
        source = model if teacher_model is None else teacher_model
        outputs = scored(source.predict(for_keras(dataset.x_train), batch_size=256, verbose=0))
        teacher = np.asarray(
            outputs if outputs_are_logits(model) else np.log(outputs + 1e-7), dtype=np.float32
        )
    return SearchContext(
        model_bytes=keras_bytes(model),
        x_train=dataset.x_train,
        y_train=dataset.y_train,
        x_val=dataset.x_val,
        y_val=dataset.y_val,
        options=options.evaluation,
        space_options=options.space,
        teacher_logits=teacher,
        task=dataset_task(dataset),
        metric=dataset_metric(dataset).to_dict(),
    )


class _Books:
    """The running history: records, kept models, best, and the stop rule's counters."""

    def __init__(self, original: TrialOutcome, targets: Targets, options: SearchOptions) -> None:
        if not original.record.ok:
            raise InvalidOptionError(
                f"The original model could not be measured: {original.record.error}"
            )
        self.targets, self.options = targets, options
        self.original_accuracy = float(original.record.keras_accuracy or 0.0)
        self.records: list[TrialRecord] = [self._scored(original.record)]
        # The original, converted as every candidate is (its best post-training quantization),
        # is the reference: kept, so that it can be the suggestion when nothing beats it.
        self.models: dict[int, tuple[bytes, bytes | None]] = {}
        if original.tflite is not None:
            self.models[0] = (original.tflite, original.keras)
        self.best: TrialRecord | None = None
        self.first_met: int | None = None
        self.since_improvement = 0
        #: Every evaluated plan (failed ones too: a plan that did not build will not build the
        #: next time either) by its key, and how many proposals repeated one.
        self.seen: dict[Any, TrialRecord] = {}
        self.repeats = 0
        #: Trials of the first successive-halving rung already fine-tuned in full.
        self.promoted: set[int] = set()

    def _scored(self, record: TrialRecord) -> TrialRecord:
        if not record.ok:
            return record
        figures = record.figures()
        value = reward(figures, self.targets, self.original_accuracy, self.options.reward)
        met = meets_targets(figures, self.targets, self.original_accuracy)
        return replace(record, reward=float(value), meets_targets=bool(met))

    def add(self, outcome: TrialOutcome) -> TrialRecord:
        record = self._scored(outcome.record)
        self.records.append(record)
        self.seen.setdefault(record.plan.key(), record)
        better = record.ok and self._beats(record)
        if better:
            self.best = record
            self.since_improvement = 0
        elif self.first_met is not None:
            self.since_improvement += 1
        if record.meets_targets and self.first_met is None:
            self.first_met = record.trial
            self.since_improvement = 0
        if record.ok and outcome.tflite is not None:
            self.models[record.trial] = (outcome.tflite, outcome.keras)
            self._prune()
        return record

    def promotable(self, rate: int) -> list[TrialRecord]:
        """First-rung trials due a full fine-tune: among the measured ones, the best
        ``len // rate`` by reward that have not had it yet, best first (ASHA's rule)."""
        if rate == 1:
            return []
        rung = [r for r in self.records[1:] if r.ok and r.plan.meta.get("rung") == 0]
        rung.sort(key=lambda r: (-(r.reward or 0.0), r.trial))
        return [r for r in rung[: len(rung) // rate] if r.trial not in self.promoted]

    def climb_base(self) -> TrialRecord:
        """Where a local search climbs from: the best record as :meth:`_beats` ranks them
        (targets met, then at or above the accuracy floor, then reward), the original
        (trial 0) among them. A shrinking step that fell below the floor is never built on
        while the original, or another candidate, still stands above it: every step after it
        would only lose more."""
        original = self.records[0]
        best = self.best  # the top of the same ranking over the candidates
        return best if best is not None and self._ranks_above(best, original) else original

    def _beats(self, record: TrialRecord) -> bool:
        return self.best is None or self._ranks_above(record, self.best)

    def _ranks_above(self, record: TrialRecord, other: TrialRecord) -> bool:
        if record.meets_targets != other.meets_targets:
            return record.meets_targets
        if self._usable(record) != self._usable(other):
            return self._usable(record)
        return (record.reward or 0.0) > (other.reward or 0.0)

    def _usable(self, record: TrialRecord) -> bool:
        """At or above the accuracy floor: the only records returned or suggested."""
        return (
            record.ok
            and record.accuracy is not None
            and self.targets.quality_met(self.original_accuracy, record.accuracy)
        )

    def _prune(self) -> None:
        """Keep models only for the best and the current Pareto trials (memory stays bounded)."""
        keep = set(
            pareto_front(
                [r for r in self.records[1:] if self._usable(r)], objectives(self.targets.metric)
            )
        )
        if self.best is not None:
            keep.add(self.best.trial)
        keep.add(0)
        for trial in list(self.models):
            if trial not in keep:
                del self.models[trial]


def _run(
    space: SearchSpace,
    proposer: Proposer,
    executor: TrialExecutor,
    original: TrialOutcome,
    dataset: LabeledDataset,
    targets: Targets,
    options: SearchOptions,
    progress: Progress | None,
    start: float,
) -> SearchResult:
    books = _Books(original, targets, options)
    logger.info(
        "search: original model %s, %d positions, up to %d trials",
        _figures(books.records[0]),
        len(space.positions),
        options.max_trials,
    )
    stop_reason = f"trial budget of {options.max_trials} used"
    anchor = getattr(proposer, "anchor", None)
    if anchor is not None:  # a local search climbs from the original's reward
        anchor(books.records[0].reward)
    pressure = getattr(proposer, "pressure", None)
    rebase = getattr(proposer, "rebase", None)
    costs: dict[int, float] = {}  # the local search's cost of each measured trial
    trial = 0
    while trial < options.max_trials:
        elapsed = time.perf_counter() - start
        if options.time_budget_s is not None and elapsed >= options.time_budget_s:
            stop_reason = f"time budget of {options.time_budget_s:g} s used"
            break
        n = min(options.batch_size, options.max_trials - trial)
        base = books.climb_base()
        if rebase is not None:  # climb from the loop's best, the original included
            rebase(space.decisions(base.plan), base.reward)
        if pressure is not None:  # shrink while that base misses a resource target
            missed, cost = _misses_a_resource(base, targets), getattr(proposer, "cost", None)
            if missed and cost is not None:
                for r in books.records:
                    if r.ok and r.trial not in costs:
                        costs[r.trial] = cost(space.decisions(r.plan))
                measured = [(costs[r.trial], r) for r in books.records if r.ok]
                pressure(True, _shrink_goal(base, targets, measured))
            else:
                pressure(missed)
        promotions = books.promotable(options.halving)[:n]
        proposals, waiting = _fresh_proposals(space, proposer, books, n - len(promotions))
        if not proposals and not promotions:
            stop_reason = (
                f"the last {MAX_REPEATS_IN_A_ROW} proposals all repeated evaluated candidates "
                "(the space is exhausted or the proposer has converged)"
            )
            break
        tasks = []
        for record in promotions:
            trial += 1
            books.promoted.add(record.trial)
            seed = int(record.plan.meta.get("seed", options.seed))
            meta = {**_meta(trial, seed, options, None), "promoted_from": record.trial}
            tasks.append(TrialTask(trial, replace(record.plan, meta=meta), seed))
        for _, plan in proposals:
            trial += 1
            seed = options.seed * 100_003 + trial
            tuning = short_fine_tune(options, len(dataset.x_train))
            meta = _meta(trial, seed, options, tuning)
            tasks.append(TrialTask(trial, replace(plan, meta=meta), seed, True, tuning))
        outcomes = {o.record.trial: o for o in executor.map(longest_first(tasks, space))}
        told = [None] * len(promotions) + [p for p, _ in proposals]
        for p, task in zip(told, tasks):
            record = books.add(outcomes[task.trial])
            if p is not None:
                proposer.tell(p.id, _told(record))
            state = SearchState(
                record.trial, options.max_trials, books.best, time.perf_counter() - start
            )
            logger.info(
                "trial %d/%d: %s %s | best so far: %s",
                record.trial,
                options.max_trials,
                record.status,
                _figures(record) if record.ok else record.error,
                _figures(books.best) if books.best else "none",
            )
            if progress is not None:
                progress(record, state)
        for p, key in waiting:
            proposer.tell(p.id, _told(books.seen[key]))
        if books.first_met is not None and books.since_improvement >= options.patience:
            stop_reason = (
                f"targets met at trial {books.first_met}; no better candidate in the "
                f"{books.since_improvement} trials since"
            )
            break
    return _result(books, stop_reason, time.perf_counter() - start)


def _misses_a_resource(record: TrialRecord, targets: Targets) -> bool:
    figures = record.figures()
    return any(
        figures.get(name) is None or float(figures[name]) > limit
        for name, limit in targets.resource_limits().items()
    )


def _shrink_goal(
    base: TrialRecord, targets: Targets, measured: list[tuple[float, TrialRecord]]
) -> float | None:
    """The cost (the local search's estimate) at which ``base`` would meet the resource
    targets it misses, from ``measured`` (cost, record) pairs, ``base`` among them.

    Each missed figure is fitted as ``a + b * cost`` over the measured records (least squares;
    a file is a fixed part plus about a byte per int8 weight), and the goal is where the line
    meets the limit: the goal follows what the candidates measured. Before two distinct costs
    are measured, or when the fit does not rise with cost, ``base``'s cost is scaled by
    limit/figure. The tightest missed target decides. None when ``base`` misses nothing or a
    figure of it is unknown."""
    figures = base.figures()
    cost = next(c for c, r in measured if r.trial == base.trial)
    goals = []
    for name, limit in targets.resource_limits().items():
        value = figures.get(name)
        if value is None or not math.isfinite(float(value)):
            return None
        if float(value) <= limit:
            continue
        values = [(c, r.figures().get(name)) for c, r in measured]
        points = np.array(
            [(c, float(v)) for c, v in values if v is not None and math.isfinite(float(v))]
        )
        slope = None
        if len(points) >= 2 and np.ptp(points[:, 0]) > 0:
            slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
        if slope is not None and slope > 0:
            goals.append((limit - intercept) / slope)
        else:
            goals.append(cost * limit / float(value))
    return float(min(goals)) if goals else None


def short_fine_tune(options: SearchOptions, train_examples: int) -> FineTuneOptions | None:
    """The first rung's fine-tuning under successive halving: 1/``halving`` of the full one's
    batches in every epoch (None when halving is off or there is no fine-tuning)."""
    tuning = options.evaluation.fine_tune
    if options.halving == 1 or tuning.epochs == 0:
        return None
    per_epoch = tuning.steps_per_epoch or -(-train_examples // tuning.batch_size)
    return replace(tuning, steps_per_epoch=max(1, -(-per_epoch // options.halving)))


def _meta(
    trial: int, seed: int, options: SearchOptions, tuning: FineTuneOptions | None
) -> dict[str, Any]:
    evaluation = options.evaluation
    meta = plan_meta(
        trial,
        seed,
        tuning or evaluation.fine_tune,
        evaluation.batchnorm_examples if evaluation.reestimate_batchnorm else None,
        options.space,
    )
    if options.halving > 1:
        meta["rung"] = 0 if tuning is not None else 1
    return meta


def _fresh_proposals(
    space: SearchSpace, proposer: Proposer, books: _Books, n: int
) -> tuple[list[tuple[Proposal, EditPlan]], list[tuple[Proposal, Any]]]:
    """Ask until ``n`` proposals of candidates not evaluated yet (fewer, or none, after
    :data:`MAX_REPEATS_IN_A_ROW` repeats in a row).

    A trial is an evaluation, so a proposal that repeats an evaluated candidate is told that
    candidate's reward at once and costs no trial: a controller that has settled near a good
    candidate keeps learning from it while the budget goes to new ones. A proposal that repeats
    another of this batch waits (returned second, with its plan key) for that one's result.
    """
    fresh: list[tuple[Proposal, EditPlan]] = []
    waiting: list[tuple[Proposal, Any]] = []
    keys: set[Any] = set()
    in_a_row = 0
    while len(fresh) < n and in_a_row < MAX_REPEATS_IN_A_ROW:
        proposal = proposer.ask()
        plan = space.plan(proposal.decisions)
        key = plan.key()
        known = books.seen.get(key)
        if known is None and key not in keys:
            fresh.append((proposal, plan))
            keys.add(key)
            in_a_row = 0
            continue
        books.repeats += 1
        in_a_row += 1
        if known is not None:
            proposer.tell(proposal.id, _told(known))
        else:
            waiting.append((proposal, key))
    return fresh, waiting


def _compresses(record: TrialRecord, original: TrialRecord) -> bool:
    """Whether ``record`` is smaller or faster than ``original`` (True when no resource figure
    of theirs can be compared)."""
    mine, theirs = record.figures(), original.figures()
    pairs = [
        (float(mine[name]), float(theirs[name]))
        for name, _ in DEFAULT_OBJECTIVES[1:]
        if mine[name] is not None and theirs[name] is not None
    ]
    return not pairs or any(a < b for a, b in pairs)


def _told(record: TrialRecord) -> float | None:
    """What the proposer hears of a trial: its reward, or None when it failed."""
    return record.reward if record.ok else None


def _result(books: _Books, stop_reason: str, seconds: float) -> SearchResult:
    trials = books.records[1:]
    # Suggestions come from the candidates accurate enough to use, when there are any: a tiny
    # model at chance accuracy is on the raw front but is no suggestion.
    # Nothing below the accuracy floor (the user's, or 1 point below the original by default)
    # is returned or suggested, whatever its size: a tiny model at chance accuracy is no result.
    floor = books.targets.quality_floor(books.original_accuracy)
    usable = [r for r in trials if books._usable(r)]
    original = books.records[0]
    # The original (trial 0, with the same post-training quantization as every candidate)
    # takes part: a candidate it dominates is never suggested.
    reference = [original] if books._usable(original) else []
    front = pareto_front(reference + usable, objectives(books.targets.metric))
    notes: list[str] = []
    # The search compresses: a candidate neither smaller nor faster than the original's own
    # quantized model is no suggestion, however accurate (a DS-CNN search's front held one
    # 1.43x the original's bytes, for +1.5 points).
    by_trial = {r.trial: r for r in books.records}
    grown = [t for t in front if t != 0 and not _compresses(by_trial[t], original)]
    pareto = tuple(t for t in front if t != 0 and t not in grown)
    if grown:
        notes.append(
            f"Not suggested: trial(s) {', '.join(map(str, grown))}, on the front by "
            f"{books.targets.metric.label} but neither smaller nor faster than the original "
            f"with its post-training quantization (trial 0: {_figures(original)})."
        )
    best = books.best
    if best is not None and best.trial not in pareto and books._usable(best):
        # Dominated by the original: the best is the best-rewarded candidate it does not beat.
        best = max((r for r in usable if r.trial in pareto), key=_reward_of, default=None)
    if reference and not pareto and usable:
        pareto, best = (0,), original
        notes.append(
            f"No candidate beats the original with its post-training quantization (trial 0: "
            f"{_figures(original)}) on {books.targets.metric.label}, size and latency together: "
            "every one is dominated by it, so the original is the suggestion."
        )
    suggestions = tuple(suggestion_of(by_trial[t]) for t in pareto)
    if best is not None and not books._usable(best):
        best = None  # _beats prefers usable records: none exists
        if trials:
            notes.append(
                f"No candidate reached the {books.targets.metric.label} floor "
                f"{books.targets.metric.format(floor)} "
                f"({books.targets.describe_quality()}): nothing is returned or suggested."
            )
    if best is not None and not best.meets_targets:
        missed = missed_targets(best.figures(), books.targets, books.original_accuracy)
        notes.append(
            "No candidate met every target; the best so far misses: " + "; ".join(missed) + "."
        )
    if books.best is None:
        notes.append("Every trial failed; see the error column of the history.")
    timed = [dict(r.phase_seconds) for r in trials if r.ok and r.phase_seconds]
    if timed:
        spent = [
            f"{phase} {np.median([t.get(phase, 0.0) for t in timed]):.1f} s"
            for phase in PHASE_COLUMNS
            if any(phase in t for t in timed)
        ]
        notes.append(f"Median time per trial ({len(timed)} trials): " + ", ".join(spent) + ".")
    if books.repeats:
        notes.append(
            f"{books.repeats} proposal(s) repeated a candidate already evaluated: each was told "
            "that candidate's reward and not counted as a trial."
        )
    return SearchResult(
        records=tuple(books.records),
        targets=books.targets,
        original_accuracy=books.original_accuracy,
        best_trial=best.trial if best else None,
        pareto=pareto,
        suggestions=suggestions,
        stop_reason=stop_reason,
        targets_met=books.first_met is not None,
        first_met_trial=books.first_met,
        seconds=seconds,
        models=dict(books.models),
        notes=tuple(notes),
        repeats=books.repeats,
    )


def _reward_of(record: TrialRecord) -> float:
    return record.reward if record.reward is not None else float("-inf")


def suggestion_of(record: TrialRecord) -> Suggestion:
    """The suggestion a (Pareto) trial makes: its plan, readable edits and figures."""
    return Suggestion(
        trial=record.trial,
        plan=record.plan,
        edits=tuple(record.plan.describe()),
        accuracy=record.accuracy,
        size_bytes=record.size_bytes,
        peak_memory_bytes=record.peak_memory_bytes,
        latency_ms=record.latency_ms,
        energy_uj=record.energy_uj,
        reward=record.reward,
        meets_targets=record.meets_targets,
    )


def _figures(record: TrialRecord | None) -> str:
    if record is None:
        return "-"
    parts = []
    if record.accuracy is not None:
        parts.append(f"acc {100 * record.accuracy:.2f} %")
    if record.size_bytes is not None:
        parts.append(f"{record.size_bytes:,} B")
    if record.latency_ms is not None:
        parts.append(f"{1000 * record.latency_ms:.0f} us")
    if record.reward is not None:
        parts.append(f"reward {record.reward:.3f}")
    return ", ".join(parts)
