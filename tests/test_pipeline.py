"""One real ``compress_pipeline`` run on tiny data, on this process's throwaway store."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def run(digits_model_path):
    from zenml_quant.integration import compress_pipeline

    return compress_pipeline.with_options(enable_cache=False)(
        model_path=str(digits_model_path),
        data_source="digits",
        modes=("float32", "int8"),
        qat=True,
    )


def test_pipeline_tracks_every_artifact(run):
    assert run.status.value == "completed"
    steps = run.steps
    expected = {
        "load_keras_model",
        "load_labeled_dataset",
        "evaluate_baseline",
        "convert_float32",
        "convert_int8",
        "evaluate_float32",
        "evaluate_int8",
        "profile_sensitivity",
        "quantize_mixed",
        "evaluate_mixed",
        "quantization_aware_training",
        "evaluate_qat",
        "compare_candidates",
    }
    assert expected <= set(steps)
    table = steps["compare_candidates"].outputs["zq_comparison"][0].load()
    assert list(table["name"]) == ["keras", "float32", "int8", "mixed", "qat"]
    assert "float_layers" in table.columns
    int8 = steps["convert_int8"].outputs["zq_tflite_model"][0].load()
    assert int8.mode == "int8" and int8.inputs[0].dtype == "int8"
    # Our materializers were used, not a pickle fallback.
    artifact = steps["convert_int8"].outputs["zq_tflite_model"][0]
    assert artifact.materializer.import_path.endswith("TFLiteModelMaterializer")
    model_artifact = steps["load_keras_model"].outputs["zq_keras_model"][0]
    assert model_artifact.materializer.import_path.endswith("KerasModelMaterializer")


def test_pipeline_logs_metadata_and_visualizations(run):
    step = run.steps["evaluate_baseline"]
    assert step.run_metadata["params"] > 0
    report = step.outputs["zq_baseline_report"][0]
    assert report.visualizations, "the HTML report has no dashboard visualization"


def test_quantization_steps_report_and_log(run):
    steps = run.steps
    for step, report in (
        ("profile_sensitivity", "zq_sensitivity_report"),
        ("quantize_mixed", "zq_ptq_report"),
        ("quantization_aware_training", "zq_qat_report"),
    ):
        assert steps[step].outputs[report][0].visualizations, f"{report} has no visualization"
    assert steps["quantize_mixed"].run_metadata["status"] in ("budget met", "budget not met")
    assert "int8_accuracy" in steps["profile_sensitivity"].run_metadata
    assert steps["quantization_aware_training"].run_metadata["epochs_run"] >= 1
    ranked = steps["profile_sensitivity"].outputs["zq_sensitivity"][0].load()
    assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
    # The mixed step ranked its layers with the profile it was given, not a second one.
    mixed_inputs = steps["quantize_mixed"].inputs
    assert "sensitivity" in mixed_inputs
