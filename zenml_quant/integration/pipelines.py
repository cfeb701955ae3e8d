"""Reusable pipeline definitions built from the plugin's steps."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client
from zenml.config.schedule import Schedule
from zenml.enums import ExecutionMode

from ..errors import InvalidOptionError
from ..precisions import DEFAULT_PRECISIONS
from ..types import ConversionOptions
from .steps import (
    allocate_precisions,
    benchmark_on_device,
    compare_candidates,
    convert_to_tflite,
    deployment_gate,
    evaluate_baseline,
    evaluate_tflite_model,
    gate_inputs,
    int4_aware_qat,
    load_keras_model,
    load_labeled_dataset,
    profile_sensitivity,
    quantization_aware_training,
    quantize_post_training,
    recalibrate_batchnorm,
    search_architecture,
    search_candidate,
    summarize_run,
    train_demo_model_step,
)

__all__ = [
    "MAX_SEARCH_CANDIDATES",
    "build_retrain_and_compress",
    "compress_pipeline",
    "nas_pipeline",
    "retrain_and_compress",
    "schedule_retrain_and_compress",
]


#: Searched candidates a pipeline may pass to the gate (search_1 ... search_5).
MAX_SEARCH_CANDIDATES = 5


def _named(step_: Any, candidate: str) -> Any:
    """``step_`` whose outputs carry ``candidate`` in their names (``zq_tflite_int8``, ...)."""
    return step_.with_options(substitutions={"candidate": candidate})


def _compress_and_gate(
    model: Any,
    dataset: Any,
    *,
    modes: tuple[str, ...],
    split: str,
    sensitivity_mode: str | None,
    max_quality_drop: float | None,
    relative_drop: bool,
    qat: bool,
    qat_skip_layers: tuple[str, ...] = (),
    benchmark_threads: tuple[int, ...] | None,
    gate: dict[str, Any],
    search: dict[str, Any] | None = None,
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
    precision_objective: str = "bytes",
    mixed_qat: bool = False,
    bn_reestimate: bool = False,
    conversion: ConversionOptions | None = None,
) -> None:
    """The steps the pipelines share, from a loaded model and dataset to the gate and summary.

    Every candidate's steps and outputs carry its name (``convert_int8`` -> ``zq_tflite_int8``,
    ``evaluate_int8`` -> ``zq_evaluation_int8``, ``benchmark_int8`` -> ``zq_benchmark_int8``).
    A candidate that fails is a failed row; the others, the gate and the summary still run.
    ``search`` (the ``search_architecture`` parameters plus ``candidates``) adds the
    architecture search; its targets are the gate's, and its best ``candidates`` models join
    the others as ``search_1``, ``search_2``, ...
    ``conversion`` (calibration samples and seed, integer I/O, compact names) is built once
    and given to every step that converts, so every candidate is calibrated alike.
    """
    conversion = conversion or ConversionOptions()
    # The baseline needs the float32 file (size, peak memory) and so does the float32
    # candidate: convert once and share it.
    float_model = _named(convert_to_tflite, "float32")(
        model, dataset, mode="float32", conversion=conversion, id="zq_convert_float32"
    )
    baseline, _, _ = evaluate_baseline(model, dataset, float_model=float_model, split=split)
    tflite_models = {}
    for mode in modes:
        tflite_models[mode] = (
            float_model
            if mode == "float32"
            else _named(convert_to_tflite, mode)(
                model, dataset, mode=mode, conversion=conversion, id=f"zq_convert_{mode}"
            )
        )
    sensitivity = None
    if sensitivity_mode is not None:
        sensitivity, _ = profile_sensitivity(
            model, dataset, mode=sensitivity_mode, conversion=conversion
        )
    if max_quality_drop is not None and set(precisions) <= {"int8", "float"}:
        # int8 with float layers only: the converter's debugger, with its paired noise test.
        tflite_models["mixed"], _, _ = _named(quantize_post_training, "mixed")(
            model,
            dataset,
            sensitivity=sensitivity,
            max_quality_drop=max_quality_drop,
            relative_drop=relative_drop,
            conversion=conversion,
            id="zq_quantize_mixed",
        )
    elif max_quality_drop is not None:
        tflite_models["mixed"], _, _, _ = _named(allocate_precisions, "mixed")(
            model,
            dataset,
            precisions=list(precisions),
            objective=precision_objective,
            max_quality_drop=max_quality_drop,
            relative_drop=relative_drop,
            conversion=conversion,
            id="zq_allocate_mixed",
        )
    if mixed_qat:
        tflite_models["mixed_qat"], _ = _named(int4_aware_qat, "mixed_qat")(
            model,
            dataset,
            precisions=list(precisions),
            objective=precision_objective,
            max_quality_drop=0.01 if max_quality_drop is None else max_quality_drop,
            relative_drop=relative_drop,
            conversion=conversion,
            id="zq_int4_aware_qat",
        )
    if bn_reestimate:
        tflite_models["bn_int8"] = recalibrate_batchnorm(model, dataset, conversion=conversion)
    if qat:
        tflite_models["qat"], _, _ = _named(quantization_aware_training, "qat")(
            model, dataset, skip_layers=list(qat_skip_layers) or None, conversion=conversion
        )
    if search:
        search = dict(search)
        count = int(search.pop("candidates", 1))
        result, _, _, _, _, _ = search_architecture(
            model, dataset, **search, targets=gate.get("targets")
        )
        for rank in range(count):
            name = f"search_{rank + 1}"
            tflite_models[name] = _named(search_candidate, name)(
                result, rank=rank, id=f"zq_search_candidate_{rank + 1}"
            )
    candidates, benchmarks = [], []
    for name, tflite in tflite_models.items():
        candidates.append(
            _named(evaluate_tflite_model, name)(
                tflite, dataset, split=split, name=name, id=f"zq_evaluate_{name}"
            )
        )
        if benchmark_threads:
            results, _ = _named(benchmark_on_device, name)(
                tflite,
                dataset,
                name=name,
                threads=list(benchmark_threads),
                id=f"zq_benchmark_{name}",
            )
            benchmarks.append(results)
    compare_candidates(baseline, candidates)
    measurements = gate_inputs(baseline, candidates, benchmarks or None)
    decision, _ = deployment_gate(measurements, tflite_models=list(tflite_models.values()), **gate)
    summarize_run(baseline, candidates, benchmarks or None, decision, sensitivity)


def _gate_parameters(
    targets: dict[str, Any] | None,
    stage: str | None,
    champion_margin: float,
    replace_unreadable_champion: bool,
    raise_on_fail: bool,
) -> dict[str, Any]:
    return {
        "targets": dict(targets or {}),
        "stage": stage,
        "champion_margin": champion_margin,
        "replace_unreadable_champion": replace_unreadable_champion,
        "raise_on_fail": raise_on_fail,
    }


# Fail fast: nothing downstream of a model or dataset that did not load is worth running, and
# the local orchestrator then re-raises the step's own error (with its actionable message).
# Candidates never raise (a failed one is a row), so one failure does not stop the others.
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def compress_pipeline(
    model_path: str,
    data_source: str = "digits",
    modes: tuple[str, ...] = ("float32", "int8"),
    split: str = "test",
    scale: float = 1 / 255,
    offset: float = 0.0,
    allow_unsafe: bool = False,
    task: str | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    val_data: str | None = None,
    validation_from: str = "test",
    sensitivity_mode: str | None = "fast",
    max_quality_drop: float | None = 0.01,
    relative_drop: bool = False,
    qat: bool = False,
    qat_skip_layers: tuple[str, ...] = (),
    benchmark_threads: tuple[int, ...] | None = (1,),
    targets: dict[str, Any] | None = None,
    stage: str | None = None,
    champion_margin: float = 0.0,
    replace_unreadable_champion: bool = False,
    raise_on_fail: bool = True,
    search_trials: int = 0,
    search_candidates: int = 1,
    search_time_budget_min: float | None = None,
    search_seed: int = 0,
    search_executor: str | None = None,
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS,
    precision_objective: str = "bytes",
    mixed_qat: bool = False,
    bn_reestimate: bool = False,
    conversion: ConversionOptions | None = None,
) -> None:
    """load -> sensitivity -> convert / quantize / QAT / search -> evaluate, benchmark -> compare
    -> gate -> summary.

    Candidates: one per ``modes`` entry (step ids ``convert_<mode>``, ``evaluate_<mode>``,
    ``benchmark_<mode>``); ``mixed``, one precision per layer from ``precisions`` (int4, int8
    and float by default; see :mod:`zenml_quant.precisions`) minimising ``precision_objective``
    (``bytes``, ``latency``, ``energy`` or ``peak_memory``) with a drop on the validation split of at most
    ``max_quality_drop`` (``allocate_mixed``; with only int8 and float it is the int8 model
    with the fewest float layers, ``quantize_mixed``; None skips it); ``mixed_qat`` (with
    ``mixed_qat``), a plan chosen within 3x that budget whose int4 layers are fine-tuned on the
    int4 grid (``int4_aware_qat``); ``bn_int8`` (with ``bn_reestimate``), the model's
    BatchNorm statistics re-estimated on the train split, no training, then int8
    (``recalibrate_batchnorm``); and ``qat``, quantization-aware training converted to
    int8, when ``qat`` is set (``qat_skip_layers`` stay float; layers tfmot cannot annotate are
    skipped and listed). ``sensitivity_mode`` (``"fast"``, ``"exhaustive"`` or None) profiles the
    layers first. Each candidate is benchmarked in a fresh process at ``benchmark_threads`` (None
    skips it; the gate then uses the evaluation's latency).

    ``targets`` are :class:`zenml_quant.targets.Targets` fields, for the gate and the search
    (without an accuracy target the gate allows at most 1 point lost). With ``stage`` and a
    ZenML model on the run, the best passing candidate's model version is promoted to that
    stage when it is no worse than the version there by more than ``champion_margin``.
    ``task`` and ``metric`` say what the model does and what judges it (inferred when None; a
    user function ``"module:function"`` needs ``higher_is_better``); every quality figure, budget
    and target is in that metric. Validation is ``val_data`` (or ``x_val`` in the data), else
    held out from the test split (``validation_from="train"`` carves it from train).
    ``search_trials`` > 0 adds the architecture search and its best ``search_candidates``
    (at most 5) models as candidates ``search_1``, ...; other search options are set on the
    ``search_architecture`` step in the YAML config. ``conversion``
    (:class:`zenml_quant.types.ConversionOptions`: ``calibration_samples``, ``quantized_io``,
    ``seed``, ``compact_names``) applies to every candidate alike.
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    dataset = load_labeled_dataset(
        data_source,
        model=model,
        scale=scale,
        offset=offset,
        task=task,
        metric=metric,
        higher_is_better=higher_is_better,
        val_data=val_data,
        validation_from=validation_from,
        targets=targets,
        budget=max_quality_drop,
        relative_budget=relative_drop,
    )
    _compress_and_gate(
        model,
        dataset,
        modes=modes,
        split=split,
        sensitivity_mode=sensitivity_mode,
        max_quality_drop=max_quality_drop,
        relative_drop=relative_drop,
        qat=qat,
        qat_skip_layers=qat_skip_layers,
        benchmark_threads=benchmark_threads,
        gate=_gate_parameters(
            targets, stage, champion_margin, replace_unreadable_champion, raise_on_fail
        ),
        search=_search_parameters(
            search_trials,
            search_candidates,
            search_time_budget_min,
            search_seed,
            search_executor,
        ),
        precisions=tuple(precisions),
        precision_objective=precision_objective,
        mixed_qat=mixed_qat,
        bn_reestimate=bn_reestimate,
        conversion=conversion,
    )


def _search_parameters(
    trials: int, candidates: int, time_budget_min: float | None, seed: int, executor: str | None
) -> dict[str, Any] | None:
    if trials <= 0:
        return None
    if not 1 <= candidates <= MAX_SEARCH_CANDIDATES:
        raise InvalidOptionError(
            f"search candidates must be between 1 and {MAX_SEARCH_CANDIDATES}, got {candidates}."
        )
    return {
        "max_trials": trials,
        "candidates": candidates,
        "time_budget_min": time_budget_min,
        "seed": seed,
        "executor": executor,
    }


@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def nas_pipeline(
    model_path: str,
    data_source: str = "digits",
    split: str = "test",
    scale: float = 1 / 255,
    offset: float = 0.0,
    allow_unsafe: bool = False,
    task: str | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    val_data: str | None = None,
    validation_from: str = "test",
    max_trials: int = 30,
    candidates: int = 3,
    time_budget_min: float | None = None,
    seed: int = 0,
    executor: str | None = None,
    benchmark_threads: tuple[int, ...] | None = (1,),
    targets: dict[str, Any] | None = None,
    stage: str | None = None,
    champion_margin: float = 0.0,
    replace_unreadable_champion: bool = False,
    raise_on_fail: bool = True,
) -> None:
    """load -> baseline -> architecture search -> the best ``candidates`` searched models ->
    evaluate on ``split``, benchmark -> compare -> gate -> summary.

    ``targets`` (:class:`zenml_quant.targets.Targets` fields) are both the search's targets and
    the gate's. Search options beyond these (fine-tuning, proposer, batch size, space
    narrowing, ...) are set on the ``search_architecture`` step in a YAML config. ``task``,
    ``metric``, ``val_data`` and ``validation_from`` as in :func:`compress_pipeline`.
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    dataset = load_labeled_dataset(
        data_source,
        model=model,
        scale=scale,
        offset=offset,
        task=task,
        metric=metric,
        higher_is_better=higher_is_better,
        val_data=val_data,
        validation_from=validation_from,
        targets=targets,
    )
    _compress_and_gate(
        model,
        dataset,
        modes=(),
        split=split,
        sensitivity_mode=None,
        max_quality_drop=None,
        relative_drop=False,
        qat=False,
        benchmark_threads=benchmark_threads,
        gate=_gate_parameters(
            targets, stage, champion_margin, replace_unreadable_champion, raise_on_fail
        ),
        search=_search_parameters(max_trials, candidates, time_budget_min, seed, executor),
    )


def build_retrain_and_compress(trainer: Any = train_demo_model_step) -> Any:
    """A ``retrain_and_compress`` pipeline whose training step is ``trainer``.

    ``trainer`` is a ZenML step taking ``(dataset: LabeledDataset, epochs: int)`` and returning
    a Keras model (use ``output_materializers=KerasModelMaterializer``). The pipeline: load the
    data -> train -> fit the data to the model -> compress -> benchmark -> gate -> promote.
    """

    @pipeline(name="retrain_and_compress", execution_mode=ExecutionMode.FAIL_FAST)
    def retrain_and_compress(
        data_source: str = "digits",
        epochs: int = 15,
        modes: tuple[str, ...] = ("float32", "int8"),
        split: str = "test",
        scale: float = 1 / 255,
        offset: float = 0.0,
        sensitivity_mode: str | None = "fast",
        max_quality_drop: float | None = 0.01,
        qat: bool = False,
        benchmark_threads: tuple[int, ...] | None = (1,),
        targets: dict[str, Any] | None = None,
        stage: str | None = "staging",
        champion_margin: float = 0.0,
        replace_unreadable_champion: bool = False,
        conversion: ConversionOptions | None = None,
    ) -> None:
        """Retrain on fresh data, compress, benchmark, and promote only what passes the gate.

        ``targets`` default to the gate's floor (at most 1 point lost to compression); the
        challenger must be no worse than the model version already in ``stage`` (by
        ``champion_margin``). Run it with a ZenML model (``.with_options(model=Model(...))``)
        for the promotion to happen.
        """
        raw = load_labeled_dataset(
            data_source, scale=scale, offset=offset, id="zq_load_training_data"
        )
        model = trainer(raw, epochs=epochs)
        dataset = load_labeled_dataset(data_source, model=model, scale=scale, offset=offset)
        _compress_and_gate(
            model,
            dataset,
            modes=modes,
            split=split,
            sensitivity_mode=sensitivity_mode,
            max_quality_drop=max_quality_drop,
            relative_drop=False,
            qat=qat,
            benchmark_threads=benchmark_threads,
            gate=_gate_parameters(
                targets, stage, champion_margin, replace_unreadable_champion, raise_on_fail=True
            ),
            conversion=conversion,
        )

    return retrain_and_compress


#: ``retrain_and_compress`` with the demo CNN's trainer.
retrain_and_compress = build_retrain_and_compress()


def schedule_retrain_and_compress(cron: str, *, pipeline_: Any = None, **parameters: Any) -> Any:
    """Register ``retrain_and_compress`` to run on the ``cron`` schedule (e.g. ``"0 3 * * 1"``).

    Needs an orchestrator that schedules (Kubernetes, Kubeflow, Vertex, SageMaker, AzureML,
    Airflow, Databricks). The local orchestrator has no scheduler: this raises
    :class:`InvalidOptionError` saying so, instead of ZenML's generic stack error.
    """
    stack = Client().active_stack
    if not stack.orchestrator.config.is_schedulable:
        raise InvalidOptionError(
            f"The active stack {stack.name!r} uses the {stack.orchestrator.flavor!r} "
            "orchestrator, which cannot run pipelines on a schedule: nothing was scheduled. "
            "Switch to a stack whose orchestrator schedules (kubernetes, kubeflow, vertex, "
            "sagemaker, azureml, airflow, databricks), or run `zenml-quant retrain` from cron "
            "on this machine."
        )
    runnable = (pipeline_ or retrain_and_compress).with_options(
        schedule=Schedule(cron_expression=cron)
    )
    return runnable(**parameters)
