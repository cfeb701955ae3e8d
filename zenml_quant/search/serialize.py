"""A :class:`SearchResult` as plain JSON-able data (the models' bytes travel separately), for
the ZenML materializer, the CLI's ``--json`` and the studio."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from .edits import EditPlan
from .loop import SearchResult, suggestion_of
from .types import Targets, TrialRecord

__all__ = ["record_from_dict", "record_to_dict", "result_from_dict", "result_to_dict"]

_RECORD_FIELDS = {f.name for f in fields(TrialRecord)}


def record_to_dict(record: TrialRecord) -> dict[str, Any]:
    out = {f: getattr(record, f) for f in _RECORD_FIELDS if f != "plan"}
    out["plan"] = record.plan.to_dict()
    out["edits"] = record.plan.describe() if record.plan.edits else []
    out["notes"] = list(record.notes)
    return out


def record_from_dict(data: dict[str, Any]) -> TrialRecord:
    values = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
    values["plan"] = EditPlan.from_dict(data["plan"])
    values["notes"] = tuple(data.get("notes", ()))
    values["phase_seconds"] = tuple(
        (str(phase), float(seconds)) for phase, seconds in data.get("phase_seconds", ())
    )
    return TrialRecord(**values)


def result_to_dict(result: SearchResult) -> dict[str, Any]:
    """Everything but the model bytes; ``models`` lists the trials whose models were kept."""
    return {
        "records": [record_to_dict(r) for r in result.records],
        "targets": asdict(result.targets),
        "original_accuracy": result.original_accuracy,
        "best_trial": result.best_trial,
        "pareto": list(result.pareto),
        "stop_reason": result.stop_reason,
        "targets_met": result.targets_met,
        "first_met_trial": result.first_met_trial,
        "seconds": result.seconds,
        "notes": list(result.notes),
        "repeats": result.repeats,
        "models": sorted(result.models),
    }


def result_from_dict(
    data: dict[str, Any], models: dict[int, tuple[bytes, bytes | None]] | None = None
) -> SearchResult:
    records = tuple(record_from_dict(r) for r in data["records"])
    by_trial = {r.trial: r for r in records}
    pareto = tuple(int(t) for t in data["pareto"])
    return SearchResult(
        records=records,
        targets=Targets(**data["targets"]),
        original_accuracy=float(data["original_accuracy"]),
        best_trial=data["best_trial"],
        pareto=pareto,
        suggestions=tuple(suggestion_of(by_trial[t]) for t in pareto),
        stop_reason=data["stop_reason"],
        targets_met=bool(data["targets_met"]),
        first_met_trial=data["first_met_trial"],
        seconds=float(data["seconds"]),
        models=dict(models or {}),
        notes=tuple(data.get("notes", ())),
        repeats=int(data.get("repeats", 0)),
    )
