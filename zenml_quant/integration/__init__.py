"""The ZenML layer of zenml-quant: steps, materializers and pipelines.

This subpackage is the only part of zenml-quant that imports ZenML; the core works on plain
Keras models, numpy arrays and TFLite bytes. Names load on first use, so the CLI can check its
options before ZenML and TensorFlow are imported.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CompressConfig": "configs",
    "DataConfig": "configs",
    "GateConfig": "configs",
    "NasConfig": "configs",
    "RetrainConfig": "configs",
    "SearchConfig": "configs",
    "benchmark_on_device": "steps",
    "gate_inputs": "steps",
    "deployment_gate": "steps",
    "CalibratedModelMaterializer": "materializers",
    "KerasModelMaterializer": "materializers",
    "LabeledDatasetMaterializer": "materializers",
    "SearchResultMaterializer": "materializers",
    "TFLiteModelMaterializer": "materializers",
    "build_retrain_and_compress": "pipelines",
    "compress_pipeline": "pipelines",
    "nas_pipeline": "pipelines",
    "retrain_and_compress": "pipelines",
    "schedule_retrain_and_compress": "pipelines",
    "allocate_precisions": "steps",
    "apply_edits": "steps",
    "int4_aware_qat": "steps",
    "recalibrate_batchnorm": "steps",
    "search_architecture": "steps",
    "search_candidate": "steps",
    "calibrate": "steps",
    "compare_candidates": "steps",
    "convert_to_tflite": "steps",
    "evaluate_baseline": "steps",
    "evaluate_tflite_model": "steps",
    "load_keras_model": "steps",
    "load_labeled_dataset": "steps",
    "profile_sensitivity": "steps",
    "quantization_aware_training": "steps",
    "quantize_post_training": "steps",
    "summarize_run": "steps",
    "train_demo_model_step": "steps",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
