"""The plugin's materializers, as a user's project would import them."""

from zenml_quant.integration.materializers import (
    CalibratedModelMaterializer,
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    SearchResultMaterializer,
    TFLiteModelMaterializer,
)

__all__ = [
    "CalibratedModelMaterializer",
    "KerasModelMaterializer",
    "LabeledDatasetMaterializer",
    "SearchResultMaterializer",
    "TFLiteModelMaterializer",
]
