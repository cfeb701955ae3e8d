"""``zenml-quant studio``: where the model, data and suggestions come from, and bad options."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from zenml_quant.integration.cli import _prepare_studio, main
from zenml_quant.integration.cli.options import TargetFlags
from zenml_quant.search.edits import Edit, EditPlan


def test_studio_from_files_with_suggestions_and_targets(digits_model_path, tmp_path):
    plan = EditPlan((Edit("conv2", "scale", 0.5),), model="demo_cnn")
    (tmp_path / "plan.yaml").write_text(plan.to_yaml())
    studio = _prepare_studio(
        model_path=str(digits_model_path),
        data_source="digits",
        suggestions=str(tmp_path / "plan.yaml"),
        target_flags=TargetFlags(max_size_kb=12),
        threads=2,
    )
    assert studio.dataset.x_train.shape[1:] == (8, 8, 1)  # conformed to the model
    assert [s.plan.edits for s in studio.suggestions] == [plan.edits]
    assert studio.targets.max_size_bytes == 12_000 and studio.threads == 2


def test_studio_from_a_zenml_model_version_and_an_artifact(digits_model_path):
    from zenml import Model, pipeline

    from zenml_quant.integration.steps import load_keras_model, load_labeled_dataset

    @pipeline(enable_cache=False)
    def linked(path: str) -> None:
        model = load_keras_model(path)
        load_labeled_dataset("digits", model)

    linked.with_options(model=Model(name="zq-test-studio"))(path=str(digits_model_path))
    studio = _prepare_studio(model_version="zq-test-studio:1")  # the data comes from the version
    assert studio.space.model_name == "demo_cnn" and len(studio.dataset.y_val) > 0
    from_artifact = _prepare_studio(artifact="zq_keras_model", data_source="digits")
    assert from_artifact.space.model_name == "demo_cnn"


def test_bad_studio_options_say_what_to_do(digits_model_path, tmp_path):
    runner = CliRunner()
    none = runner.invoke(main, ["studio", "--data", "digits"])
    assert none.exit_code == 2 and "exactly one of --model" in none.output
    both = runner.invoke(
        main, ["studio", "--model", str(digits_model_path), "--artifact", "x", "--data", "digits"]
    )
    assert both.exit_code == 2 and "exactly one of --model" in both.output
    no_data = runner.invoke(main, ["studio", "--model", str(digits_model_path)])
    assert no_data.exit_code == 2 and "--data" in no_data.output
    missing = runner.invoke(
        main, ["studio", "--model", str(digits_model_path), "--data", str(tmp_path / "x.npz")]
    )
    assert missing.exit_code == 2 and "no data at" in missing.output
    unknown = runner.invoke(main, ["studio", "--model-version", "zq-no-such-model"])
    assert unknown.exit_code == 1 and "No ZenML model version" in unknown.output
    wrong_plan = tmp_path / "wrong.yaml"
    wrong_plan.write_text(EditPlan((Edit("dense_9", "remove"),)).to_yaml())
    mismatch = runner.invoke(
        main,
        [
            "studio",
            "--model",
            str(digits_model_path),
            "--data",
            "digits",
            "--suggestions",
            str(wrong_plan),
        ],
    )
    assert mismatch.exit_code == 1 and "does not fit this model" in mismatch.output
    bad_port = runner.invoke(
        main, ["studio", "--model", str(digits_model_path), "--data", "digits", "--port", "-1"]
    )
    assert bad_port.exit_code == 2 and "--port" in bad_port.output
    with pytest.raises(click.UsageError, match="threads"):
        _prepare_studio(model_path=str(digits_model_path), data_source="digits", threads=0)


def test_the_studio_shows_the_summary_of_the_run_its_model_came_from(digits_model_path):
    from _studio_client import page_client
    from zenml import Model

    from zenml_quant.integration import CompressConfig, GateConfig
    from zenml_quant.integration.pipelines import compress_pipeline
    from zenml_quant.studio.app import create_app

    compress_pipeline.with_options(model=Model(name="zq-test-studio-run"), enable_cache=False)(
        model_path=str(digits_model_path),
        config=CompressConfig(
            modes=("int8",),
            sensitivity_mode=None,
            max_quality_drop=None,
            benchmark_threads=None,
            # int8 cannot meet it: the gate refuses
            gate=GateConfig(targets={"max_size_bytes": 1_000}, raise_on_fail=False),
        ),
    )
    studio = _prepare_studio(model_version="zq-test-studio-run")
    assert studio.run_summary is not None and studio.run_summary.names == ("int8",)
    state = page_client(create_app(studio, baseline=False)).get("/api/state").json()
    (row,) = state["run"]["candidates"]
    assert row["name"] == "int8" and row["status"] == "ok" and "1,000 B" in row["reason"]
    assert state["run"]["gate"]["passed"] is False
    assert "no candidate passed" in state["run"]["gate"]["promotion"]
