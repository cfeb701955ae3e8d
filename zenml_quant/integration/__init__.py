"""The ZenML layer of zenml-quant: steps, materializers and pipelines.

This subpackage is the only part of zenml-quant that imports ZenML; the core works on plain
Keras models, numpy arrays and TFLite bytes.
"""

from .device_steps import benchmark_on_device, gate_inputs
from .gate_step import deployment_gate
from .materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    SearchResultMaterializer,
    TFLiteModelMaterializer,
)
from .pipelines import (
    build_retrain_and_compress,
    compress_pipeline,
    nas_pipeline,
    retrain_and_compress,
    schedule_retrain_and_compress,
)
from .search_steps import apply_edits, search_architecture, search_candidate
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
    train_demo_model_step,
)

__all__ = [
    "KerasModelMaterializer",
    "LabeledDatasetMaterializer",
    "SearchResultMaterializer",
    "TFLiteModelMaterializer",
    "apply_edits",
    "nas_pipeline",
    "search_architecture",
    "search_candidate",
    "benchmark_on_device",
    "build_retrain_and_compress",
    "deployment_gate",
    "gate_inputs",
    "retrain_and_compress",
    "schedule_retrain_and_compress",
    "train_demo_model_step",
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
