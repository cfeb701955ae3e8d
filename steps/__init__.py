"""This repository's ZenML project: the plugin's steps, plus demo-only ones."""

from zenml_quant.integration import (
    allocate_precisions,
    apply_edits,
    benchmark_on_device,
    deployment_gate,
    gate_inputs,
    int4_aware_qat,
    recalibrate_batchnorm,
    search_architecture,
    search_candidate,
)
from zenml_quant.integration.steps import (
    calibrate,
    compare_candidates,
    convert_to_tflite,
    evaluate_baseline,
    evaluate_tflite_model,
    load_keras_model,
    load_labeled_dataset,
    profile_sensitivity,
    quantization_aware_training,
    quantize_post_training,
    summarize_run,
)

from .train_demo_model import train_demo_model_step

__all__ = [
    "allocate_precisions",
    "apply_edits",
    "search_architecture",
    "search_candidate",
    "benchmark_on_device",
    "deployment_gate",
    "gate_inputs",
    "int4_aware_qat",
    "recalibrate_batchnorm",
    "calibrate",
    "compare_candidates",
    "convert_to_tflite",
    "evaluate_baseline",
    "evaluate_tflite_model",
    "load_keras_model",
    "load_labeled_dataset",
    "profile_sensitivity",
    "quantization_aware_training",
    "quantize_post_training",
    "summarize_run",
    "train_demo_model_step",
]
