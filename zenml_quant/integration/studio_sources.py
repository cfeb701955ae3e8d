"""Where ``zenml-quant studio`` gets its model, data and suggestions from ZenML.

A model version is searched for the artifacts this package's pipelines link to it: the Keras
model (``zq_keras_model``, or ``zq_trained_model`` from the retrain pipeline), the dataset
(``zq_dataset``), a search result (``zq_search_result``) for suggestions and the run's summary
(``zq_run_summary``: its candidates and the gate's decision, shown on the page).

A model with ``Lambda`` layers (Python code that runs on load) loads only when the caller
passes ``allow_unsafe=True`` (the studio's ``--allow-unsafe``), and that permission covers
the one model load of that call, nothing after it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidOptionError

__all__ = ["ZenmlSources", "from_artifact", "from_model_version"]

MODEL_ARTIFACTS = ("zq_keras_model", "zq_trained_model")
DATASET_ARTIFACT = "zq_dataset"
SEARCH_ARTIFACT = "zq_search_result"
SUMMARY_ARTIFACT = "zq_run_summary"


@dataclass(frozen=True)
class ZenmlSources:
    """What was found: the model, and the dataset and search result when linked."""

    model: Any
    dataset: Any = None
    search_result: Any = None
    description: str = ""
    summary: Any = None  # the run's RunSummary (candidates, gate decision), when linked


def _split(reference: str) -> tuple[str, str | None]:
    name, _, version = reference.partition(":")
    if not name:
        raise InvalidOptionError(f"Expected NAME or NAME:VERSION, got {reference!r}.")
    return name, version or None


def _model_loading(allow_unsafe: bool) -> contextlib.AbstractContextManager[Any]:
    from ..models import allow_unsafe_loading  # loads TensorFlow: only when a model does

    return allow_unsafe_loading() if allow_unsafe else contextlib.nullcontext()


def from_model_version(reference: str, *, allow_unsafe: bool = False) -> ZenmlSources:
    """``NAME`` (latest) or ``NAME:VERSION`` (a number, name or stage) of a ZenML model.

    ``allow_unsafe`` lets the model's ``Lambda`` layers load (their code runs): for this
    call's model only.

    Raises:
        InvalidOptionError: no such model version, or it links no Keras model.
        InvalidModelError: the model holds ``Lambda`` layers and ``allow_unsafe`` is False.
    """
    from zenml.client import Client

    name, version = _split(reference)
    number: str | int | None = int(version) if version and version.isdigit() else version
    try:
        model_version = Client().get_model_version(name, number)
    except KeyError as exc:
        raise InvalidOptionError(f"No ZenML model version {reference!r}: {exc}") from None

    def linked(artifact: str) -> Any:
        found = model_version.get_artifact(artifact)
        return None if found is None else found.load()

    with _model_loading(allow_unsafe):
        model = next((m for m in map(linked, MODEL_ARTIFACTS) if m is not None), None)
    if model is None:
        raise InvalidOptionError(
            f"Model version {model_version.model.name}:{model_version.name} has no Keras model "
            f"artifact ({' or '.join(MODEL_ARTIFACTS)}): run a zenml-quant pipeline with this "
            "model, or start the studio with --model PATH."
        )
    return ZenmlSources(
        model=model,
        dataset=linked(DATASET_ARTIFACT),
        search_result=linked(SEARCH_ARTIFACT),
        description=f"ZenML model {model_version.model.name}:{model_version.name}",
        summary=linked(SUMMARY_ARTIFACT),
    )


def from_artifact(reference: str, *, allow_unsafe: bool = False) -> ZenmlSources:
    """A ZenML artifact holding a Keras model: its version id, ``NAME`` or ``NAME:VERSION``.

    ``allow_unsafe`` lets the model's ``Lambda`` layers load (their code runs): for this
    call's load only.

    Raises:
        InvalidOptionError: no such artifact, or it holds no Keras model.
        InvalidModelError: the model holds ``Lambda`` layers and ``allow_unsafe`` is False.
    """
    from zenml.client import Client

    name, version = _split(reference)
    try:
        artifact = Client().get_artifact_version(name, version)
    except KeyError as exc:
        raise InvalidOptionError(f"No ZenML artifact {reference!r}: {exc}") from None
    with _model_loading(allow_unsafe):
        model = artifact.load()
    if not hasattr(model, "layers"):
        raise InvalidOptionError(
            f"Artifact {reference!r} holds a {type(model).__name__}, not a Keras model."
        )
    return ZenmlSources(
        model=model, description=f"ZenML artifact {artifact.name}:{artifact.version}"
    )
