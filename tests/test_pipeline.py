"""One real ``compress_pipeline`` run on tiny data, on this process's throwaway store."""

from __future__ import annotations

import pytest

# QAT's training options reach the step as one QATOptions, from YAML as a user writes them.
QAT_YAML = """
steps:
  zq_quantization_aware_training:
    parameters:
      training: {epochs: 2, early_stopping_patience: 0, learning_rate: 0.0002, seed: 3}
"""


@pytest.fixture(scope="module")
def run(digits_model_path, tmp_path_factory):
    from zenml_quant.integration import CompressConfig, compress_pipeline

    config_path = tmp_path_factory.mktemp("qat_config") / "run.yaml"
    config_path.write_text(QAT_YAML)
    return compress_pipeline.with_options(enable_cache=False, config_path=str(config_path))(
        model_path=str(digits_model_path),
        config=CompressConfig(modes=("float32", "int8"), qat=True),
    )


def test_pipeline_tracks_every_artifact(run):
    assert run.status.value == "completed"
    steps = run.steps
    expected = {
        "zq_load_keras_model",
        "zq_load_labeled_dataset",
        "zq_evaluate_baseline",
        "zq_convert_float32",
        "zq_convert_int8",
        "zq_evaluate_float32",
        "zq_evaluate_int8",
        "zq_profile_sensitivity",
        "zq_allocate_mixed",
        "zq_evaluate_mixed",
        "zq_quantization_aware_training",
        "zq_evaluate_qat",
        "zq_compare_candidates",
        "zq_benchmark_float32",
        "zq_benchmark_int8",
        "zq_benchmark_mixed",
        "zq_benchmark_qat",
        "zq_gate_inputs",
        "zq_deployment_gate",
        "zq_summarize_run",
    }
    assert expected <= set(steps)
    table = steps["zq_compare_candidates"].outputs["zq_comparison"][0].load()
    assert list(table["name"]) == ["keras", "float32", "int8", "mixed", "qat"]
    assert "float_layers" in table.columns
    int8 = steps["zq_convert_int8"].outputs["zq_tflite_int8"][0].load()
    assert int8.mode == "int8" and int8.inputs[0].dtype == "int8"
    # Each candidate's outputs carry its name, so the dashboard tells them apart.
    for name in ("float32", "int8", "mixed", "qat"):
        producer = {"float32": "zq_convert_float32", "int8": "zq_convert_int8"}.get(name)
        producer = (
            producer
            or {"mixed": "zq_allocate_mixed", "qat": "zq_quantization_aware_training"}[name]
        )
        assert f"zq_tflite_{name}" in steps[producer].outputs
        assert f"zq_evaluation_{name}" in steps[f"zq_evaluate_{name}"].outputs
        assert f"zq_benchmark_{name}" in steps[f"zq_benchmark_{name}"].outputs
    # Our materializers were used, not a pickle fallback.
    artifact = steps["zq_convert_int8"].outputs["zq_tflite_int8"][0]
    assert artifact.materializer.import_path.endswith("TFLiteModelMaterializer")
    model_artifact = steps["zq_load_keras_model"].outputs["zq_keras_model"][0]
    assert model_artifact.materializer.import_path.endswith("KerasModelMaterializer")


def test_the_run_calibrates_once_for_every_int8_model(run):
    from zenml_quant.types import CalibratedModel

    steps = run.steps
    produced = steps["zq_calibrate"].outputs["zq_calibrated_model"][0]
    assert produced.materializer.import_path.endswith("CalibratedModelMaterializer")
    calibrated = produced.load()
    assert isinstance(calibrated, CalibratedModel) and calibrated.ok
    assert calibrated.samples == 500 and calibrated.source_model == "demo_cnn"
    # The int8 conversion and the sensitivity profile both quantize from that one artifact.
    for consumer in ("zq_convert_int8", "zq_profile_sensitivity"):
        assert steps[consumer].inputs["calibrated"][0].id == produced.id, consumer
    assert "calibrated" not in steps["zq_convert_float32"].inputs
    int8 = steps["zq_convert_int8"].outputs["zq_tflite_int8"][0].load()
    assert int8.ok and steps["zq_profile_sensitivity"].run_metadata["int8_accuracy"] > 0.5


def test_every_step_id_of_the_run_is_known_to_the_config_check(run):
    """The --config check maps a step id to the step it runs; a real run's ids agree."""
    from zenml_quant.integration.steps.ids import step_for_id

    ran = {step_id: step.spec.source.attribute for step_id, step in run.steps.items()}
    assert {step_id: step_for_id(step_id) for step_id in ran} == ran


def test_pipeline_logs_metadata_and_visualizations(run):
    step = run.steps["zq_evaluate_baseline"]
    assert step.run_metadata["params"] > 0
    report = step.outputs["zq_baseline_report"][0]
    assert report.visualizations, "the HTML report has no dashboard visualization"


def test_quantization_steps_report_and_log(run):
    steps = run.steps
    for step, report in (
        ("zq_profile_sensitivity", "zq_sensitivity_report"),
        ("zq_allocate_mixed", "zq_precision_report"),
        ("zq_quantization_aware_training", "zq_qat_report"),
    ):
        assert steps[step].outputs[report][0].visualizations, f"{report} has no visualization"
    assert steps["zq_allocate_mixed"].run_metadata["status"] in ("budget met", "budget not met")
    assert "int8_accuracy" in steps["zq_profile_sensitivity"].run_metadata
    qat_step = steps["zq_quantization_aware_training"]
    # Two epochs without early stopping: the YAML's QATOptions reached the step whole.
    assert qat_step.run_metadata["epochs_run"] == 2
    training = qat_step.config.parameters["training"]
    assert training["learning_rate"] == 0.0002 and training["seed"] == 3
    ranked = steps["zq_profile_sensitivity"].outputs["zq_sensitivity"][0].load()
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    # The per-layer precision step keeps its profile, every model it scored and the recipe.
    profile = steps["zq_allocate_mixed"].outputs["zq_precision_profile"][0].load()
    assert {"int4", "int8", "float"} <= set(profile["precision"])
    mixed = steps["zq_allocate_mixed"].outputs["zq_tflite_mixed"][0].load()
    assert dict(mixed.precisions).keys() == {"conv1", "conv2", "logits"}
    assert mixed.recipe.startswith("[") and '"regex": ".*"' in mixed.recipe


