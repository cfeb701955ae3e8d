"""The plugin's ZenML steps. Each checks its inputs, calls one core function, returns named
outputs and logs key figures as metadata. Artifact names start with ``zq_``.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import ArtifactConfig, step
from zenml.types import HTMLString

from .. import baseline as _baseline
from .. import candidates as _candidates
from .. import conform as _conform
from .. import datasets as _datasets
from .. import evaluate as _evaluate
from .. import models as _models
from .. import qat as _qat
from .. import sensitivity as _sensitivity
from .. import summary as _summary
from ..benchmark.types import BenchmarkResult
from ..errors import InvalidOptionError
from ..gate import GateDecision
from ..report import compress as _report
from ..report.html import render_html
from ..targets import Targets
from ..tasks import dataset_metric
from ..types import (
    BaselineSummary,
    CandidateResult,
    ConversionOptions,
    LabeledDataset,
    TFLiteModel,
)
from ._runtime import STEP_SETTINGS, local_copy, record_metadata
from .materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    TFLiteModelMaterializer,
)

__all__ = [
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

# Each candidate's outputs carry its name (zq_tflite_int8, zq_evaluation_qat, ...): the pipeline
# sets the "candidate" substitution per call. ZenML's cache key ignores substitutions, so every
# call of one step must also differ in a parameter (the mode, name or rank), or a cached
# output would come back under another candidate's name.
_TFLITE_OUTPUT = "zq_tflite_{candidate}"

logger = logging.getLogger(__name__)


# Loading steps read external files: a cached result would hide a model or dataset that
# changed at the same path, so they always run.
@step(enable_cache=False, output_materializers=KerasModelMaterializer, settings=STEP_SETTINGS)
def load_keras_model(path: str, allow_unsafe: bool = False) -> Annotated[Any, "zq_keras_model"]:
    """Load a ``.keras``, ``.h5`` or SavedModel (local path or artifact-store URI).

    ``allow_unsafe`` lets ``Lambda`` layers (Python code run on load) through: only for files
    you trust.
    """
    model = _models.load_model(local_copy(path), allow_unsafe=allow_unsafe)
    total, _trainable = _models.count_params(model)
    record_metadata({"flavour": _models.model_flavour(model), "params": total, "source": path})
    return model


@step(enable_cache=False, output_materializers=LabeledDatasetMaterializer, settings=STEP_SETTINGS)
def load_labeled_dataset(
    source: str,
    model: Any = None,
    scale: float = 1 / 255,
    offset: float = 0.0,
    validation_fraction: float | None = None,
    seed: int = 0,
    val_data: str | None = None,
    validation_from: str = "test",
    task: str | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    targets: dict[str, Any] | None = None,
    budget: float | None = None,
    relative_budget: bool = False,
) -> Annotated[LabeledDataset, "zq_dataset"]:
    """Load ``source`` (``"digits"``, ``.npz``, ``.csv`` or an image folder) and fit it to ``model``.

    Integer features become ``x * scale + offset``. Validation is ``x_val``/``y_val`` or
    ``val_data`` when given, else held out from the test split (``validation_from="train"``
    carves it from train instead, for a model that never saw its train split). With a
    ``model``, a missing channel axis is added, shapes and labels are checked against it, and
    the task and metric are settled (``task``/``metric`` or inferred; see
    :func:`zenml_quant.conform.fit_to_model`), and ``targets`` (the run's
    :class:`~zenml_quant.targets.Targets` fields) and the PTQ ``budget`` are checked in that
    metric's units, so a target that cannot apply stops the run before any compression work.
    """
    source = source if source == "digits" else local_copy(source)
    data = _datasets.load_dataset(
        source,
        scale=scale,
        offset=offset,
        validation_fraction=validation_fraction,
        seed=seed,
        val_data=None if val_data is None else local_copy(val_data),
        validation_from=validation_from,  # type: ignore[arg-type]  # the loader checks it
        label_kind="values" if task == "regression" else "auto",
    )
    if model is not None:
        data = _conform.fit_to_model(
            model, data, task=task, metric=metric, higher_is_better=higher_is_better
        )
        if targets:
            Targets.from_dict(targets, metric=dataset_metric(data))
        if budget is not None:
            Targets(
                max_quality_drop=budget, relative_drop=relative_budget, metric=dataset_metric(data)
            )
    record_metadata(
        {
            "train": len(data.y_train),
            "validation": len(data.y_val),
            "test": len(data.y_test),
            "validation_source": data.validation_source,
            "classes": data.num_classes,
            "task": data.task,
            "metric": None if data.metric is None else data.metric["name"],
        }
    )
    return data


@step(settings=STEP_SETTINGS)
def evaluate_baseline(
    model: Any,
    dataset: LabeledDataset,
    float_model: TFLiteModel | None = None,
    split: str = "test",
) -> tuple[
    Annotated[BaselineSummary, "zq_baseline"],
    Annotated[pd.DataFrame, "zq_layer_table"],
    Annotated[HTMLString, "zq_baseline_report"],
]:
    """Quality (the dataset's metric), parameters, per-layer MACs and weight bytes, peak memory,
    float32 TFLite size. ``float_model``, the output of a float32 :func:`convert_to_tflite`,
    spares a second conversion.
    """
    summary, layers = _baseline.profile_baseline(
        model,
        dataset,
        split=split,
        metric=dataset_metric(dataset),
        float_model=float_model,
    )
    record_metadata(
        {
            "metric": summary.metric,
            "quality": summary.accuracy,
            "params": summary.params,
            "macs": summary.macs,
            "peak_activation_bytes": summary.peak_activation_bytes,
            "float_tflite_bytes": summary.float_tflite_bytes,
        }
    )
    page = HTMLString(_report.layer_table_html(summary, layers))
    return summary, layers, page


@step(
    output_materializers=TFLiteModelMaterializer,
    settings=STEP_SETTINGS,
    substitutions={"candidate": "model"},
)
def convert_to_tflite(
    model: Any,
    dataset: LabeledDataset,
    mode: str = "float32",
    calibration_samples: int = 500,
    quantized_io: bool = True,
    seed: int = 0,
    compact_names: bool = True,
) -> Annotated[TFLiteModel, ArtifactConfig(name=_TFLITE_OUTPUT)]:
    """Convert to TFLite in ``mode``; ``int8``/``int16x8`` calibrate on the train split.

    A conversion that fails returns a model with ``error`` set (the candidate fails alone).
    The output is ``zq_tflite_<candidate>`` (substitution ``candidate``, default ``model``).
    """
    options = ConversionOptions(
        calibration_samples=calibration_samples,
        quantized_io=quantized_io,
        seed=seed,
        compact_names=compact_names,
    )
    tflite = _candidates.convert_candidate(
        model, mode, representative_data=dataset.x_train, options=options
    )
    record_metadata(
        {"mode": mode, "size_bytes": tflite.size_bytes, "ok": tflite.ok, "error": tflite.error}
    )
    return tflite


# Latency is a measurement of the machine the step runs on: never reuse an old one.
@step(enable_cache=False, settings=STEP_SETTINGS, substitutions={"candidate": "model"})
def evaluate_tflite_model(
    tflite_model: TFLiteModel,
    dataset: LabeledDataset,
    split: str = "test",
    num_threads: int = 1,
    latency_runs: int = 200,
    name: str | None = None,
) -> Annotated[CandidateResult, ArtifactConfig(name="zq_evaluation_{candidate}")]:
    """Quality (the dataset's metric) on ``split`` with ai-edge-litert, and median batch-1
    latency at ``num_threads``. The output is ``zq_evaluation_<candidate>``.
    """
    result = _evaluate.evaluate_candidate(
        tflite_model,
        dataset,
        name=name,
        split=split,
        num_threads=num_threads,
        latency_runs=latency_runs,
        metric=dataset_metric(dataset),
    )
    record_metadata(
        {
            "metric": result.metric,
            "quality": result.accuracy,
            "size_bytes": result.size_bytes,
            "latency_ms_p50": result.latency_ms_p50,
            "threads": result.threads,
            "error": result.error,
        }
    )
    return result


@step(enable_cache=False, settings=STEP_SETTINGS)
def compare_candidates(
    baseline: BaselineSummary, candidates: list[CandidateResult]
) -> tuple[Annotated[pd.DataFrame, "zq_comparison"], Annotated[HTMLString, "zq_comparison_report"]]:
    """One table: the Keras baseline and every candidate, on the same split."""
    table = _report.comparison_table(baseline, candidates)
    record_metadata(
        {
            f"{c.name}": {
                "accuracy": c.accuracy,
                "size_bytes": c.size_bytes,
                "latency_ms_p50": c.latency_ms_p50,
            }
            for c in candidates
        }
    )
    return table, HTMLString(_report.comparison_html(baseline, candidates))


@step(settings=STEP_SETTINGS)
def profile_sensitivity(
    model: Any,
    dataset: LabeledDataset,
    mode: str = "fast",
    top_k: int = 3,
    split: str = "validation",
    debug_samples: int = 200,
    calibration_samples: int = 500,
    quantized_io: bool = True,
    seed: int = 0,
) -> tuple[
    Annotated[pd.DataFrame, "zq_sensitivity"], Annotated[HTMLString, "zq_sensitivity_report"]
]:
    """Rank the layers by the accuracy int8 costs them (``mode`` ``"fast"`` or ``"exhaustive"``).

    The table is ranked, most sensitive first; feed it to :func:`quantize_post_training` so
    accuracy control tries the most sensitive layers first.
    """
    try:
        report = _sensitivity.profile_sensitivity(
            model,
            dataset,
            mode=mode,
            top_k=top_k,
            split=split,
            debug_samples=debug_samples,
            options=ConversionOptions(
                calibration_samples=calibration_samples, quantized_io=quantized_io, seed=seed
            ),
        )
    except InvalidOptionError:
        raise
    except Exception as exc:  # profiling informs the candidates; its failure must not end them
        why = f"sensitivity profiling failed ({type(exc).__name__}: {str(exc)[:300]})"
        logger.warning("%s: the candidates go on without a ranking", why)
        record_metadata({"mode": mode, "error": why})
        page = render_html(pd.DataFrame(), title="Sensitivity profiling failed", notes=[why])
        return pd.DataFrame(columns=["rank", "layer"]), HTMLString(page)
    top = report.table.head(5)
    record_metadata(
        {
            "mode": report.mode,
            "float_accuracy": report.float_accuracy,
            "int8_accuracy": report.int8_accuracy,
            "evaluations": report.evaluations,
            "seconds": report.seconds,
            "most_sensitive": {
                str(row.layer): None if pd.isna(row.sensitivity_pts) else float(row.sensitivity_pts)
                for row in top.itertuples()
            },
        }
    )
    return report.table, HTMLString(_report.sensitivity_html(report))


@step(
    output_materializers={_TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "mixed"},
)
def quantize_post_training(
    model: Any,
    dataset: LabeledDataset,
    sensitivity: pd.DataFrame | None = None,
    mode: str = "int8",
    float_layers: list[str] | None = None,
    float_layer_types: list[str] | None = None,
    max_quality_drop: float | None = None,
    relative_drop: bool = False,
    search: str = "greedy",
    max_float_layers: int | None = None,
    split: str = "validation",
    calibration_samples: int = 500,
    quantized_io: bool = True,
    seed: int = 0,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=_TFLITE_OUTPUT)],
    Annotated[pd.DataFrame, "zq_ptq_attempts"],
    Annotated[HTMLString, "zq_ptq_report"],
]:
    """Post-training quantization: a plain ``mode``, int8 with float layers, or a budget.

    ``max_quality_drop`` (accuracy units: 0.005 is half a point; a fraction of the float
    accuracy with ``relative_drop``) turns on accuracy control on ``split``: the fewest layers
    kept in float, most sensitive first (from ``sensitivity``, the output of
    :func:`profile_sensitivity`, else a fast profile). A budget that cannot be met gives the
    best model found, marked ``budget not met``; it does not fail the step, and neither does
    an error (the model comes back failed, with the reason). Output ``zq_tflite_mixed``.
    """
    result = _candidates.ptq_candidate(
        model,
        dataset,
        mode=mode,
        float_layers=float_layers or (),
        float_layer_types=float_layer_types or (),
        budget=None
        if max_quality_drop is None
        else Targets(
            max_quality_drop=max_quality_drop,
            relative_drop=relative_drop,
            metric=dataset_metric(dataset),
        ),
        ranking=None if sensitivity is None else list(sensitivity["layer"]),
        search=search,
        max_float_layers=max_float_layers,
        split=split,
        options=ConversionOptions(
            calibration_samples=calibration_samples, quantized_io=quantized_io, seed=seed
        ),
    )
    if not result.model.ok:
        record_metadata({"status": result.status, "error": result.model.error})
        page = render_html(
            pd.DataFrame(), title="Post-training quantization failed", notes=[result.reason]
        )
        return result.model, _report.attempts_table(result), HTMLString(page)
    record_metadata(
        {
            "status": result.status,
            "reason": result.reason,
            "mode": result.model.mode,
            "size_bytes": result.model.size_bytes,
            "float_layers": list(result.float_layers),
            "accuracy": result.accuracy,
            "reference_accuracy": result.reference_accuracy,
            "attempts": len(result.attempts),
        }
    )
    return result.model, _report.attempts_table(result), HTMLString(_report.ptq_html(result))


@step(
    output_materializers={_TFLITE_OUTPUT: TFLiteModelMaterializer},
    settings=STEP_SETTINGS,
    substitutions={"candidate": "qat"},
)
def quantization_aware_training(
    model: Any,
    dataset: LabeledDataset,
    layers: list[str] | None = None,
    skip_layers: list[str] | None = None,
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 1e-4,
    early_stopping_patience: int = 2,
    split: str = "validation",
    calibration_samples: int = 500,
    quantized_io: bool = True,
    seed: int = 0,
) -> tuple[
    Annotated[TFLiteModel, ArtifactConfig(name=_TFLITE_OUTPUT)],
    Annotated[pd.DataFrame, "zq_qat_history"],
    Annotated[HTMLString, "zq_qat_report"],
]:
    """Fine-tune with fake quantization (tfmot, ``tf_keras`` models) and convert to int8.

    Whole model by default; ``layers`` quantizes only those, ``skip_layers`` all but those
    (e.g. layers tfmot cannot quantize, or the most sensitive ones). Early stopping watches
    the validation accuracy. Reports the Keras QAT and the int8 ``.tflite`` accuracy on ``split``.
    Layers tfmot cannot annotate are skipped and listed. A failure returns a failed model with
    the reason (the candidate fails alone). Output ``zq_tflite_qat``.
    """
    result = _candidates.qat_candidate(
        model,
        dataset,
        layers=layers,
        skip_layers=skip_layers or (),
        options=_qat.QATOptions(
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            early_stopping_patience=early_stopping_patience,
            seed=seed,
        ),
        conversion=ConversionOptions(
            calibration_samples=calibration_samples, quantized_io=quantized_io, seed=seed
        ),
        split=split,
    )
    if isinstance(result, TFLiteModel):  # QAT failed: the reason is in the model's error
        record_metadata({"error": result.error})
        page = render_html(
            pd.DataFrame(), title="Quantization-aware training failed", notes=[result.error or ""]
        )
        return result, pd.DataFrame(), HTMLString(page)
    record_metadata(
        {
            "keras_qat_accuracy": result.keras_accuracy,
            "tflite_accuracy": result.tflite_accuracy,
            "epochs_run": result.epochs_run,
            "size_bytes": result.tflite.size_bytes,
            "float_layers": list(result.float_layers),
            "quantized_layers": len(result.quantized_layers),
            "skipped_layers": {name: why for name, why in result.skipped_layers},
        }
    )
    history = pd.DataFrame(result.history).rename_axis("epoch").reset_index()
    return result.tflite, history, HTMLString(_report.qat_html(result, history))


@step(output_materializers=KerasModelMaterializer, settings=STEP_SETTINGS)
def train_demo_model_step(
    dataset: LabeledDataset, epochs: int = 15, seed: int = 0
) -> Annotated[Any, "zq_trained_model"]:
    """Train the demo CNN on ``dataset``: the default trainer of ``retrain_and_compress``.

    Any step with the same inputs (a :class:`LabeledDataset`, ``epochs``) returning a Keras
    model can take its place.
    """
    from ..demo import train_demo_model

    return train_demo_model(dataset, epochs=epochs, seed=seed)


@step(enable_cache=False, settings=STEP_SETTINGS)
def summarize_run(
    baseline: BaselineSummary,
    candidates: list[CandidateResult],
    benchmarks: Any = None,
    decision: GateDecision | None = None,
    sensitivity: pd.DataFrame | None = None,
) -> tuple[
    Annotated[_summary.RunSummary, "zq_run_summary"], Annotated[HTMLString, "zq_run_report"]
]:
    """The run's one report: baseline, every candidate with status and reason, the gate.

    ``benchmarks[i]`` (a list of :class:`BenchmarkResult`) belongs to ``candidates[i]``. The
    CLI's table and ``--json`` read this artifact.
    """
    runs: list[list[BenchmarkResult]] | None = benchmarks or None
    summary = _summary.build_summary(
        baseline, candidates, benchmarks=runs, gate=decision, sensitivity=sensitivity
    )
    record_metadata(
        {
            "candidates": {c.name: c.status for c in summary.candidates},
            "gate_passed": None if decision is None else decision.passed,
            "selected": None if decision is None else decision.selected,
        }
    )
    return summary, HTMLString(_summary.summary_html(summary))
