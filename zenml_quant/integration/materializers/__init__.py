"""Materializers for the types zenml-quant steps pass around. Never pickle."""

from .dataset import LabeledDatasetMaterializer
from .keras_model import KerasModelMaterializer
from .tflite_model import TFLiteModelMaterializer

__all__ = ["KerasModelMaterializer", "LabeledDatasetMaterializer", "TFLiteModelMaterializer"]
