"""The demo trainer step; it lives in the plugin, as the default of ``retrain_and_compress``."""

from zenml_quant.integration.steps import train_demo_model_step

__all__ = ["train_demo_model_step"]
