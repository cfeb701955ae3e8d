"""Materializers for the types zenml-quant steps pass around. Never pickle."""

from .dataset import LabeledDatasetMaterializer
from .keras_model import KerasModelMaterializer
from .search_result import SearchResultMaterializer
from .tflite_model import TFLiteModelMaterializer

__all__ = [
    "KerasModelMaterializer",
    "LabeledDatasetMaterializer",
    "SearchResultMaterializer",
    "TFLiteModelMaterializer",
]
