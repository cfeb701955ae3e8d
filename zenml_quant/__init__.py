"""zenml-quant: make a trained Keras model fit an edge device.

The core (this namespace) works without ZenML; ``zenml_quant.integration`` holds the ZenML
steps, materializers, pipelines and the CLI.

Names are imported on first use: ``import zenml_quant`` is instant, and TensorFlow loads only
when a name that needs it is touched (the CLI checks its options before that).
"""

from __future__ import annotations

# Before anything can import TensorFlow: the Keras flavour is read when TensorFlow loads.
from . import _keras_env  # noqa: F401
from ._lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "profile_baseline": "baseline",
    "calibrate": "calibration",
    "int8_from_calibrated": "calibration",
    "convert_model": "convert",
    "inspect_tflite": "convert",
    "conform_to_model": "conform",
    "load_dataset": "datasets",
    "ConstraintNotMetError": "errors",
    "ConversionError": "errors",
    "DeviceUnreachableError": "errors",
    "InvalidDatasetError": "errors",
    "InvalidModelError": "errors",
    "InvalidOptionError": "errors",
    "ZenmlQuantError": "errors",
    "CandidateMeasurements": "gate",
    "Champion": "gate",
    "GateDecision": "gate",
    "GateOptions": "gate",
    "decide": "gate",
    "BenchmarkOptions": "benchmark",
    "BenchmarkResult": "benchmark",
    "LocalBenchmarker": "benchmark",
    "evaluate_candidate": "evaluate",
    "evaluate_keras": "evaluate",
    "evaluate_tflite": "evaluate",
    "measure_latency": "interpreter",
    "run_tflite": "interpreter",
    "check_model": "models",
    "input_shape": "models",
    "load_model": "models",
    "num_outputs": "models",
    "layer_table": "profile",
    "peak_activation_bytes": "profile",
    "quantize_post_training": "ptq",
    "quantize_with_accuracy_budget": "ptq",
    "QATOptions": "qat",
    "QATResult": "qat",
    "quantization_aware_training": "qat",
    "SelectiveQuantizer": "selective",
    "PrecisionQuantizer": "mixed_precision",
    "convert_uniform": "mixed_precision",
    "PRECISIONS": "precisions",
    "parse_precisions": "precisions",
    "PrecisionProfile": "precision_profile",
    "profile_precisions": "precision_profile",
    "Allocation": "allocate",
    "allocate_precisions": "allocate",
    "convert_selective": "selective",
    "SensitivityReport": "sensitivity",
    "profile_sensitivity": "sensitivity",
    "RunSummary": "summary",
    "DEFAULT_MAX_ACCURACY_DROP": "targets",
    "Targets": "targets",
    "MODES": "types",
    "BaselineSummary": "types",
    "CandidateResult": "types",
    "CalibratedModel": "types",
    "ConversionOptions": "types",
    "Evaluation": "types",
    "LabeledDataset": "types",
    "Latency": "types",
    "PTQResult": "types",
    "QuantizationAttempt": "types",
    "TFLiteModel": "types",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
