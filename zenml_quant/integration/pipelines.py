"""Reusable pipeline definitions built from the plugin's steps."""

from __future__ import annotations

from typing import Any

from zenml import pipeline
from zenml.client import Client
from zenml.config.schedule import Schedule
from zenml.enums import ExecutionMode

from ..errors import InvalidOptionError
from .device_steps import benchmark_on_device, gate_inputs
from .gate_step import deployment_gate
from .search_steps import search_architecture, search_candidate
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
    "build_retrain_and_compress",
    "compress_pipeline",
    "nas_pipeline",
    "retrain_and_compress",
    "schedule_retrain_and_compress",
]


def _compress_and_gate(
    model: Any,
    dataset: Any,
    *,
    modes: tuple[str, ...],
    split: str,
    metric: str | None,
    sensitivity_mode: str | None,
    max_accuracy_drop: float | None,
    relative_drop: bool,
    qat: bool,
    benchmark_threads: tuple[int, ...] | None,
    gate: dict[str, Any],
    search: dict[str, Any] | None = None,
) -> None:
    """The steps the pipelines share, from a loaded model and dataset to the gate.

    ``search`` (the ``search_architecture`` parameters plus ``candidates``) adds the
    architecture search; its targets are the gate's, and its best ``candidates`` models join
    the others as ``search_1``, ``search_2``, ...
    """
    # The baseline needs the float32 file (size, peak memory) and so does the float32
    # candidate: convert once and share it.
    float_model = convert_to_tflite(model, dataset, mode="float32", id="convert_float32")
    baseline, _, _ = evaluate_baseline(
        model, dataset, float_model=float_model, split=split, metric=metric
    )
    tflite_models = {}
    for mode in modes:
        tflite_models[mode] = (
            float_model
            if mode == "float32"
            else convert_to_tflite(model, dataset, mode=mode, id=f"convert_{mode}")
        )
    sensitivity = None
    if sensitivity_mode is not None:
        sensitivity, _ = profile_sensitivity(model, dataset, mode=sensitivity_mode)
    if max_accuracy_drop is not None:
        tflite_models["mixed"], _, _ = quantize_post_training(
            model,
            dataset,
            sensitivity=sensitivity,
            max_accuracy_drop=max_accuracy_drop,
            relative_drop=relative_drop,
            id="quantize_mixed",
        )
    if qat:
        tflite_models["qat"], _, _ = quantization_aware_training(model, dataset)
    if search:
        search = dict(search)
        count = int(search.pop("candidates", 1))
        targets = {
            "min_accuracy": gate.get("min_accuracy"),
            "max_accuracy_drop": gate.get("max_accuracy_drop"),
            "relative_drop": gate.get("relative_drop", False),
            "max_size_bytes": gate.get("max_size_bytes"),
            "max_latency_ms": gate.get("max_latency_ms"),
            "max_peak_memory_bytes": gate.get("max_peak_memory_bytes"),
        }
        result, _, _, _, _, _ = search_architecture(model, dataset, **search, **targets)
        for rank in range(count):
            tflite_models[f"search_{rank + 1}"] = search_candidate(
                result, rank=rank, id=f"search_candidate_{rank + 1}"
            )
    candidates, benchmarks = [], []
    for name, tflite in tflite_models.items():
        candidates.append(
            evaluate_tflite_model(
                tflite, dataset, split=split, name=name, metric=metric, id=f"evaluate_{name}"
            )
        )
        if benchmark_threads:
            results, _ = benchmark_on_device(
                tflite, dataset, name=name, threads=list(benchmark_threads), id=f"benchmark_{name}"
            )
            benchmarks.append(results)
    compare_candidates(baseline, candidates)
    measurements = gate_inputs(baseline, candidates, benchmarks or None)
    deployment_gate(measurements, **gate)


def _gate_parameters(**values: Any) -> dict[str, Any]:
    return {key.removeprefix("gate_"): value for key, value in values.items()}


