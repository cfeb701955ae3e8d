"""Keras models (``tf_keras`` and Keras 3) in their native ``.keras`` format."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from ..._compat import MODEL_TYPES
from ...models import load_model, model_flavour, save_model

_MODEL_FILE = "model.keras"
_META_FILE = "keras_meta.json"


class KerasModelMaterializer(BaseMaterializer):
    """Stores a Sequential/Functional model as ``model.keras`` plus a JSON sidecar.

    The sidecar records the flavour and whether the model holds ``Lambda`` layers: such a
    model only reached the pipeline because the user loaded it with ``allow_unsafe=True``, so
    it is reloaded the same way. Custom layers must be registered with
    ``@keras.saving.register_keras_serializable`` to reload in another process.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = MODEL_TYPES
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, model: Any) -> None:
        has_lambda = any(type(layer).__name__ == "Lambda" for layer in model.layers)
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            local = save_model(model, os.path.join(tmp, _MODEL_FILE))
            fileio.copy(str(local), os.path.join(self.uri, _MODEL_FILE), overwrite=True)
        meta = {"flavour": model_flavour(model), "has_lambda": has_lambda, "name": model.name}
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "w") as f:
            json.dump(meta, f)

    def load(self, data_type: type[Any]) -> Any:
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "r") as f:
            meta = json.load(f)
        # The model is loaded in full before the temporary copy goes away.
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            local = os.path.join(tmp, _MODEL_FILE)
            fileio.copy(os.path.join(self.uri, _MODEL_FILE), local)
            return load_model(local, allow_unsafe=bool(meta.get("has_lambda")))

    def save_visualizations(self, model: Any) -> dict[str, VisualizationType]:
        lines: list[str] = []
        model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line), line_length=100)
        uri = os.path.join(self.uri, "summary.md")
        with self.artifact_store.open(uri, "w") as f:
            f.write(f"### Keras model `{model.name}` ({model_flavour(model)})\n\n```\n")
            f.write("\n".join(lines))
            f.write("\n```\n")
        return {uri: VisualizationType.MARKDOWN}

    def extract_metadata(self, model: Any) -> dict[str, Any]:
        return {
            "flavour": model_flavour(model),
            "params": int(model.count_params()),
            "layers": len(model.layers),
        }
