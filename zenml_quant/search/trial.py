"""Evaluate one candidate: build it from the plan, fine-tune, convert, measure.

:func:`evaluate_trial` is what every executor runs, in this process or in a worker: it takes a
picklable :class:`SearchContext` (the original model as ``.keras`` bytes, the data, the options)
and a :class:`TrialTask`, and never raises. Anything that goes wrong (the model does not build,
training diverges, the converter refuses, memory runs out) becomes a failed record with the
reason, and the search goes on.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import is_keras3_model, tf
from ..benchmark import BenchmarkOptions, LocalBenchmarker
from ..convert import convert_model
from ..errors import InvalidOptionError
from ..interpreter import run_tflite
from ..metrics import metric_from_dict
from ..models import load_model
from ..selective import convert_selective
from ..types import ConversionOptions
from .energy import EnergyTable, estimate_energy
from .finetune import FineTuneOptions, fine_tune
from .rebuild import apply_edits
from .recalibrate import outputs_of, recalibrated
from .space import SearchSpace, SpaceOptions
from .types import FAILED, OK, TrialOutcome, TrialRecord, TrialTask

__all__ = [
    "Cancelled",
    "EvaluationOptions",
    "SearchContext",
    "evaluate_trial",
    "keras_bytes",
    "load_keras_bytes",
    "native_failure",
]

logger = logging.getLogger(__name__)

#: Quick timing: enough to rank candidates, not a final figure (the benchmark step gives that).
SEARCH_BENCHMARK = BenchmarkOptions(threads=(1,), warmup=5, min_runs=30, min_seconds=0.2)


@dataclass(frozen=True)
class EvaluationOptions:
    """How candidates are measured.

    ``quantize``: full int8 (with the plan's float32 layers kept in float) or, when False,
    ``float_mode`` TFLite (``"float32"``, or ``"float16"`` weights). ``calibration_samples``: train examples for int8 calibration.
    ``measure_latency``: time each candidate with ``benchmarker`` (default: this machine, one
    thread); needed for a latency target. ``estimate_energy``: the per-inference energy
    estimate from ``energy_table``. ``precisions`` (e.g. ``("int4", "int8", "float")``): each
    int8 candidate gets one precision per layer from the allocator
    (:func:`zenml_quant.allocate.allocate_precisions`), losing at most ``precision_budget``
    (points of a fraction metric, else a fraction of the value) against its own Keras model,
    instead of int8 with the plan's float32 layers; a plan that sets precisions itself keeps them.
    ``reestimate_batchnorm``: after the edits (and the fine-tune), a candidate with BatchNorm
    layers gets their statistics recomputed on up to ``batchnorm_examples`` train examples
    (:mod:`zenml_quant.batchnorm`), kept when that scores better on validation: edited and
    briefly fine-tuned layers leave the moving averages behind.
    """

    fine_tune: FineTuneOptions = field(default_factory=FineTuneOptions)
    quantize: bool = True
    float_mode: str = "float32"
    calibration_samples: int = 200
    measure_latency: bool = True
    benchmark: BenchmarkOptions = SEARCH_BENCHMARK
    benchmarker: Any = None
    estimate_energy: bool = True
    energy_table: EnergyTable = field(default_factory=EnergyTable)
    precisions: tuple[str, ...] = ()
    precision_budget: float = 0.005
    reestimate_batchnorm: bool = True
    batchnorm_examples: int = 2048

    @property
    def allocates(self) -> bool:
        """Whether each candidate's precisions come from the allocator (any besides int8)."""
        return bool(set(self.precisions) - {"int8"})

    def __post_init__(self) -> None:
        if self.precisions:
            from ..precisions import parse_precisions

            object.__setattr__(self, "precisions", parse_precisions(self.precisions))
        if not 0 <= self.precision_budget < 1:
            raise InvalidOptionError(
                f"precision_budget must be in [0, 1), got {self.precision_budget!r}."
            )
        if self.float_mode not in ("float32", "float16"):
            raise InvalidOptionError(
                f"float_mode must be 'float32' or 'float16', got {self.float_mode!r}."
            )
        if isinstance(self.batchnorm_examples, bool) or self.batchnorm_examples < 1:
            raise InvalidOptionError(
                f"batchnorm_examples must be >= 1, got {self.batchnorm_examples!r}."
            )
        if isinstance(self.calibration_samples, bool) or self.calibration_samples < 1:
            raise InvalidOptionError(
                f"calibration_samples must be >= 1, got {self.calibration_samples!r}."
            )
        if self.benchmarker is not None and not hasattr(self.benchmarker, "run"):
            raise InvalidOptionError(
                "benchmarker must have a run(model, options=, x=, y=) method, e.g. "
                "LocalBenchmarker() or SSHBenchmarker(...)."
            )


@dataclass(frozen=True, eq=False)
class SearchContext:
    """Everything a worker needs, sent to it once: plain bytes, arrays and options."""

    model_bytes: bytes = field(repr=False)
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_val: np.ndarray = field(repr=False)
    y_val: np.ndarray = field(repr=False)
    options: EvaluationOptions
    space_options: SpaceOptions
    teacher_logits: np.ndarray | None = field(default=None, repr=False)
    keep_models: bool = True
    #: The task and metric (:meth:`Metric.to_dict`) candidates are trained and scored by.
    task: str = "classification"
    metric: dict[str, Any] | None = None


class Cancelled(BaseException):
    """Raised by a ``progress`` callback to stop an evaluation.

    A BaseException (like ``asyncio.CancelledError``), so that :func:`evaluate_trial`, which
    turns every error into a failed trial, lets it through to the caller who asked for it.
    """


PhaseFn = Callable[[str, "float | None"], None]

# Per-process cache: a worker loads the original model and its space once per context.
_LOADED: dict[int, tuple[Any, SearchSpace]] = {}


def keras_bytes(model: Any) -> bytes:
    """A Keras model as the bytes of a ``.keras`` file."""
    with tempfile.TemporaryDirectory(prefix="zq-model-") as tmp:
        path = Path(tmp) / "model.keras"
        if is_keras3_model(model):
            model.save(str(path))
        else:
            # Named outright: tf_keras infers the format from a per-thread flag that its own
            # load_model() leaves off in any thread but the main one, and would write HDF5.
            model.save(str(path), save_format="keras_v3")
        return path.read_bytes()


def load_keras_bytes(content: bytes) -> Any:
    """The model a ``.keras`` file's bytes hold (through the package's safe loader)."""
    with tempfile.TemporaryDirectory(prefix="zq-model-") as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(content)
        return load_model(path)


def _original(context: SearchContext) -> tuple[Any, SearchSpace]:
    key = id(context)
    if key not in _LOADED:
        _LOADED.clear()  # one search at a time per process; drop an older context's model
        model = load_keras_bytes(context.model_bytes)
        _LOADED[key] = (model, SearchSpace(model, context.space_options))
    return _LOADED[key]


def evaluate_trial(
    context: SearchContext, task: TrialTask, *, progress: PhaseFn | None = None
) -> TrialOutcome:
    """Build, fine-tune, convert and measure ``task.plan``; never raises, but for cancellation.

    ``progress(phase, fraction)`` is called at each phase ("building", "fine-tuning" with the
    fraction of its batches done, "converting", "evaluating", "benchmarking") and may raise
    :class:`Cancelled`, which is passed on.
    """
    start = time.perf_counter()
    try:
        return _evaluate(context, task, start, progress or _no_progress)
    except Exception as exc:  # every failure is a result: the search goes on
        return failed_outcome(task, describe_trial_failure(exc), time.perf_counter() - start)


def failed_outcome(task: TrialTask, error: str, seconds: float = 0.0) -> TrialOutcome:
    """The outcome of a trial that could not be measured."""
    record = TrialRecord(
        trial=task.trial, plan=task.plan, status=FAILED, seconds=seconds, error=error
    )
    return TrialOutcome(record)


def describe_trial_failure(exc: BaseException) -> str:
    """One line: what went wrong and, where we know it, what to do."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0][:300] if lines else ""
    if isinstance(exc, (MemoryError, tf.errors.ResourceExhaustedError)):
        return f"out of memory ({type(exc).__name__}): narrow the space's scales or batch size"
    if isinstance(exc, tf.errors.OpError) and len(lines) > 1:
        # "Graph execution error:" says nothing; the runtime's own message comes last.
        first = f"{first} {lines[-1][:300]}"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


#: TensorFlow errors that say its runtime went wrong rather than the candidate: the process
#: that raised them may be left corrupted (see :func:`native_failure`).
NATIVE_ERRORS = ("AbortedError", "InternalError")


def native_failure(outcome: Any) -> str | None:
    """Why ``outcome`` (a :class:`TrialOutcome`) reports native trouble, or None.

    Passed to the executor, so a process pool runs such a trial again in a fresh worker, and
    then without oneDNN, as it does a trial whose worker crashed.
    """
    record = getattr(outcome, "record", None)
    error = getattr(record, "error", None) or ""
    if getattr(record, "status", None) == FAILED and error.startswith(NATIVE_ERRORS):
        return error.split(":", 1)[0] + " from TensorFlow's runtime"
    return None


def _no_progress(phase: str, fraction: float | None) -> None:
    return None


class _PhaseClock:
    """Passes progress on and adds up the time spent in each phase (a phase lasts until the
    next one starts; a phase met twice, such as evaluating, adds up)."""

    def __init__(self, progress: PhaseFn) -> None:
        self._progress = progress
        self._phase: str | None = None
        self._since = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str, fraction: float | None) -> None:
        if phase != self._phase:
            self._close()
            self._phase = phase
        self._progress(phase, fraction)

    def _close(self) -> None:
        now = time.perf_counter()
        if self._phase is not None:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._since = now

    def finish(self) -> tuple[tuple[str, float], ...]:
        self._close()
        self._phase = None
        return tuple(self.seconds.items())


def _evaluate(
    context: SearchContext, task: TrialTask, start: float, progress: PhaseFn
) -> TrialOutcome:
    options = context.options
    progress = clock = _PhaseClock(progress)
    progress("building", None)
    original, space = _original(context)
    edited = apply_edits(original, task.plan, seed=task.seed, space=space).model
    losses: list[float] = []
    if task.fine_tune:
        progress("fine-tuning", 0.0)
        losses = fine_tune(
            edited,
            context.x_train,
            context.y_train,
            task.fine_tune_options or options.fine_tune,
            teacher_logits=context.teacher_logits,
            seed=task.seed,
            on_batch=lambda done, total: progress("fine-tuning", done / total),
            task=context.task,
            reference=original,
        )
    if (losses and not np.isfinite(losses[-1])) or not _finite_weights(edited):
        return failed_outcome(
            task,
            "training diverged (NaN or infinite loss/weights): lower FineTuneOptions.learning_rate",
            time.perf_counter() - start,
        )
    progress("evaluating", None)
    metric = metric_from_dict(context.metric)
    x_val, y_val = context.x_val, context.y_val
    keras_accuracy = metric.score(outputs_of(edited, x_val), y_val, x_val)
    notes: tuple[str, ...] = ()
    if options.reestimate_batchnorm and len(task.plan):
        edited, keras_accuracy, note = recalibrated(
            edited,
            context.x_train,
            x_val,
            y_val,
            metric,
            max_examples=options.batchnorm_examples,
            seed=task.seed,
            quality=keras_accuracy,
        )
        notes = (note,) if note else ()
    progress("converting", None)
    tflite = _convert(edited, task, context)
    if tflite.error:
        return failed_outcome(task, tflite.error, time.perf_counter() - start)
    progress("evaluating", None)
    accuracy = metric.score(run_tflite(tflite, x_val), y_val, x_val)
    latency = None
    if options.measure_latency:
        progress("benchmarking", None)
        benchmarker = options.benchmarker or LocalBenchmarker()
        result = benchmarker.run(tflite, options=options.benchmark)[0]
        if result.error:
            return failed_outcome(
                task, f"benchmark failed: {result.error}", time.perf_counter() - start
            )
        latency = result.p50_ms
    energy = None
    if options.estimate_energy:
        energy = estimate_energy(
            edited,
            float_layers=tflite.float_layers or task.plan.float_layers(),
            quantized=options.quantize,
            table=options.energy_table,
        ).total_uj
    phases = clock.finish()
    record = TrialRecord(
        trial=task.trial,
        plan=task.plan,
        status=OK,
        seconds=time.perf_counter() - start,
        accuracy=accuracy,
        keras_accuracy=keras_accuracy,
        size_bytes=len(tflite.content),
        peak_memory_bytes=tflite.peak_activation_bytes,
        latency_ms=latency,
        energy_uj=energy,
        params=int(edited.count_params()),
        macs=_macs(edited),
        notes=(*tflite.notes, *notes),
        phase_seconds=phases,
    )
    keep = context.keep_models
    return TrialOutcome(record, tflite.content, keras_bytes(edited) if keep else None)


def _convert(model: Any, task: TrialTask, context: SearchContext) -> Any:
    options = context.options
    conversion = ConversionOptions(calibration_samples=options.calibration_samples, seed=task.seed)
    if not options.quantize:
        return convert_model(model, options.float_mode, options=conversion)
    chosen = task.plan.precisions()
    if options.allocates and not chosen:
        return _allocated(model, context, conversion)
    if any(p != "float32" for p in chosen.values()):
        from ..mixed_precision import PrecisionQuantizer  # ai-edge-quantizer, only when asked

        plan = {layer: "float" if p == "float32" else p for layer, p in chosen.items()}
        quantizer = PrecisionQuantizer(model, context.x_train, options=conversion)
        return quantizer.quantize(plan)
    floats = task.plan.float_layers()
    if floats:
        return convert_selective(
            model, representative_data=context.x_train, float_layers=floats, options=conversion
        )
    return convert_model(model, "int8", representative_data=context.x_train, options=conversion)


def _allocated(model: Any, context: SearchContext, conversion: ConversionOptions) -> Any:
    """The candidate with one precision per layer, within the options' precision budget."""
    from ..allocate import allocate_precisions
    from ..metrics import metric_from_dict
    from ..targets import Targets
    from ..types import LabeledDataset, Preprocessing

    options = context.options
    metric = metric_from_dict(context.metric)
    data = LabeledDataset(
        x_train=context.x_train,
        y_train=context.y_train,
        x_val=context.x_val,
        y_val=context.y_val,
        x_test=context.x_val[:0],
        y_test=context.y_val[:0],
        class_names=(),
        preprocessing=Preprocessing(1.0, 0.0, False, False, "search"),
        task=context.task,
        metric=metric.to_dict(),
    )
    budget = Targets(
        max_quality_drop=options.precision_budget, relative_drop=not metric.fraction, metric=metric
    )
    return allocate_precisions(
        model, data, budget=budget, precisions=options.precisions, options=conversion
    ).model


def _finite_weights(model: Any) -> bool:
    return all(np.isfinite(w).all() for w in model.get_weights())


def _macs(model: Any) -> int | None:
    from ..profile import total_macs

    try:
        return int(total_macs(model))
    except Exception:  # MACs are informative; a layer the profiler cannot count is not fatal
        return None
