"""The studio's state: one model and dataset, the edits each layer can take, evaluated plans.

:class:`Studio` knows nothing of the web: the app in :mod:`.app` calls it. An evaluation is
the search's own :func:`~zenml_quant.search.trial.evaluate_trial` (build, optional fine-tune,
convert, evaluate, benchmark, energy), so a plan scores the same here as in a search, and the
exported plan rebuilds the same model through ``apply_plan`` / the ``apply_edits`` step.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..benchmark import BenchmarkOptions
from ..errors import InvalidOptionError
from ..gate import CandidateMeasurements, check_candidate
from ..profile import layer_table
from ..search.apply import plan_meta
from ..search.edits import EDIT_PRECISIONS, Edit, EditPlan
from ..search.finetune import FineTuneOptions
from ..search.rebuild import apply_edits
from ..search.space import SearchSpace, SpaceOptions
from ..search.trial import (
    EvaluationOptions,
    SearchContext,
    evaluate_trial,
    keras_bytes,
    load_keras_bytes,
)
from ..search.types import Targets, TrialTask
from ..summary import RunSummary
from ..tasks import dataset_metric, dataset_task
from ..types import LabeledDataset

__all__ = ["STUDIO_MODES", "PlanEvaluation", "Studio", "PlanSuggestion"]

#: Whole-model conversion modes: int8 (with the plan's float32 layers), float16 or float32.
STUDIO_MODES = ("int8", "float16", "float32")

#: The most fine-tuning epochs an evaluation may ask for (it runs while the person waits).
MAX_FINE_TUNE_EPOCHS = 20
#: Fine-tuning epochs after an edit unless the user says otherwise. Right after a structural
#: edit the accuracy says little (the digits CNN with one separable convolution: 16.67 % at 0
#: epochs, 93.75 % after 3); a few epochs make it a figure worth comparing.
DEFAULT_FINE_TUNE_EPOCHS = 3


@dataclass(frozen=True)
class PlanSuggestion:
    """A plan offered to the person, e.g. a Pareto candidate of a search."""

    label: str
    plan: EditPlan
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanEvaluation:
    """One evaluated plan: its figures, the edited model's layer table, and the models (``.keras`` and ``.tflite`` bytes; None when it failed)."""

    id: int
    label: str
    plan: EditPlan
    mode: str
    fine_tune_epochs: int
    seed: int
    status: str
    error: str | None
    figures: dict[str, Any]
    layers: list[dict[str, Any]]
    seconds: float
    #: Seconds spent fine-tuning (None when not fine-tuned): the cost of the accuracy shown.
    fine_tune_seconds: float | None = None
    keras: bytes | None = field(default=None, repr=False)
    tflite: bytes | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Studio:
    """One model and labeled dataset, and every plan evaluated on them in this session.

    ``threads`` is the latency benchmark's thread count (stated on the page). ``fine_tune``
    gives the fine-tuning settings apart from the epochs, which each evaluation chooses.
    ``sensitivity`` maps layer names to the int8 sensitivity in accuracy points, if profiled.
    ``run_summary`` is the summary of the pipeline run the model came from, when known: the
    page shows its candidates and the gate's decision beside the plans evaluated here.
    """

    def __init__(
        self,
        model: Any,
        dataset: LabeledDataset,
        *,
        targets: Targets | None = None,
        suggestions: Sequence[PlanSuggestion] = (),
        sensitivity: dict[str, float] | None = None,
        fine_tune: FineTuneOptions | None = None,
        threads: int = 1,
        benchmark: BenchmarkOptions | None = None,
        seed: int = 0,
        run_summary: RunSummary | None = None,
    ) -> None:
        self.model = model
        self.run_summary = run_summary
        self.dataset = dataset
        self.targets = targets or Targets()
        # The page's precision menu offers every per-layer precision, not only float32.
        self.space = SearchSpace(model, SpaceOptions(precisions=EDIT_PRECISIONS))
        self.sensitivity = dict(sensitivity or {})
        self.fine_tune = fine_tune or FineTuneOptions(epochs=1, batch_size=64, distill=False)
        self.threads = threads
        self.benchmark = benchmark or BenchmarkOptions(
            threads=(threads,), warmup=5, min_runs=30, min_seconds=0.3
        )
        self.seed = seed
        self._model_bytes = keras_bytes(model)
        self._lock = threading.Lock()
        self._evaluations: list[PlanEvaluation] = []
        self.suggestions = [self._checked_suggestion(s) for s in suggestions]
        self._layer_names = {n.name for n in self.space.graph.nodes if not n.is_input}
        self._precision = {
            name
            for name in self._layer_names
            if any(e.op == "precision" for e in self.space.edits_for(name))
        }

    # -- what the page shows ---------------------------------------------------------------------
    def layers(self, plan: EditPlan, mode: str = "int8") -> list[dict[str, Any]]:
        """The layer table of the model ``plan`` gives, converted in ``mode``.

        Raises InvalidOptionError (naming the problem) for an invalid plan.
        """
        self.space.validate(plan)
        _check_mode(mode)
        edited = apply_edits(self.model, plan, seed=self.seed, space=self.space).model
        return self._layer_rows(edited, plan, mode)

    def options(self, layer: str, plan: EditPlan) -> dict[str, list[dict[str, Any]]]:
        """The edits ``layer`` can take on top of ``plan``, by operation; invalid ones left out.

        Each entry is ``{"keep": bool, "value": ..., "label": ..., "current": bool}``; the
        ``keep`` entry drops the layer's edit of that kind (the original stays).
        """
        if layer not in self._layer_names:
            self.space.validate(EditPlan((Edit(layer, "remove"),)))  # raises, naming the layers
        current = {e.op: e.value for e in plan.edits if e.layer == layer}
        offered: dict[str, list[dict[str, Any]]] = {}
        for edit in self.space.edits_for(layer):
            if self._valid(self._with(plan, layer, edit.op, edit)):
                offered.setdefault(edit.op, []).append(
                    {
                        "keep": False,
                        "value": edit.value,
                        "label": edit.describe(),
                        "current": edit.op in current and current[edit.op] == edit.value,
                    }
                )
        for op, choices in offered.items():
            if self._valid(self._with(plan, layer, op, None)):
                keep = {"keep": True, "value": None, "label": "keep the original"}
                choices.insert(0, {**keep, "current": op not in current})
        return offered

    def check_targets(self, figures: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per check the deployment gate makes of these figures: ``target``, ``limit``,
        ``value``, ``met`` and the gate's ``reason``.

        The gate itself judges (:func:`~zenml_quant.gate.check_candidate`), so "met" here means
        what it means at promotion. The quality baseline is the original model's evaluation in
        this studio; until it exists, the baseline check fails. The latency is this machine's
        median at :attr:`threads` threads (the gate reads the targets' own percentile and
        threads, and says so when they differ). An energy target, which only the search uses,
        gets its own row.
        """
        measurements = CandidateMeasurements(
            name="studio",
            accuracy=figures.get("accuracy"),
            baseline_accuracy=self._original_accuracy(),
            size_bytes=figures.get("size_bytes"),
            latency_ms={}
            if figures.get("latency_ms") is None
            else {f"p50@{self.threads}": figures["latency_ms"]},
            peak_memory_bytes=figures.get("peak_memory_bytes"),
            metric=self.targets.metric.key,
            higher_is_better=self.targets.metric.higher_is_better,
            n_examples=len(self.dataset.y_val),
        )
        rows = [
            {
                "target": c.name,
                "limit": c.limit,
                "value": c.value,
                "met": c.passed,
                "reason": c.reason,
            }
            for c in check_candidate(self.targets, measurements)
            if not (c.name == "baseline" and c.passed)  # the reference, not a target
        ]
        if self.targets.max_energy_uj is not None:
            energy, limit = figures.get("energy_uj"), float(self.targets.max_energy_uj)
            met = energy is not None and math.isfinite(energy) and energy <= limit
            shown = "not measured" if energy is None else f"{energy:.3g} µJ"
            rows.append(
                {
                    "target": "energy",
                    "limit": limit,
                    "value": energy,
                    "met": met,
                    "reason": f"energy {shown} {'<=' if met else '>'} limit {limit:.3g} µJ",
                }
            )
        return rows

    def missed(self, evaluation: PlanEvaluation) -> list[str]:
        """The reason of every failed check of ``evaluation`` ([] when all are met); a failed
        evaluation's own error is its one reason."""
        if not evaluation.ok:
            return [evaluation.error or "evaluation failed"]
        return [r["reason"] for r in self.check_targets(evaluation.figures) if not r["met"]]

    # -- evaluations -----------------------------------------------------------------------------
    def evaluate(
        self,
        plan: EditPlan,
        *,
        mode: str = "int8",
        fine_tune_epochs: int | None = None,
        label: str | None = None,
        progress: Callable[[str, float | None], None] | None = None,
    ) -> PlanEvaluation:
        """Build, fine-tune, convert, evaluate and benchmark.

        ``fine_tune_epochs`` (0 for none) defaults to :data:`DEFAULT_FINE_TUNE_EPOCHS` for a
        plan with edits and to 0 for the original model.

        ``progress(phase, fraction)`` is called as it goes and may raise
        :class:`~zenml_quant.search.trial.Cancelled` to stop it. A plan that cannot be built or
        measured gives an evaluation with status ``"failed"`` and the reason; the history keeps
        it too.
        """
        self.space.validate(plan)
        _check_mode(mode)
        if fine_tune_epochs is None:
            fine_tune_epochs = DEFAULT_FINE_TUNE_EPOCHS if plan.edits else 0
        if (
            isinstance(fine_tune_epochs, bool)
            or not isinstance(fine_tune_epochs, int)
            or not 0 <= fine_tune_epochs <= MAX_FINE_TUNE_EPOCHS
        ):
            raise InvalidOptionError(
                f"fine_tune_epochs must be a whole number from 0 to {MAX_FINE_TUNE_EPOCHS}, "
                f"got {fine_tune_epochs!r}."
            )
        fine_tune = replace(self.fine_tune, epochs=fine_tune_epochs)
        with self._lock:
            number = len(self._evaluations)
        seed = self.seed * 100_003 + number
        context = self._context(mode, fine_tune)
        evaluation_options = context.options
        examples = (
            evaluation_options.batchnorm_examples
            if evaluation_options.reestimate_batchnorm
            else None
        )
        meta = {**plan_meta(number, seed, fine_tune, examples), "conversion": mode}
        plan = replace(plan, model=self.space.model_name, meta=meta)
        task = TrialTask(number, plan, seed, fine_tune=fine_tune_epochs > 0)
        outcome = evaluate_trial(context, task, progress=progress)
        record = outcome.record
        layers: list[dict[str, Any]] = []
        figures: dict[str, Any] = {}
        if record.ok and outcome.keras is not None:
            figures = {**record.figures(), "params": record.params, "macs": record.macs}
            layers = self._layer_rows(load_keras_bytes(outcome.keras), plan, mode)
        evaluation = PlanEvaluation(
            id=number,
            label=label or ("original model" if not plan.edits else f"plan {number}"),
            plan=plan,
            mode=mode,
            fine_tune_epochs=fine_tune_epochs,
            seed=seed,
            status=record.status,
            error=record.error,
            figures=figures,
            layers=layers,
            seconds=record.seconds,
            fine_tune_seconds=dict(record.phase_seconds).get("fine-tuning"),
            keras=outcome.keras,
            tflite=outcome.tflite,
        )
        with self._lock:
            self._evaluations.append(evaluation)
        return evaluation

    @property
    def history(self) -> list[PlanEvaluation]:
        """Every evaluation of this session, oldest first (the first is the original model)."""
        with self._lock:
            return list(self._evaluations)

    def evaluation(self, evaluation_id: int) -> PlanEvaluation:
        """The evaluation with this id; InvalidOptionError if there is none."""
        history = self.history
        if not 0 <= evaluation_id < len(history):
            raise InvalidOptionError(
                f"There is no evaluation {evaluation_id}: this session has {len(history)}."
            )
        return history[evaluation_id]

    def export(self, evaluation_id: int) -> str:
        """The evaluated plan as YAML, with the seed and fine-tuning that rebuild it exactly."""
        return self.evaluation(evaluation_id).plan.to_yaml()

    def baseline(self) -> PlanEvaluation | None:
        """The original model's evaluation, once it has run."""
        return next((e for e in self.history if not e.plan.edits and e.ok), None)

    # -- internals -------------------------------------------------------------------------------
    def _context(self, mode: str, fine_tune: FineTuneOptions) -> SearchContext:
        options = EvaluationOptions(
            fine_tune=fine_tune,
            quantize=mode == "int8",
            float_mode="float16" if mode == "float16" else "float32",
            measure_latency=True,
            benchmark=self.benchmark,
        )
        return SearchContext(
            model_bytes=self._model_bytes,
            x_train=self.dataset.x_train,
            y_train=self.dataset.y_train,
            x_val=self.dataset.x_val,
            y_val=self.dataset.y_val,
            options=options,
            space_options=self.space.options,
            task=dataset_task(self.dataset),
            metric=dataset_metric(self.dataset).to_dict(),
        )

    def _original_accuracy(self) -> float | None:
        base = self.baseline()
        return None if base is None else base.figures.get("accuracy")

    def _layer_rows(self, edited: Any, plan: EditPlan, mode: str) -> list[dict[str, Any]]:
        table = layer_table(edited)
        chosen = plan.precisions()
        edits: dict[str, list[str]] = {}
        for edit in plan.edits:
            edits.setdefault(edit.layer, []).append(edit.describe())
        rows = []
        for row in table.to_dict("records"):
            name = row["layer"]
            precision = ""
            if name in self._precision:  # a layer with weights
                # Per-layer precisions apply to int8 conversion; the float modes are model-wide.
                precision = chosen.get(name, "int8") if mode == "int8" else mode
            rows.append(
                {
                    **{k: _plain(v) for k, v in row.items()},
                    "precision": precision,
                    "sensitivity_pts": self.sensitivity.get(name),
                    "edits": edits.get(name, []),
                    "editable": name in self._layer_names and bool(self.space.edits_for(name)),
                }
            )
        return rows

    def _with(self, plan: EditPlan, layer: str, op: str, edit: Edit | None) -> EditPlan:
        """``plan`` with ``layer``'s edit of kind ``op`` replaced by ``edit`` (None: dropped)."""
        kept = tuple(e for e in plan.edits if not (e.layer == layer and e.op == op))
        return replace(plan, edits=kept if edit is None else (*kept, edit))

    def _valid(self, plan: EditPlan) -> bool:
        try:
            self.space.validate(plan)
        except InvalidOptionError:
            return False
        return True

    def _checked_suggestion(self, suggestion: PlanSuggestion) -> PlanSuggestion:
        try:
            self.space.validate(suggestion.plan)
        except InvalidOptionError as exc:
            raise InvalidOptionError(
                f"Suggestion {suggestion.label!r} does not fit this model: {exc}"
            ) from None
        return suggestion


def _check_mode(mode: str) -> None:
    if mode not in STUDIO_MODES:
        raise InvalidOptionError(f"Unknown mode {mode!r}: use one of {', '.join(STUDIO_MODES)}.")


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if value is pd.NA:
        return None
    return value
