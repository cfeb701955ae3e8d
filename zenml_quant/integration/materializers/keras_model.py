"""Keras models (``tf_keras`` and Keras 3) in their native ``.keras`` format."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml import get_step_context
from zenml.client import Client
from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.utils.pagination_utils import depaginate

from ..._compat import MODEL_TYPES
from ...errors import InvalidModelError
from ...models import load_model, model_flavour, save_model, unsafe_loading_allowed

_MODEL_FILE = "model.keras"
_META_FILE = "keras_meta.json"


class KerasModelMaterializer(BaseMaterializer):
    """Stores a Sequential/Functional model as ``model.keras`` plus a JSON sidecar.

    The sidecar records the flavour and whether the model holds ``Lambda`` layers, whose
    Python code runs when the model loads. Permission to run it is never read from the
    artifact itself (anyone who can write to the artifact store could grant it), and is not
    remembered from an earlier ``allow_unsafe=True``. Such a model loads only

    - in a step of the pipeline run that produced it (a step of that run, possibly a cache
      hit, made or loaded it, so the run was already given that permission), or
    - inside :func:`zenml_quant.models.allow_unsafe_loading`, e.g. the studio's
      ``--artifact ... --allow-unsafe``.

    Anywhere else (a later run, a notebook's ``artifact.load()``) it is refused with
    :class:`~zenml_quant.errors.InvalidModelError`. Custom layers must be registered with
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
        # A sidecar that wrongly says "no Lambda" gains nothing: load_model reads the model's
        # own config and refuses Lambda layers it was not allowed.
        allowed = False
        if meta.get("has_lambda") and not unsafe_loading_allowed():
            allowed = self._produced_in_this_run()
            if not allowed:
                raise InvalidModelError(
                    f"the Keras model artifact at {self.uri} holds Lambda layers, whose Python "
                    "code runs on load, and nothing allowed that for this load: if you trust "
                    "it, load it inside `with zenml_quant.models.allow_unsafe_loading():` (in "
                    "the studio: --allow-unsafe), or rebuild the layers as registered custom "
                    "layers"
                )
        # The model is loaded in full before the temporary copy goes away.
        with self.get_temporary_directory(delete_at_exit=True) as tmp:
            local = os.path.join(tmp, _MODEL_FILE)
            fileio.copy(os.path.join(self.uri, _MODEL_FILE), local)
            return load_model(local, allow_unsafe=allowed)

    def _produced_in_this_run(self) -> bool:
        """Whether this is a step of the pipeline run that output this artifact.

        Cached steps count: a cache hit links the original output to the new run's step.
        """
        try:
            context = get_step_context()
        except RuntimeError:  # not inside a step
            return False
        client = Client()
        for step_run in depaginate(client.list_run_steps, pipeline_run_id=context.pipeline_run.id):
            for versions in step_run.outputs.values():
                if any(version.uri == self.uri for version in versions):
                    return True
        return False

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