def test_every_candidate_is_benchmarked_and_gated(run):
    steps = run.steps
    results = steps["zq_benchmark_int8"].outputs["zq_benchmark_int8"][0].load()
    assert [r.threads for r in results] == [1] and results[0].ok
    assert results[0].p50_ms <= results[0].p90_ms <= results[0].p99_ms
    assert steps["zq_benchmark_int8"].outputs["zq_benchmark_report_int8"][0].visualizations
    measurements = steps["zq_gate_inputs"].outputs["zq_gate_inputs"][0].load()
    assert [m.name for m in measurements] == ["float32", "int8", "mixed", "qat"]
    assert "p99@1" in measurements[1].latency_ms and measurements[1].peak_memory_bytes > 0
    decision = steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    # No targets were set: the default floor (1 point) holds, and the smallest passing
    # candidate within noise of the most accurate is selected, so no passing candidate is
    # both at least as accurate and smaller.
    assert decision.passed
    passing = [m for m in measurements if all(c.passed for c in decision.per_candidate[m.name])]
    chosen = next(m for m in passing if m.name == decision.selected)
    assert not [
        m.name
        for m in passing
        if m.accuracy >= chosen.accuracy and m.size_bytes < chosen.size_bytes
    ]
    assert any("no target set" in reason for reason in decision.reasons)
    # Nothing was asked to be promoted, and the decision says so.
    assert decision.stage is None and "no stage" in decision.promotion


def test_the_summary_holds_every_candidate_and_the_gate(run):
    summary = run.steps["zq_summarize_run"].outputs["zq_run_summary"][0].load()
    assert summary.names == ("float32", "int8", "mixed", "qat")
    decision = run.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert summary.gate == decision
    assert [c.status for c in summary.candidates].count("selected") == 1
    assert all(c.artifact == f"zq_tflite_{c.name}" for c in summary.candidates)
    assert summary.sensitivity and {"layer", "rank"} <= set(summary.sensitivity[0])
    payload = summary.to_dict()
    assert payload["gate"]["selected"] == decision.selected
    assert all(row["benchmark"] for row in payload["candidates"])
    assert run.steps["zq_summarize_run"].outputs["zq_run_report"][0].visualizations


def _gated_run(model_path, model_name, **gate):
    from zenml import Model

    from zenml_quant.integration import CompressConfig, GateConfig, compress_pipeline

    config = CompressConfig(
        modes=("float32", "int8"),
        sensitivity_mode=None,
        max_quality_drop=None,
        gate=GateConfig(raise_on_fail=False, **gate),
    )
    return compress_pipeline.with_options(model=Model(name=model_name), enable_cache=False)(
        model_path=str(model_path), config=config
    )


def test_compress_gate_promotes_only_a_candidate_that_meets_the_targets(digits_model_path):
    from zenml.client import Client

    name = "zq-test-compress-gate"
    missed = _gated_run(digits_model_path, name, targets={"max_size_bytes": 5_000}, stage="staging")
    decision = missed.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert not decision.passed
    assert any("size" in reason and "5,000 B" in reason for reason in decision.reasons)
    first = Client().get_model_version(name, 1)
    assert first.stage is None  # nothing promoted

    met = _gated_run(
        digits_model_path, name, targets={"max_size_bytes": 50_000}, stage="production"
    )
    decision = met.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert decision.passed and decision.selected == "int8"
    second = Client().get_model_version(name, 2)
    assert str(second.stage) in ("production", "ModelStages.PRODUCTION")
    assert second.run_metadata["zq_gate_size_bytes"] < 50_000
    assert second.run_metadata["zq_gate_candidate"] == "int8"


def test_retrain_and_compress_promotes_to_staging():
    from zenml import Model
    from zenml.client import Client

    from zenml_quant.integration import GateConfig, RetrainConfig, retrain_and_compress

    name = "zq-test-retrain"
    config = RetrainConfig(
        epochs=3,
        modes=("int8",),
        sensitivity_mode=None,
        max_quality_drop=None,
        gate=GateConfig(targets={"max_quality_drop": 0.03}, stage="staging"),
    )
    run = retrain_and_compress.with_options(model=Model(name=name), enable_cache=False)(
        config=config
    )
    steps = run.steps
    assert {"zq_load_training_data", "zq_train_demo_model", "zq_deployment_gate"} <= set(steps)
    decision = steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert decision.passed and decision.stage == "staging"
    version = Client().get_model_version(name, 1)
    assert str(version.stage) in ("staging", "ModelStages.STAGING")


def test_a_schedule_on_the_local_orchestrator_is_refused_clearly():
    from zenml_quant.errors import InvalidOptionError
    from zenml_quant.integration import RetrainConfig, schedule_retrain_and_compress

    with pytest.raises(InvalidOptionError, match="cannot run pipelines on a schedule"):
        schedule_retrain_and_compress("0 3 * * 1", config=RetrainConfig(epochs=1))
