"""ZenML steps of the architecture search: ``search_architecture``, ``search_candidate`` and
``apply_edits``. Each calls one core function of :mod:`zenml_quant.search`."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.io import fileio
from zenml.types import HTMLString

from ...candidates import failed_model
from ...errors import InvalidOptionError
from ...precisions import parse_precisions
from ...search import apply as _apply
from ...search import executors as _executors
from ...search import loop as _loop
from ...search.edits import EditPlan
from ...search.finetune import FineTuneOptions
from ...search.space import SpaceOptions
from ...search.trial import EvaluationOptions
from ...search.types import RewardOptions
from ...targets import Targets
from ...tasks import dataset_metric
from ...types import LabeledDataset, TFLiteModel
from .._runtime import STEP_SETTINGS, record_metadata
from ..materializers import (
    KerasModelMaterializer,
    SearchResultMaterializer,
    TFLiteModelMaterializer,
)

__all__ = ["apply_edits", "search_architecture", "search_candidate"]


@step(
    name="zq_search_architecture",
    output_materializers={
        "zq_search_result": SearchResultMaterializer,
        "zq_search_best_model": KerasModelMaterializer,
        "zq_search_best_tflite": TFLiteModelMaterializer,
    },
    settings=STEP_SETTINGS,
)
def search_architecture(
    model: Any,
    dataset: LabeledDataset,
    max_trials: int = 30,
    time_budget_min: float | None = None,
    seed: int = 0,
    proposer: str = "controller",
    halving: int = 1,
    batch_size: int = 2,
    patience: int = 10,
    executor: str | None = None,
    workers: int = 2,
    ray_address: str | None = None,
    fine_tune_epochs: int = 1,
    fine_tune_steps: int | None = None,
    learning_rate: float = 1e-3,
    distill: bool | None = None,
    measure_latency: bool = True,
    targets: dict[str, Any] | None = None,
    reward_mode: str = "soft",
    layers: list[str] | None = None,
    frozen_layers: list[str] | None = None,
    search_precision: bool = True,
    precisions: list[str] | None = None,
) -> tuple[
    Annotated[_loop.SearchResult, "zq_search_result"],
    Annotated[pd.DataFrame, "zq_search_history"],
    Annotated[pd.DataFrame, "zq_search_suggestions"],
    Annotated[Any, "zq_search_best_model"],
    Annotated[TFLiteModel, "zq_search_best_tflite"],
    Annotated[HTMLString, "zq_search_report"],
]:
    """Edit ``model`` with the RNN controller (or ``proposer="random"`` or ``"local"``) until the
    targets hold; ``halving`` > 1 turns on successive halving (see ``SearchOptions``).

    ``targets`` holds :class:`zenml_quant.targets.Targets` fields: ``min_quality`` /
    ``max_quality_drop`` (from the original's validation accuracy; by default at most 1 point
    lost) and any of ``max_size_bytes``, ``max_latency_ms`` (p50, one thread, this machine),
    ``max_peak_memory_bytes``, ``max_energy_uj``. Nothing below the accuracy floor is returned
    or suggested: when no trial reaches it, the best model output is the original and the
    ``.tflite`` output a failed model saying so. ``executor`` runs ``batch_size`` candidates
    at a time: ``"inprocess"``, ``"process"`` (``workers`` processes, one TF thread each) or
    ``"ray"`` (``ray_address``, or a local Ray); by default (None) a model of
    ``PROCESS_MIN_PARAMS`` (50,000) parameters or more runs its trials in worker processes, so
    a native crash fails one trial instead of the step, and a smaller one in the step's
    process (see :mod:`zenml_quant.search.executors.choice`). Outputs the full result (models
    of the best and Pareto trials), the history, the Pareto suggestions, the best model and its
    ``.tflite``, and an HTML report with the Pareto plot. Each candidate's precision per
    layer comes from the allocator (``precisions``, default int4, int8 and float; ``["int8"]``
    turns it off, and then ``search_precision`` lets the controller keep layers in float32).
    ``distill`` (default None: wherever it applies, a classifier with one output) fine-tunes
    candidates on the original's soft labels as well as the true ones.
    """
    goal = Targets.from_dict(targets, metric=dataset_metric(dataset))
    allocated = parse_precisions(precisions)
    if goal.empty:
        raise InvalidOptionError(
            "The search needs at least one target: set min_quality or max_quality_drop and a "
            "resource limit such as max_size_bytes or max_latency_ms."
        )
    options = _loop.SearchOptions(
        max_trials=max_trials,
        time_budget_s=None if time_budget_min is None else 60.0 * time_budget_min,
        patience=patience,
        batch_size=batch_size,
        seed=seed,
        proposer=proposer,
        halving=halving,
        reward=RewardOptions(mode=reward_mode),
        space=SpaceOptions(
            layers=tuple(layers) if layers else None,
            frozen_layers=tuple(frozen_layers or ()),
            # None: the search proposes precisions only when the allocator is off
            precision=None if search_precision else False,
        ),
        evaluation=EvaluationOptions(
            fine_tune=FineTuneOptions(
                epochs=fine_tune_epochs,
                steps_per_epoch=fine_tune_steps,
                learning_rate=learning_rate,
                distill=distill,
            ),
            measure_latency=measure_latency or goal.max_latency_ms is not None,
            precisions=allocated,
        ),
    )
    kwargs: dict[str, Any] = {"workers": workers} if executor == "process" else {}
    if executor == "ray":
        kwargs = {"address": ray_address}
    with _executors.resolve_executor(
        executor, model, batch_size=batch_size, **kwargs
    ) as runner:  # no executor named: the model's size picks it
        result = _loop.search_architecture(
            model, dataset, targets=goal, options=options, executor=runner
        )
    best = result.best
    record_metadata(
        {
            "trials": len(result.trials),
            "failed_trials": sum(not r.ok for r in result.trials),
            "repeated_proposals": result.repeats,
            "stop_reason": result.stop_reason,
            "targets_met": result.targets_met,
            "first_met_trial": result.first_met_trial,
            "original_accuracy": result.original_accuracy,
            "notes": list(result.notes),
        }
    )
    if best is None:  # no trial reached the accuracy floor (or every trial failed)
        reason = "the search returned no candidate: " + (" ".join(result.notes) or "none ran")
        return (
            result,
            result.history(),
            result.suggestions_table(),
            model,
            failed_model("search", reason),
            HTMLString(result.html()),
        )
    record_metadata(
        {
            "best_trial": best.trial,
            "best_edits": list(best.plan.describe()),
            "best_accuracy": best.accuracy,
            "best_size_bytes": best.size_bytes,
            "best_latency_ms": best.latency_ms,
            "pareto_trials": list(result.pareto),
            "trial_figures": {
                str(r.trial): {
                    "status": r.status,
                    "accuracy": r.accuracy,
                    "size_bytes": r.size_bytes,
                    "latency_ms": r.latency_ms,
                    "reward": r.reward,
                    "edits": len(r.plan),
                }
                for r in result.records
            },
        }
    )
    return (
        result,
        result.history(),
        result.suggestions_table(),
        result.keras_model(),
        result.tflite(),
        HTMLString(result.html()),
    )


@step(
    name="zq_search_candidate",
    output_materializers=TFLiteModelMaterializer,
    settings=STEP_SETTINGS,
    substitutions={"candidate": "search"},
)
def search_candidate(
    result: _loop.SearchResult, rank: int = 0
) -> Annotated[TFLiteModel, ArtifactConfig(name="zq_tflite_{candidate}")]:
    """The ``rank``-th candidate of the search (:meth:`SearchResult.candidate_order`: 0 is the
    best, then the other suggestions by reward). A rank the search has no candidate for is a
    failed candidate that says so, never the best again under another name."""
    name = f"search_{rank + 1}"
    order = result.candidate_order()
    if rank >= len(order):
        if order:
            reason = (
                f"no candidate ranked {rank + 1}: the search suggested {len(order)} "
                f"(trial(s) {', '.join(map(str, order))}, gated as search_1..search_{len(order)})"
            )
        else:
            reason = "the search returned no candidate: " + (" ".join(result.notes) or "none ran")
        record_metadata({"error": reason})
        return failed_model(name, reason, source_model=name)
    trial = order[rank]
    tflite = result.tflite(trial)
    notes = (f"search trial {trial}: " + "; ".join(result.record(trial).plan.describe()),)
    record_metadata({"trial": trial, "edits": list(result.record(trial).plan.describe())})
    return replace(tflite, notes=tuple(tflite.notes) + notes, source_model=name)


@step(
    name="zq_apply_edits",
    output_materializers={"zq_edited_model": KerasModelMaterializer},
    settings=STEP_SETTINGS,
)
def apply_edits(
    model: Any,
    plan: str,
    dataset: LabeledDataset | None = None,
    fine_tune: bool = True,
) -> tuple[Annotated[Any, "zq_edited_model"], Annotated[str, "zq_edit_plan"]]:
    """Apply an edit plan (YAML text, or the path/URI of a ``.yaml`` file the search or the
    studio wrote) to ``model``. With ``dataset`` the model is fine-tuned with the seed and
    settings the plan records, which reproduces a search suggestion exactly."""
    text = _read_plan(plan)
    parsed = EditPlan.from_yaml(text)
    options = None if fine_tune else FineTuneOptions(epochs=0)
    edited = _apply.apply_plan(model, parsed, dataset, fine_tune_options=options)
    record_metadata(
        {
            "edits": parsed.describe(),
            "transferred_layers": list(edited.transferred),
            "inherited_layers": list(edited.inherited),
            "initialised_layers": list(edited.initialised),
            "params": int(edited.model.count_params()),
        }
    )
    return edited.model, parsed.to_yaml()


def _read_plan(plan: str) -> str:
    if plan.strip().endswith((".yaml", ".yml")) and "\n" not in plan.strip():
        path = plan.strip()
        if not (os.path.exists(path) or fileio.exists(path)):
            raise InvalidOptionError(f"Edit plan file {path!r} does not exist.")
        with fileio.open(path, "r") as f:
            return str(f.read())
    return plan