# Fail fast: nothing downstream of a model or dataset that did not load is worth running, and
# the local orchestrator then re-raises the step's own error (with its actionable message).
@pipeline(execution_mode=ExecutionMode.FAIL_FAST)
def compress_pipeline(
    model_path: str,
    data_source: str = "digits",
    modes: tuple[str, ...] = ("float32", "int8"),
    split: str = "test",
    scale: float = 1 / 255,
    offset: float = 0.0,
    allow_unsafe: bool = False,
    metric: str | None = None,
    sensitivity_mode: str | None = "fast",
    max_accuracy_drop: float | None = 0.01,
    relative_drop: bool = False,
    qat: bool = False,
    benchmark_threads: tuple[int, ...] | None = (1,),
    gate_min_accuracy: float | None = None,
    gate_max_accuracy_drop: float | None = None,
    gate_relative_drop: bool = False,
    gate_max_size_bytes: int | None = None,
    gate_max_latency_ms: float | None = None,
    gate_latency_percentile: str = "p50",
    gate_latency_threads: int = 1,
    gate_max_peak_memory_bytes: int | None = None,
    gate_champion_margin: float | None = None,
    gate_stage: str | None = None,
    gate_raise_on_fail: bool = True,
    search_trials: int = 0,
    search_candidates: int = 1,
    search_time_budget_min: float | None = None,
    search_seed: int = 0,
    search_executor: str = "inprocess",
) -> None:
    """load -> sensitivity -> convert / quantize / QAT / search -> evaluate, benchmark -> compare
    -> gate.

    Candidates: one per ``modes`` entry (step ids ``convert_<mode>``, ``evaluate_<mode>``,
    ``benchmark_<mode>``); ``mixed``, the accuracy-controlled int8 model with the fewest float
    layers whose drop on the validation split is at most ``max_accuracy_drop``
    (``quantize_mixed``; None skips it); and ``qat``, quantization-aware training converted to
    int8, when ``qat`` is set. ``sensitivity_mode`` (``"fast"``, ``"exhaustive"`` or None)
    profiles the layers first. Each candidate is benchmarked in a fresh process at
    ``benchmark_threads`` (None skips it; the gate then uses the evaluation's latency). The
    ``gate_*`` parameters are the deployment gate's policy (:class:`zenml_quant.gate.GatePolicy`);
    with ``gate_stage`` and a ZenML model on the run, the best passing candidate's model version
    is promoted to that stage. A YAML config sets step options by id. ``metric`` names an extra
    ``(labels, outputs) -> float`` function, ``"module:function"``. ``search_trials`` > 0 adds
    the architecture search (step ``search_architecture``, targets = the gate's) and its best
    ``search_candidates`` models as candidates ``search_1``, ...; other search options are set
    on the ``search_architecture`` step in the YAML config.
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    dataset = load_labeled_dataset(data_source, model=model, scale=scale, offset=offset)
    _compress_and_gate(
        model,
        dataset,
        modes=modes,
        split=split,
        metric=metric,
        sensitivity_mode=sensitivity_mode,
        max_accuracy_drop=max_accuracy_drop,
        relative_drop=relative_drop,
        qat=qat,
        benchmark_threads=benchmark_threads,
        gate=_gate_parameters(
            gate_min_accuracy=gate_min_accuracy,
            gate_max_accuracy_drop=gate_max_accuracy_drop,
            gate_relative_drop=gate_relative_drop,
            gate_max_size_bytes=gate_max_size_bytes,
            gate_max_latency_ms=gate_max_latency_ms,
            gate_latency_percentile=gate_latency_percentile,
            gate_latency_threads=gate_latency_threads,
            gate_max_peak_memory_bytes=gate_max_peak_memory_bytes,
            gate_champion_margin=gate_champion_margin,
            gate_stage=gate_stage,
            gate_raise_on_fail=gate_raise_on_fail,
        ),
        search=_search_parameters(
            search_trials,
            search_candidates,
            search_time_budget_min,
            search_seed,
            search_executor,
        ),
    )


def _search_parameters(
    trials: int, candidates: int, time_budget_min: float | None, seed: int, executor: str
) -> dict[str, Any] | None:
    if trials <= 0:
        return None
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
    max_trials: int = 30,
    candidates: int = 3,
    time_budget_min: float | None = None,
    seed: int = 0,
    executor: str = "inprocess",
    benchmark_threads: tuple[int, ...] | None = (1,),
    gate_min_accuracy: float | None = None,
    gate_max_accuracy_drop: float | None = None,
    gate_relative_drop: bool = False,
    gate_max_size_bytes: int | None = None,
    gate_max_latency_ms: float | None = None,
    gate_max_peak_memory_bytes: int | None = None,
    gate_stage: str | None = None,
    gate_raise_on_fail: bool = True,
) -> None:
    """load -> baseline -> architecture search -> the best ``candidates`` searched models ->
    evaluate on ``split``, benchmark -> compare -> gate.

    The ``gate_*`` targets are both the search's targets and the gate's policy. Search options
    beyond these (fine-tuning, proposer, batch size, space narrowing, ...) are set on the
    ``search_architecture`` step in a YAML config.
    """
    model = load_keras_model(model_path, allow_unsafe=allow_unsafe)
    dataset = load_labeled_dataset(data_source, model=model, scale=scale, offset=offset)
    _compress_and_gate(
        model,
        dataset,
        modes=(),
        split=split,
        metric=None,
        sensitivity_mode=None,
        max_accuracy_drop=None,
        relative_drop=False,
        qat=False,
        benchmark_threads=benchmark_threads,
        gate=_gate_parameters(
            gate_min_accuracy=gate_min_accuracy,
            gate_max_accuracy_drop=gate_max_accuracy_drop,
            gate_relative_drop=gate_relative_drop,
            gate_max_size_bytes=gate_max_size_bytes,
            gate_max_latency_ms=gate_max_latency_ms,
            gate_max_peak_memory_bytes=gate_max_peak_memory_bytes,
            gate_stage=gate_stage,
            gate_raise_on_fail=gate_raise_on_fail,
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
        max_accuracy_drop: float | None = 0.01,
        qat: bool = False,
        benchmark_threads: tuple[int, ...] | None = (1,),
        gate_min_accuracy: float | None = None,
        gate_max_accuracy_drop: float | None = 0.01,
        gate_max_size_bytes: int | None = None,
        gate_max_latency_ms: float | None = None,
        gate_latency_percentile: str = "p50",
        gate_max_peak_memory_bytes: int | None = None,
        gate_champion_margin: float | None = 0.0,
        gate_stage: str | None = "staging",
    ) -> None:
        """Retrain on fresh data, compress, benchmark, and promote only what passes the gate.

        By default the gate asks for at most 1 point of accuracy lost to compression and no
        regression against the current production model (``gate_champion_margin=0``), and
        promotes the run's model version to ``staging``. Run it with a ZenML model
        (``.with_options(model=Model(name=...))``) for the promotion to happen.
        """
        raw = load_labeled_dataset(data_source, scale=scale, offset=offset, id="load_training_data")
        model = trainer(raw, epochs=epochs)
        dataset = load_labeled_dataset(data_source, model=model, scale=scale, offset=offset)
        _compress_and_gate(
            model,
            dataset,
            modes=modes,
            split=split,
            metric=None,
            sensitivity_mode=sensitivity_mode,
            max_accuracy_drop=max_accuracy_drop,
            relative_drop=False,
            qat=qat,
            benchmark_threads=benchmark_threads,
            gate=_gate_parameters(
                gate_min_accuracy=gate_min_accuracy,
                gate_max_accuracy_drop=gate_max_accuracy_drop,
                gate_max_size_bytes=gate_max_size_bytes,
                gate_max_latency_ms=gate_max_latency_ms,
                gate_latency_percentile=gate_latency_percentile,
                gate_max_peak_memory_bytes=gate_max_peak_memory_bytes,
                gate_champion_margin=gate_champion_margin,
                gate_stage=gate_stage,
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
