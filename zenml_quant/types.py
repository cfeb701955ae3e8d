"""Types that cross a step boundary.

All are frozen dataclasses. Those made of plain values (reports, summaries) round-trip through
ZenML's built-in dataclass materializer; :class:`LabeledDataset` and :class:`TFLiteModel` carry
arrays or bytes and have materializers of their own in :mod:`zenml_quant.integration`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import InvalidOptionError
from .targets import Targets

__all__ = [
    "MIXED_MODE",
    "PTQ_STATUSES",
    "PTQResult",
    "QATOptions",
    "QAT_MONITORS",
    "QuantizationAttempt",
    "MODES",
    "SPLITS",
    "BaselineSummary",
    "CalibratedModel",
    "CandidateResult",
    "ConversionOptions",
    "Evaluation",
    "LabeledDataset",
    "Latency",
    "Mode",
    "Preprocessing",
    "Split",
    "TFLiteModel",
    "TensorDetails",
]

Mode = Literal["float32", "dynamic_range", "float16", "int8", "int16x8"]
#: The mode of an int8 model that keeps some layers in float (``TFLiteModel.float_layers``).
MIXED_MODE = "mixed"
#: The conversion modes, in the order reports list them. ``w4a8`` (int4 weights on every layer
#: with weights, int8 activations) is built by ai-edge-quantizer, the others by the converter.
MODES: tuple[str, ...] = ("float32", "dynamic_range", "float16", "int8", "int16x8", "w4a8")

Split = Literal["train", "validation", "test"]
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Preprocessing:
    """What was done to the raw data, so the same can be done on the device.

    Integer inputs became ``float32(x) * scale + offset``; float inputs were left as they were
    (``applied`` is False then).
    """

    scale: float
    offset: float
    applied: bool
    channel_axis_added: bool
    source: str


@dataclass(frozen=True, eq=False)
class LabeledDataset:
    """Features and labels in train / validation / test splits.

    Searches and accuracy budgets decide on ``validation``; reports use ``test``. The two never
    share an example, and ``validation_source`` says where validation came from (given by the
    user, held out from the test split, or carved from train, which the model may have seen).

    Labels are either classes, int64 indices in ``[0, len(class_names))``, or values (e.g.
    regression targets): float32 arrays of one per-example shape and ``class_names=()``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    validation_source: str = ""
    #: The task the data was fitted to a model for (:func:`zenml_quant.conform.fit_to_model`);
    #: empty until then, which scorers read as classification.
    task: str = ""
    #: The metric that task is judged by (:meth:`zenml_quant.metrics.Metric.to_dict`); None
    #: until fitted, which scorers read as top-1 accuracy.
    metric: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        """How many classes the labels index (0 when the labels are values)."""
        return len(self.class_names)

    @property
    def has_classes(self) -> bool:
        """True when the labels are class indices, False when they are values."""
        return bool(self.class_names)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one example (no batch axis)."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"``, ``"validation"`` or ``"test"``."""
        if name == "train":
            return self.x_train, self.y_train
        if name == "validation":
            return self.x_val, self.y_val
        if name == "test":
            return self.x_test, self.y_test
        raise ValueError(f"Unknown split {name!r}: use one of {', '.join(SPLITS)}.")


@dataclass(frozen=True)
class ConversionOptions:
    """Knobs of the TFLite conversion that a mode name alone does not fix.

    ``calibration_samples`` train examples (drawn with ``seed``) calibrate the activation ranges
    of ``int8`` and ``int16x8``. ``quantized_io`` makes those modes take and return integer
    tensors (int8, or int16 for ``int16x8``) instead of float32 with (de)quantize ops at the
    edges; an integer-only microcontroller needs it. ``compact_names`` keeps only the first
    part of each fused tensor name (the op that produces the tensor, which still names its Keras
    layer): the converter joins every fused op's name with ``;``, which costs ~0.6 KB on a small
    CNN, over 1 % of an int8 file. Signatures, I/O and results are unchanged.
    """

    calibration_samples: int = 500
    quantized_io: bool = True
    seed: int = 0
    compact_names: bool = True


# What early stopping may watch: Keras' names for the training and validation figures.
QAT_MONITORS = ("val_accuracy", "val_loss", "accuracy", "loss")


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class QATOptions:
    """How the QAT model is fine-tuned.

    A few epochs at a small learning rate are enough: the weights start from the trained float
    model and only need to adapt to int8 rounding. ``early_stopping_patience`` epochs without
    improvement of ``monitor`` stop training and restore the best epoch's weights (0 turns it
    off; then the last epoch's weights are kept). ``monitor`` is one of ``val_accuracy``,
    ``val_loss``, ``accuracy``, ``loss``. ``seed`` seeds Python, NumPy and TensorFlow.
    """

    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-4
    early_stopping_patience: int = 2
    monitor: str = "val_accuracy"
    seed: int = 0

    def __post_init__(self) -> None:
        # Checked on construction, so an unusable options object never exists.
        problems = []
        if not _is_integer(self.epochs) or self.epochs < 1:
            problems.append(f"epochs={self.epochs!r} (must be an integer >= 1)")
        if not _is_integer(self.batch_size) or self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size!r} (must be an integer >= 1)")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            problems.append(f"learning_rate={self.learning_rate!r} (must be > 0, e.g. 1e-4)")
        if not _is_integer(self.early_stopping_patience) or self.early_stopping_patience < 0:
            problems.append(
                f"early_stopping_patience={self.early_stopping_patience!r} "
                "(must be an integer >= 0; 0 turns early stopping off)"
            )
        if self.monitor not in QAT_MONITORS:
            problems.append(f"monitor={self.monitor!r} (must be one of {', '.join(QAT_MONITORS)})")
        if not _is_integer(self.seed):
            problems.append(f"seed={self.seed!r} (must be an integer)")
        if problems:
            raise InvalidOptionError(f"Invalid QATOptions: {'; '.join(problems)}.")


@dataclass(frozen=True)
class TensorDetails:
    """An input or output of a TFLite model, with its (per-tensor) quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0


