"""zenml-quant: make a trained Keras model fit an edge device.

The core (this namespace) works without ZenML; ``zenml_quant.integration`` holds the ZenML
steps, materializers, pipelines and the CLI.
"""

# First, before any submodule can import TensorFlow: _compat picks the Keras flavour, which
# TensorFlow reads when it loads.
from . import _compat  # noqa: F401, I001

from .baseline import profile_baseline
from .convert import convert_model, inspect_tflite
from .datasets import conform_to_model, load_dataset
from .errors import (
    ConstraintNotMetError,
    ConversionError,
    DeviceUnreachableError,
    InvalidDatasetError,
    InvalidModelError,
    InvalidOptionError,
    ZenmlQuantError,
)
from .gate import CandidateMeasurements, GateDecision, GatePolicy, decide
from .benchmark import BenchmarkOptions, BenchmarkResult, LocalBenchmarker
from .evaluate import evaluate_candidate, evaluate_keras, evaluate_tflite
from .interpreter import measure_latency, run_tflite
from .models import check_model, input_shape, load_model, num_outputs
from .profile import layer_table, peak_activation_bytes
from .ptq import quantize_post_training, quantize_with_accuracy_budget
from .qat import QATOptions, QATResult, quantization_aware_training
from .selective import SelectiveQuantizer, convert_selective
from .sensitivity import SensitivityReport, profile_sensitivity
from .types import (
    MODES,
    AccuracyBudget,
    PTQResult,
    QuantizationAttempt,
    BaselineSummary,
    CandidateResult,
    ConversionOptions,
    Evaluation,
    LabeledDataset,
    Latency,
    TFLiteModel,
)

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "BenchmarkOptions",
    "BenchmarkResult",
    "CandidateMeasurements",
    "ConstraintNotMetError",
    "DeviceUnreachableError",
    "GateDecision",
    "GatePolicy",
    "LocalBenchmarker",
    "AccuracyBudget",
    "PTQResult",
    "QATOptions",
    "QATResult",
    "QuantizationAttempt",
    "SelectiveQuantizer",
    "SensitivityReport",
    "BaselineSummary",
    "CandidateResult",
    "ConversionError",
    "ConversionOptions",
    "Evaluation",
    "InvalidDatasetError",
    "InvalidModelError",
    "InvalidOptionError",
    "LabeledDataset",
    "Latency",
    "TFLiteModel",
    "ZenmlQuantError",
    "check_model",
    "conform_to_model",
    "convert_model",
    "convert_selective",
    "decide",
    "evaluate_candidate",
    "evaluate_keras",
    "evaluate_tflite",
    "input_shape",
    "inspect_tflite",
    "layer_table",
    "load_dataset",
    "load_model",
    "measure_latency",
    "num_outputs",
    "peak_activation_bytes",
    "profile_baseline",
    "profile_sensitivity",
    "quantization_aware_training",
    "quantize_post_training",
    "quantize_with_accuracy_budget",
    "run_tflite",
]
