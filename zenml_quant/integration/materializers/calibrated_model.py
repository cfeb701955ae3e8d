"""Calibrated models: the calibrated float ``.tflite`` plus a JSON sidecar of its provenance."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from ...report.html import render_html
from ...types import CalibratedModel, ConversionOptions

_MODEL_FILE = "calibrated.tflite"
_META_FILE = "calibrated_meta.json"


class CalibratedModelMaterializer(BaseMaterializer):
    """Stores :class:`CalibratedModel` as ``calibrated.tflite`` (the exact bytes) and
    ``calibrated_meta.json`` (options, fingerprints, notes, error)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (CalibratedModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, calibrated: CalibratedModel) -> None:
        with self.artifact_store.open(os.path.join(self.uri, _MODEL_FILE), "wb") as f:
            f.write(calibrated.content)
        meta = {k: v for k, v in asdict(calibrated).items() if k != "content"}
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "w") as f:
            json.dump(meta, f, indent=1)

    def load(self, data_type: type[Any]) -> CalibratedModel:
        with self.artifact_store.open(os.path.join(self.uri, _MODEL_FILE), "rb") as f:
            content = f.read()
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "r") as f:
            meta = json.load(f)
        return CalibratedModel(
            content=content,
            options=ConversionOptions(**meta["options"]),
            source_model=meta["source_model"],
            model_fingerprint=meta["model_fingerprint"],
            data_fingerprint=meta["data_fingerprint"],
            samples=int(meta["samples"]),
            notes=tuple(meta["notes"]),
            recurrent=bool(meta["recurrent"]),
            scored_output=meta["scored_output"],
            error=meta["error"],
        )

    def save_visualizations(self, calibrated: CalibratedModel) -> dict[str, VisualizationType]:
        import pandas as pd

        rows = [
            {"property": "status", "value": calibrated.error or "ok"},
            {"property": "calibration examples", "value": f"{calibrated.samples:,}"},
            {"property": "seed", "value": str(calibrated.options.seed)},
            {"property": "calibrated float file", "value": f"{calibrated.size_bytes:,} B"},
            {"property": "model fingerprint", "value": calibrated.model_fingerprint[:16]},
            {"property": "data fingerprint", "value": calibrated.data_fingerprint[:16]},
        ]
        rows.extend({"property": "note", "value": note} for note in calibrated.notes)
        uri = os.path.join(self.uri, "summary.html")
        with self.artifact_store.open(uri, "w") as f:
            f.write(
                render_html(
                    pd.DataFrame(rows), title=f"{calibrated.source_model}, calibrated for int8"
                )
            )
        return {uri: VisualizationType.HTML}

    def extract_metadata(self, calibrated: CalibratedModel) -> dict[str, Any]:
        return {
            "ok": calibrated.ok,
            "samples": calibrated.samples,
            "size_bytes": calibrated.size_bytes,
        }