class _Flatbuffer:
    """``size_bytes`` and ``ok`` of a dataclass holding ``content`` bytes and an ``error``."""

    content: bytes
    error: str | None

    @property
    def size_bytes(self) -> int:
        """Length of the flatbuffer in bytes (0 for a failed one)."""
        return len(self.content)

    @property
    def ok(self) -> bool:
        """True unless ``error`` says why there is no usable file."""
        return self.error is None


@dataclass(frozen=True, eq=False)
class TFLiteModel(_Flatbuffer):
    """A converted model: the flatbuffer and what we know about it.

    ``error`` is set when the converter produced a file that the interpreter cannot allocate
    (seen with some ``int16x8`` models); such a candidate is reported as failed, not raised.
    ``float_layers`` names the Keras layers a mixed-precision model keeps in float (mode
    ``"mixed"``); ``notes`` carries warnings a user should see next to the figures (e.g. a
    calibration set too small to trust). A model built by ai-edge-quantizer
    (:mod:`zenml_quant.mixed_precision`) lists ``precisions``, ``(layer, precision)`` for each
    quantizable layer as read from the file, and the JSON ``recipe`` that built it.
    """

    content: bytes
    mode: str
    options: ConversionOptions
    operators: tuple[str, ...]
    inputs: tuple[TensorDetails, ...]
    outputs: tuple[TensorDetails, ...]
    peak_activation_bytes: int | None = None
    source_model: str = ""
    error: str | None = None
    float_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    precisions: tuple[tuple[str, str], ...] = ()
    recipe: str = ""


