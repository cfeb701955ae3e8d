"""The search's ZenML layer: steps, the result materializer, nas_pipeline through the CLI, and
the search stage of compress_pipeline."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from zenml_quant.errors import InvalidOptionError
from zenml_quant.integration.cli import main
from zenml_quant.integration.materializers import SearchResultMaterializer
from zenml_quant.integration.steps.search import apply_edits, search_architecture, search_candidate
from zenml_quant.search.loop import SearchResult
from zenml_quant.search.settings import SearchSettings

FAST = SearchSettings(
    trials=3, batch_size=3, seed=2, fine_tune_epochs=1, fine_tune_steps=4, measure_latency=False
)
TARGETS = {"max_quality_drop": 0.3, "max_size_bytes": 12_000}


@pytest.fixture(scope="module")
def searched(digits, digits_model):
    return search_architecture.entrypoint(digits_model, digits, targets=TARGETS, settings=FAST)


def test_search_step_outputs(searched):
    result, history, suggestions, best_model, best_tflite, report = searched
    assert isinstance(result, SearchResult) and len(result.trials) == 3
    assert list(history["trial"]) == [0, 1, 2, 3]
    assert len(suggestions) == len(result.pareto) >= 1
    assert best_tflite.size_bytes == result.best.size_bytes
    assert best_model.count_params() == result.best.params
    assert "<svg" in report


def test_search_candidates_are_each_suggestion_once_and_a_missing_rank_fails(searched):
    result = searched[0]
    order = result.candidate_order()
    assert order[0] == result.best_trial and len(set(order)) == len(order)
    assert set(order) <= {result.best_trial} | {s.trial for s in result.suggestions}
    picked = [search_candidate.entrypoint(result, rank=r) for r in range(len(order))]
    assert [p.content for p in picked] == [result.models[t][0] for t in order]
    assert [p.source_model for p in picked] == [f"search_{r + 1}" for r in range(len(order))]
    beyond = search_candidate.entrypoint(result, rank=len(order))
    assert beyond.content == b"" and beyond.source_model == f"search_{len(order) + 1}"
    assert f"no candidate ranked {len(order) + 1}" in beyond.error


def test_apply_edits_step_reproduces_the_suggestion_from_its_yaml(
    searched, digits, digits_model, tmp_path
):
    result = searched[0]
    trial = result.suggestions[0].trial
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(result.record(trial).plan.to_yaml())
    model, plan_text = apply_edits.entrypoint(digits_model, str(plan_file), digits)
    kept = result.keras_model(trial)
    assert model.to_json() == kept.to_json()
    for a, b in zip(model.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert "edits" in plan_text
    with pytest.raises(InvalidOptionError, match="does not exist"):
        apply_edits.entrypoint(digits_model, str(tmp_path / "missing.yaml"))
    with pytest.raises(InvalidOptionError, match="not in model"):
        apply_edits.entrypoint(digits_model, "edits:\n- {layer: nope, op: remove}\n")


def test_search_step_needs_a_target(digits, digits_model):
    with pytest.raises(InvalidOptionError, match="at least one target"):
        search_architecture.entrypoint(digits_model, digits, settings=SearchSettings(trials=1))


def test_search_result_materializer_round_trip(searched):
    import uuid

    from zenml.client import Client

    # materializers only write inside the active (throwaway) artifact store
    tmp_path = (
        Path(Client().active_stack.artifact_store.path) / "zq-search-tests" / uuid.uuid4().hex
    )
    tmp_path.mkdir(parents=True)
    # a repeat count other than the default, so the round trip has something to carry
    result = dataclasses.replace(searched[0], repeats=7)
    materializer = SearchResultMaterializer(uri=str(tmp_path))
    materializer.save(result)
    assert materializer.save_visualizations(result)
    metadata = materializer.extract_metadata(result)
    assert metadata["trials"] == 3 and metadata["best_trial"] == result.best_trial
    loaded = SearchResultMaterializer(uri=str(tmp_path)).load(SearchResult)
    assert loaded.records == result.records and loaded.repeats == 7
    assert loaded.pareto == result.pareto and loaded.best_trial == result.best_trial
    assert loaded.models == result.models
    assert [s.plan for s in loaded.suggestions] == [s.plan for s in result.suggestions]


def test_cli_search_runs_nas_pipeline_and_writes_every_candidate(digits_model_path, tmp_path):
    config = tmp_path / "nas.yaml"
    config.write_text(
        "parameters:\n  config:\n    search:\n"
        "      fine_tune_steps: 4\n      measure_latency: false\n      batch_size: 3\n"
    )
    summary_path = tmp_path / "search.json"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "search",
            "--model",
            str(digits_model_path),
            "--data",
            "digits",
            "--config",
            str(config),
            "--max-trials",
            "3",
            "--seed",
            "1",
            "--candidates",
            "2",
            "--max-size-kb",
            "100",
            "--max-accuracy-drop",
            "0.9",
            "--output-dir",
            str(out),
            "--json",
            str(summary_path),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_path.read_text())
    assert len(summary["candidates"]) == 3 and isinstance(summary["repeats"], int)
    for candidate in summary["candidates"]:
        assert {"trial", "edits", "accuracy", "size_bytes", "pareto", "status"} <= set(candidate)
    assert sum(c["pareto"] for c in summary["candidates"]) == len(summary["pareto"]) >= 1
    assert Path(summary["files"]["best_tflite"]).is_file()
    assert summary["gate"]["passed"] and summary["gate"]["selected"].startswith("search_")
    assert "Architecture search" in result.output


def test_cli_search_needs_a_target(digits_model_path):
    result = CliRunner().invoke(
        main, ["search", "--model", str(digits_model_path), "--data", "digits"]
    )
    assert result.exit_code == 2 and "target" in result.output


def test_compress_pipeline_search_stage_feeds_the_gate(digits_model_path, tmp_path):
    from zenml_quant.integration.pipelines import compress_pipeline

    # The whole run from one YAML file: the pipeline's config and the search step's options.
    config = tmp_path / "compress.yaml"
    config.write_text(
        "parameters:\n  config:\n    modes: [int8]\n    sensitivity_mode: null\n"
        "    max_quality_drop: null\n    benchmark_threads: null\n"
        "    gate:\n      targets: {max_quality_drop: 0.9, max_size_bytes: 100000}\n"
        "    search:\n      trials: 2\n      candidates: 2\n"
        "      fine_tune_steps: 4\n      measure_latency: false\n      batch_size: 2\n"
    )
    run = compress_pipeline.with_options(config_path=str(config))(model_path=str(digits_model_path))
    steps = run.steps
    assert {"zq_search_architecture", "zq_search_candidate_1", "zq_search_candidate_2"} <= set(
        steps
    )
    assert {"zq_evaluate_search_1", "zq_evaluate_search_2", "zq_evaluate_int8"} <= set(steps)
    decision = steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    names = {c.name for c in steps["zq_gate_inputs"].outputs["zq_gate_inputs"][0].load()}
    assert names == {"int8", "search_1", "search_2"}
    assert decision.passed
    metadata = steps["zq_search_architecture"].run_metadata
    assert metadata["trials"] == 2 and "trial_figures" in metadata
    settings = steps["zq_search_architecture"].config.parameters["settings"]
    assert settings["measure_latency"] is False and settings["fine_tune_steps"] == 4
