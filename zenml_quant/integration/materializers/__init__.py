"""Materializers for the types zenml-quant steps pass around. Never pickle.

Each loads on first use, so a step that needs only the TFLite one (the deployment gate) does not
load TensorFlow through the Keras one. Steps name their materializers explicitly, and ZenML
records each artifact's materializer, so nothing relies on importing them all up front.
"""

from __future__ import annotations

from ..._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CalibratedModelMaterializer": "calibrated_model",
    "KerasModelMaterializer": "keras_model",
    "LabeledDatasetMaterializer": "dataset",
    "SearchResultMaterializer": "search_result",
    "TFLiteModelMaterializer": "tflite_model",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