@dataclass(frozen=True, eq=False)
class CalibratedModel(_Flatbuffer):
    """A Keras model converted to float TFLite with the activation ranges it showed on the
    calibration examples: what every int8 model of it is quantized from.

    Calibration (running the float model on ``samples`` examples) costs about a whole int8
    conversion; quantizing a calibrated model costs milliseconds. So the int8 conversion, the
    sensitivity profile and the int8 model with float layers of one run share one of these
    (:mod:`zenml_quant.calibration`). ``model_fingerprint`` and ``data_fingerprint`` identify
    the Keras model (its layers and weights) and the examples it was calibrated on, so a
    calibrated model is never used for another model or other data. ``error`` is set when
    the model could not be calibrated: every model quantized from it fails with that reason.
    """

    content: bytes
    options: ConversionOptions
    source_model: str
    model_fingerprint: str
    data_fingerprint: str
    samples: int
    notes: tuple[str, ...] = ()
    recurrent: bool = False
    scored_output: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The quality of a model on one split: ``accuracy`` holds the value of ``metric`` (top-1
    accuracy unless the task has another metric, see :mod:`zenml_quant.metrics`); ``metrics``
    any other figures (the model's compiled Keras metrics)."""

    split: str
    n_samples: int
    accuracy: float
    metrics: dict[str, float] = field(default_factory=dict)
    metric: str = "top1"


@dataclass(frozen=True)
class Latency:
    """Single-inference latency (batch 1) over ``runs`` timed runs after a warm-up."""

    p50_ms: float
    mean_ms: float
    p95_ms: float
    threads: int
    runs: int


@dataclass(frozen=True)
class BaselineSummary:
    """Key figures of the Keras model before any compression."""

    model_name: str
    flavour: str
    split: str
    n_samples: int
    accuracy: float
    metrics: dict[str, float]
    params: int
    trainable_params: int
    macs: int
    float32_weight_bytes: int
    peak_activation_bytes: int
    float_tflite_bytes: int
    #: What ``accuracy`` measures (a :data:`zenml_quant.metrics.METRICS` name or user function).
    metric: str = "top1"
    higher_is_better: bool = True
    #: The task the model was judged as, and where the validation split came from (sizes).
    task: str = "classification"
    validation_source: str = ""


@dataclass(frozen=True)
class CandidateResult:
    """One compressed candidate, evaluated: a row of the comparison report. ``accuracy`` is the
    value of ``metric`` on ``split``."""

    name: str
    mode: str
    size_bytes: int
    accuracy: float | None
    split: str
    metrics: dict[str, float]
    latency_ms_p50: float | None
    threads: int
    peak_activation_bytes: int | None
    operators: tuple[str, ...]
    error: str | None = None
    float_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    metric: str = "top1"
    #: ``(layer, precision)`` of a per-layer precision model, as its file holds them.
    precisions: tuple[tuple[str, str], ...] = ()


#: Outcomes of post-training quantization (:class:`PTQResult.status`).
PTQ_STATUSES: tuple[str, ...] = ("converted", "budget met", "budget not met", "failed")


@dataclass(frozen=True)
class QuantizationAttempt:
    """One model tried by accuracy control: which layers stayed float and what it scored."""

    step: int
    action: str
    float_layers: tuple[str, ...]
    accuracy: float
    drop: float
    size_bytes: int
    meets_budget: bool


@dataclass(frozen=True, eq=False)
class PTQResult:
    """A post-training quantized model and how it was chosen.

    ``status`` is ``"converted"`` (a plain or selective conversion, no budget), ``"budget met"``
    or ``"budget not met"``; in the last case ``model`` is the best attempt and ``reason`` says
    why nothing better was found, and the deployment gate decides what happens next.
    ``accuracy`` and ``reference_accuracy`` (the float Keras model) are on ``split`` when a
    budget was checked, else None.
    """

    model: TFLiteModel
    status: str
    reason: str
    split: str
    budget: Targets | None = None
    reference_accuracy: float | None = None
    accuracy: float | None = None
    attempts: tuple[QuantizationAttempt, ...] = ()

    @property
    def float_layers(self) -> tuple[str, ...]:
        return self.model.float_layers
