"""Search results: ``search.json`` (history, targets, Pareto trials) plus the kept models as
``trial_<n>.tflite`` / ``trial_<n>.keras`` files, and the search report as the visualization."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from ...search.loop import SearchResult
from ...search.serialize import result_from_dict, result_to_dict

_RESULT_FILE = "search.json"
_REPORT_FILE = "search.html"


class SearchResultMaterializer(BaseMaterializer):
    """Stores a :class:`SearchResult` without pickle; the models stay downloadable files."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (SearchResult,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, result: SearchResult) -> None:
        with self.artifact_store.open(os.path.join(self.uri, _RESULT_FILE), "w") as f:
            json.dump(result_to_dict(result), f, indent=1)
        for trial, (tflite, keras) in result.models.items():
            with self.artifact_store.open(self._path(trial, "tflite"), "wb") as f:
                f.write(tflite)
            if keras is not None:
                with self.artifact_store.open(self._path(trial, "keras"), "wb") as f:
                    f.write(keras)

    def load(self, data_type: type[Any]) -> SearchResult:
        with self.artifact_store.open(os.path.join(self.uri, _RESULT_FILE), "r") as f:
            data = json.load(f)
        models: dict[int, tuple[bytes, bytes | None]] = {}
        for trial in data.get("models", []):
            with self.artifact_store.open(self._path(trial, "tflite"), "rb") as f:
                tflite = f.read()
            keras = None
            if self.artifact_store.exists(self._path(trial, "keras")):
                with self.artifact_store.open(self._path(trial, "keras"), "rb") as f:
                    keras = f.read()
            models[int(trial)] = (tflite, keras)
        return result_from_dict(data, models)

    def save_visualizations(self, result: SearchResult) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, _REPORT_FILE)
        with self.artifact_store.open(path, "w") as f:
            f.write(result.html())
        return {path: VisualizationType.HTML}

    def extract_metadata(self, result: SearchResult) -> dict[str, Any]:
        best = result.best
        return {
            "trials": len(result.trials),
            "failed": sum(not r.ok for r in result.trials),
            "targets_met": result.targets_met,
            "best_trial": result.best_trial if result.best_trial is not None else -1,
            "best_accuracy": float(best.accuracy) if best and best.accuracy is not None else 0.0,
            "best_size_bytes": int(best.size_bytes) if best and best.size_bytes else 0,
            "pareto_trials": list(result.pareto),
        }

    def _path(self, trial: int, suffix: str) -> str:
        return os.path.join(self.uri, f"trial_{int(trial)}.{suffix}")
