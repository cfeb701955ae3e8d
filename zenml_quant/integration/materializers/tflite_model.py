"""TFLite flatbuffers: a ``.tflite`` file plus a JSON sidecar of what we know about it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from ...report.html import render_html
from ...types import ConversionOptions, TensorDetails, TFLiteModel

_MODEL_FILE = "model.tflite"
_META_FILE = "tflite_meta.json"
_RECIPE_FILE = "recipe.json"  # ai-edge-quantizer's recipe, loadable by its Quantizer as is


class TFLiteModelMaterializer(BaseMaterializer):
    """Stores :class:`TFLiteModel` as ``model.tflite`` (the exact bytes) and ``tflite_meta.json``.

    ZenML's dataclass materializer cannot hold raw bytes, and the ``.tflite`` file should be
    directly downloadable from the artifact store anyway.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (TFLiteModel,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, model: TFLiteModel) -> None:
        with self.artifact_store.open(os.path.join(self.uri, _MODEL_FILE), "wb") as f:
            f.write(model.content)
        meta = {k: v for k, v in asdict(model).items() if k not in ("content", "recipe")}
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "w") as f:
            json.dump(meta, f, indent=1)
        if model.recipe:
            with self.artifact_store.open(os.path.join(self.uri, _RECIPE_FILE), "w") as f:
                f.write(model.recipe)

    def load(self, data_type: type[Any]) -> TFLiteModel:
        with self.artifact_store.open(os.path.join(self.uri, _MODEL_FILE), "rb") as f:
            content = f.read()
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "r") as f:
            meta = json.load(f)
        recipe = ""
        recipe_uri = os.path.join(self.uri, _RECIPE_FILE)
        if self.artifact_store.exists(recipe_uri):
            with self.artifact_store.open(recipe_uri, "r") as f:
                recipe = f.read()
        return TFLiteModel(
            content=content,
            mode=meta["mode"],
            options=ConversionOptions(**meta["options"]),
            operators=tuple(meta["operators"]),
            inputs=tuple(
                TensorDetails(**{**d, "shape": tuple(d["shape"])}) for d in meta["inputs"]
            ),
            outputs=tuple(
                TensorDetails(**{**d, "shape": tuple(d["shape"])}) for d in meta["outputs"]
            ),
            peak_activation_bytes=meta["peak_activation_bytes"],
            source_model=meta["source_model"],
            error=meta["error"],
            float_layers=tuple(meta.get("float_layers", ())),
            notes=tuple(meta.get("notes", ())),
            precisions=tuple((str(a), str(b)) for a, b in meta.get("precisions", ())),
            recipe=recipe,
        )

    def save_visualizations(self, model: TFLiteModel) -> dict[str, VisualizationType]:
        import pandas as pd

        rows = [
            {"property": "mode", "value": model.mode},
            {"property": "size", "value": f"{model.size_bytes:,} B"},
            {"property": "peak activations", "value": f"{model.peak_activation_bytes or 0:,} B"},
            {"property": "status", "value": model.error or "ok"},
        ]
        if model.float_layers:
            rows.append({"property": "float layers", "value": ", ".join(model.float_layers)})
        rows.extend(
            {"property": f"precision of {layer}", "value": precision}
            for layer, precision in model.precisions
        )
        rows.extend({"property": "note", "value": note} for note in model.notes)
        for kind, tensors in (("input", model.inputs), ("output", model.outputs)):
            for t in tensors:
                quant = f", scale={t.scale:.6g}, zero_point={t.zero_point}" if t.quantized else ""
                rows.append(
                    {"property": kind, "value": f"{t.name} {list(t.shape)} {t.dtype}{quant}"}
                )
        counts = pd.Series(model.operators, dtype=str).value_counts()
        for op, n in counts.items():
            rows.append({"property": "operator", "value": f"{op} x{n}"})
        uri = os.path.join(self.uri, "summary.html")
        with self.artifact_store.open(uri, "w") as f:
            f.write(
                render_html(pd.DataFrame(rows), title=f"TFLite model from {model.source_model}")
            )
        return {uri: VisualizationType.HTML}

    def extract_metadata(self, model: TFLiteModel) -> dict[str, Any]:
        return {
            "mode": model.mode,
            "size_bytes": model.size_bytes,
            "operators": len(model.operators),
            "peak_activation_bytes": int(model.peak_activation_bytes or 0),
            "ok": model.ok,
            "float_layers": list(model.float_layers),
            "precisions": dict(model.precisions),
        }
