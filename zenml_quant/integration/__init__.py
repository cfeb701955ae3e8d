"""The ZenML layer of zenml-quant: steps, materializers and pipelines.

This subpackage is the only part of zenml-quant that imports ZenML; the core works on plain
Keras models, numpy arrays and TFLite bytes.
"""

from .materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    TFLiteModelMaterializer,
)
from .pipelines import compress_pipeline
from .steps import (
    compare_candidates,
    convert_to_tflite,
    evaluate_baseline,
    evaluate_tflite_model,
    load_keras_model,
    load_labeled_dataset,
    profile_sensitivity,
    quantization_aware_training,
    quantize_post_training,
)

__all__ = [
    "KerasModelMaterializer",
    "LabeledDatasetMaterializer",
    "TFLiteModelMaterializer",
    "compare_candidates",
    "compress_pipeline",
    "convert_to_tflite",
    "evaluate_baseline",
    "evaluate_tflite_model",
    "load_keras_model",
    "load_labeled_dataset",
    "profile_sensitivity",
    "quantization_aware_training",
    "quantize_post_training",
]
