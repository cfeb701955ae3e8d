"""Suggestions for the studio: a search's Pareto candidates, or edit plans written to files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionError
from ..search.edits import EditPlan
from .session import PlanSuggestion

__all__ = ["load_suggestions", "suggestions_from_result"]

_FIGURES = ("accuracy", "size_bytes", "peak_memory_bytes", "latency_ms", "energy_uj")


def suggestions_from_result(result: Any) -> list[PlanSuggestion]:
    """The Pareto suggestions of a :class:`~zenml_quant.search.loop.SearchResult`."""
    return [
        PlanSuggestion(f"trial {s.trial}", s.plan, {k: getattr(s, k, None) for k in _FIGURES})
        for s in result.suggestions
    ]


def load_suggestions(path: str | Path) -> list[PlanSuggestion]:
    """Suggestions from ``path``: the JSON of ``zenml-quant search --json`` or of a saved search
    result (its Pareto candidates), an edit-plan YAML file, or a folder of them."""
    source = Path(path).expanduser()
    if source.is_dir():
        files = sorted([*source.glob("*.yaml"), *source.glob("*.yml")])
        if not files:
            raise InvalidOptionError(f"There are no edit-plan .yaml files in {source}.")
        return [_from_yaml(f) for f in files]
    if not source.is_file():
        raise InvalidOptionError(
            f"There is no file or folder at {source}: pass a search's JSON summary, an edit-plan "
            "YAML file, or a folder of them."
        )
    if source.suffix.lower() in (".yaml", ".yml"):
        return [_from_yaml(source)]
    if source.suffix.lower() == ".json":
        try:
            data = json.loads(source.read_text())
        except (OSError, ValueError) as exc:
            raise InvalidOptionError(f"Cannot read {source} as JSON: {exc}") from None
        return _from_json(data, source)
    raise InvalidOptionError(
        f"Unsupported suggestions file {source.name}: use .json (a search summary) or .yaml."
    )


def _from_yaml(path: Path) -> PlanSuggestion:
    try:
        plan = EditPlan.from_yaml(path.read_text())
    except InvalidOptionError as exc:
        raise InvalidOptionError(f"{path.name}: {exc}") from None
    return PlanSuggestion(path.stem, plan)


def _from_json(data: Any, source: Path) -> list[PlanSuggestion]:
    if isinstance(data, Mapping) and isinstance(data.get("candidates"), list):
        rows = [r for r in data["candidates"] if isinstance(r, Mapping) and r.get("pareto")]
    elif isinstance(data, Mapping) and isinstance(data.get("records"), list):
        pareto = set(data.get("pareto") or ())
        rows = [r for r in data["records"] if isinstance(r, Mapping) and r.get("trial") in pareto]
    else:
        raise InvalidOptionError(
            f"{source.name} is not a search summary: expected the JSON of `zenml-quant search "
            "--json` (with 'candidates') or of a search result (with 'records' and 'pareto')."
        )
    suggestions = []
    for row in rows:
        try:
            plan = EditPlan.from_dict(row["plan"])
        except (KeyError, TypeError, InvalidOptionError) as exc:
            raise InvalidOptionError(
                f"{source.name}: trial {row.get('trial')} has no readable plan ({exc})."
            ) from None
        figures = {k: row.get(k) for k in _FIGURES}
        suggestions.append(PlanSuggestion(f"trial {row.get('trial')}", plan, figures))
    return suggestions
