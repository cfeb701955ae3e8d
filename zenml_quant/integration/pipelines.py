"""Reusable pipeline definitions built from the plugin's steps."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client
from zenml.config.schedule import Schedule
from zenml.enums import ExecutionMode

from ..errors import InvalidOptionError
from .configs import (
    MAX_SEARCH_CANDIDATES,
    CompressConfig,
    DataConfig,
    NasConfig,
    RetrainConfig,
)
from .steps import (
    allocate_precisions,
    benchmark_on_device,
    calibrate,
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


def _named(step_: Any, candidate: str) -> Any:
    """``step_`` whose outputs carry ``candidate`` in their names (``zq_tflite_int8``, ...)."""
    return step_.with_options(substitutions={"candidate": candidate})


def _load(model: Any, data: DataConfig, **checks: Any) -> Any:
    """The labeled data of ``data``, fitted to ``model`` (``checks``: targets and budget)."""
    return load_labeled_dataset(
        data.source,
        model=model,
        scale=data.scale,
        offset=data.offset,
        task=data.task,
        metric=data.metric,
        higher_is_better=data.higher_is_better,
        val_data=data.val_data,
        validation_from=data.validation_from,
        **checks,
    )


def _compress_and_gate(model: Any, dataset: Any, config: CompressConfig) -> None:
    """The steps the pipelines share, from a loaded model and dataset to the gate and summary.

    Every candidate's steps and outputs carry its name (``zq_convert_int8`` ->
    ``zq_tflite_int8``, ``zq_evaluate_int8`` -> ``zq_evaluation_int8``, ``zq_benchmark_int8`` ->
    ``zq_benchmark_int8``). A candidate that fails is a failed row; the others, the gate and the
    summary still run. The search's targets are the gate's; its best ``candidates`` models join
    the others as ``search_1``, ``search_2``, ... ``config.conversion`` is given to every step
    that converts, so every candidate is calibrated alike. The int8 conversion, the sensitivity
    profile and the int8 model with float layers quantize from one ``zq_calibrate`` output:
    the model is calibrated once for all three.
    """
    conversion, gate, search = config.conversion, config.gate, config.search
    budget = {"max_quality_drop": config.max_quality_drop, "relative_drop": config.relative_drop}
    precisions = list(config.precisions)
    selective = config.max_quality_drop is not None and set(precisions) <= {"int8", "float"}
    calibrated = None
    if "int8" in config.modes or config.sensitivity_mode is not None or selective:
        calibrated = calibrate(model, dataset, conversion=conversion)
    # The baseline needs the float32 file (size, peak memory) and so does the float32
    # candidate: convert once and share it.
    float_model = _named(convert_to_tflite, "float32")(
        model, dataset, mode="float32", conversion=conversion, id="zq_convert_float32"
    )
    baseline, _, _ = evaluate_baseline(model, dataset, float_model=float_model, split=config.split)
    tflite_models = {}
    for mode in config.modes:
        tflite_models[mode] = (
            float_model
            if mode == "float32"
            else _named(convert_to_tflite, mode)(
                model,
                dataset,
                mode=mode,
                conversion=conversion,
                calibrated=calibrated if mode == "int8" else None,
                id=f"zq_convert_{mode}",
            )
        )
    sensitivity = None
    if config.sensitivity_mode is not None:
        sensitivity, _ = profile_sensitivity(
            model,
            dataset,
            mode=config.sensitivity_mode,
            conversion=conversion,
            calibrated=calibrated,
        )
    if selective:
        # int8 with float layers only: the converter's debugger, with its paired noise test.
        tflite_models["mixed"], _, _ = _named(quantize_post_training, "mixed")(
            model,
            dataset,
            sensitivity=sensitivity,
            **budget,
            conversion=conversion,
            calibrated=calibrated,
            id="zq_quantize_mixed",
        )
    elif config.max_quality_drop is not None:
        tflite_models["mixed"], _, _, _ = _named(allocate_precisions, "mixed")(
            model,
            dataset,
            precisions=precisions,
            objective=config.precision_objective,
            **budget,
            conversion=conversion,
            id="zq_allocate_mixed",
        )
    if config.mixed_qat:
        tflite_models["mixed_qat"], _ = _named(int4_aware_qat, "mixed_qat")(
            model,
            dataset,
            precisions=precisions,
            objective=config.precision_objective,
            max_quality_drop=0.01 if config.max_quality_drop is None else config.max_quality_drop,
            relative_drop=config.relative_drop,
            conversion=conversion,
            id="zq_int4_aware_qat",
        )
    if config.bn_reestimate:
        tflite_models["bn_int8"] = recalibrate_batchnorm(model, dataset, conversion=conversion)
    if config.qat:
        tflite_models["qat"], _, _ = _named(quantization_aware_training, "qat")(
            model, dataset, skip_layers=list(config.qat_skip_layers) or None, conversion=conversion
        )
    if search.trials > 0:
        result, _, _, _, _, _ = search_architecture(
            model, dataset, targets=gate.targets, settings=search.settings()
        )
        for rank in range(search.candidates):
            name = f"search_{rank + 1}"
            tflite_models[name] = _named(search_candidate, name)(
                result, rank=rank, id=f"zq_search_candidate_{rank + 1}"
            )
    candidates, benchmarks = [], []
    for name, tflite in tflite_models.items():
        candidates.append(
            _named(evaluate_tflite_model, name)(
                tflite, dataset, split=config.split, name=name, id=f"zq_evaluate_{name}"
            )
        )
        if config.benchmark_threads:
            results, _ = _named(benchmark_on_device, name)(
                tflite,
                dataset,
                name=name,
                threads=list(config.benchmark_threads),
                id=f"zq_benchmark_{name}",
            )
            benchmarks.append(results)
    compare_candidates(baseline, candidates)
    measurements = gate_inputs(baseline, candidates, benchmarks or None)
    decision, _ = deployment_gate(
        measurements,
        tflite_models=list(tflite_models.values()),
        targets=dict(gate.targets or {}),
        stage=gate.stage,
        champion_margin=gate.champion_margin,
        replace_unreadable_champion=gate.replace_unreadable_champion,
        raise_on_fail=gate.raise_on_fail,
    )
    summarize_run(baseline, candidates, benchmarks or None, decision, sensitivity)


# Fail fast: nothing downstream of a model or dataset that did not load is worth running, and
# the local orchestrator then re-raises the step's own error (with its actionable message).
# Candidates never raise (a failed one is a row), so one failure does not stop the others.
# The configs are frozen, so one shared default instance is safe (B008).
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def compress_pipeline(model_path: str, config: CompressConfig = CompressConfig()) -> None:  # noqa: B008
    """load -> sensitivity -> convert / quantize / QAT / search -> evaluate, benchmark -> compare
    -> gate -> summary, as :class:`~zenml_quant.integration.configs.CompressConfig` says.

    ``model_path`` is a ``.keras``, ``.h5`` or SavedModel (local or a URI). In a YAML run config
    the options go under ``parameters: config:`` (see ``pipelines/configs/compress.yaml``); a
    step's own options under ``steps: zq_<step id>: parameters:``. With ``config.gate.stage``
    and a ZenML model on the run, the best passing candidate's model version is promoted.
    """
    model = load_keras_model(model_path, allow_unsafe=config.data.allow_unsafe)
    dataset = _load(
        model,
        config.data,
        targets=config.gate.targets,
        budget=config.max_quality_drop,
        relative_budget=config.relative_drop,
    )
    _compress_and_gate(model, dataset, config)


@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def nas_pipeline(model_path: str, config: NasConfig = NasConfig()) -> None:  # noqa: B008
    """load -> baseline -> architecture search -> the best ``config.search.candidates`` searched
    models -> evaluate on ``config.split``, benchmark -> compare -> gate -> summary.

    ``config.gate.targets`` are both the search's targets and the gate's; ``config.search``
    holds every search setting (budget, proposer, fine-tuning, where it may edit, executor).
    """
    model = load_keras_model(model_path, allow_unsafe=config.data.allow_unsafe)
    dataset = _load(model, config.data, targets=config.gate.targets)
    _compress_and_gate(
        model,
        dataset,
        CompressConfig(
            modes=(),
            split=config.split,
            sensitivity_mode=None,
            max_quality_drop=None,
            benchmark_threads=config.benchmark_threads,
            data=config.data,
            gate=config.gate,
            search=config.search,
        ),
    )


def build_retrain_and_compress(trainer: Any = train_demo_model_step) -> Any:
    """A ``retrain_and_compress`` pipeline whose training step is ``trainer``.

    ``trainer`` is a ZenML step taking ``(dataset: LabeledDataset, epochs: int)`` and returning
    a Keras model (use ``output_materializers=KerasModelMaterializer``). The pipeline: load the
    data -> train -> fit the data to the model -> compress -> benchmark -> gate -> promote.
    """

    @pipeline(name="retrain_and_compress", execution_mode=ExecutionMode.FAIL_FAST)
    def retrain_and_compress(config: RetrainConfig = RetrainConfig()) -> None:  # noqa: B008
        """Retrain on fresh data, compress, benchmark, and promote only what passes the gate.

        ``config.gate.targets`` default to the gate's floor (at most 1 point lost to
        compression); the challenger must be no worse than the model version already in
        ``config.gate.stage`` (by ``champion_margin``). Run it with a ZenML model
        (``.with_options(model=Model(...))``) for the promotion to happen.
        """
        data = config.data
        raw = load_labeled_dataset(
            data.source, scale=data.scale, offset=data.offset, id="zq_load_training_data"
        )
        model = trainer(raw, epochs=config.epochs)
        dataset = load_labeled_dataset(
            data.source, model=model, scale=data.scale, offset=data.offset
        )
        _compress_and_gate(
            model,
            dataset,
            CompressConfig(
                modes=config.modes,
                split=config.split,
                sensitivity_mode=config.sensitivity_mode,
                max_quality_drop=config.max_quality_drop,
                qat=config.qat,
                benchmark_threads=config.benchmark_threads,
                data=data,
                conversion=config.conversion,
                gate=config.gate,
            ),
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
