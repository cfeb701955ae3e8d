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
from ...search import apply as _apply
from ...search import loop as _loop
from ...search.edits import EditPlan
from ...search.finetune import FineTuneOptions
from ...search.settings import SearchSettings, run_search
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
    targets: dict[str, Any] | None = None,
    settings: SearchSettings | None = None,
) -> tuple[
    Annotated[_loop.SearchResult, "zq_search_result"],
    Annotated[pd.DataFrame, "zq_search_history"],
    Annotated[pd.DataFrame, "zq_search_suggestions"],
    Annotated[Any, "zq_search_best_model"],
    Annotated[TFLiteModel, "zq_search_best_tflite"],
    Annotated[HTMLString, "zq_search_report"],
]:
    """Edit ``model`` until the targets hold, as ``settings`` say (a
    :class:`~zenml_quant.search.settings.SearchSettings`: budget, proposer, fine-tuning, reward,
    where it may edit, executor; None: its defaults, 30 trials of the RNN controller).

    ``targets`` holds :class:`zenml_quant.targets.Targets` fields: ``min_quality`` /
    ``max_quality_drop`` (from the original's validation accuracy; by default at most 1 point
    lost) and any of ``max_size_bytes``, ``max_latency_ms`` (p50, one thread, this machine),
    ``max_peak_memory_bytes``, ``max_energy_uj``. Nothing below the accuracy floor is returned
    or suggested: when no trial reaches it, the best model output is the original and the
    ``.tflite`` output a failed model saying so. Outputs the full result (models of the best
    and Pareto trials), the history, the Pareto suggestions, the best model and its
    ``.tflite``, and an HTML report with the Pareto plot.
    """
    goal = Targets.from_dict(targets, metric=dataset_metric(dataset))
    result = run_search(model, dataset, targets=goal, settings=settings or SearchSettings())
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
