"""Demo-only step: train the small digits CNN inside a pipeline (not shipped in the wheel)."""

from typing import Annotated, Any

from zenml import step

from zenml_quant.demo import train_demo_model
from zenml_quant.integration.materializers import KerasModelMaterializer
from zenml_quant.types import LabeledDataset


@step(output_materializers=KerasModelMaterializer)
def train_demo_model_step(
    dataset: LabeledDataset, epochs: int = 15
) -> Annotated[Any, "zq_demo_model"]:
    """Train the demo CNN on ``dataset``."""
    return train_demo_model(dataset, epochs=epochs)
