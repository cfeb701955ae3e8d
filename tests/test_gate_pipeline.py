"""The deployment gate in real pipeline runs with a ZenML model (on the throwaway store).

No TensorFlow: a step builds the candidates' figures and a stand-in ``.tflite`` from its
parameters.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import pytest
from zenml import Model, pipeline, step
from zenml.client import Client
from zenml.enums import ExecutionMode, ModelStages

from zenml_quant.errors import ConstraintNotMetError
from zenml_quant.gate import CandidateMeasurements, GateDecision
from zenml_quant.integration.materializers import TFLiteModelMaterializer
from zenml_quant.integration.steps.gate import (
    CHAMPION_ACCURACY_KEY,
    DEPLOYMENT_ARTIFACT,
    deployment_gate,
)
from zenml_quant.types import ConversionOptions, TFLiteModel

TARGETS = {"max_size_bytes": 50_000, "max_latency_ms": 1.0, "min_quality": 0.98}


def _file(name: str, size: int) -> TFLiteModel:
    content = (name.encode() * size)[:size]  # distinct bytes per candidate
    return TFLiteModel(content, "int8", ConversionOptions(), (), (), ())


@step(enable_cache=False)
def measured_candidate(
    name: str, accuracy: float, size_bytes: int, latency_ms: float
) -> list[CandidateMeasurements]:
    return [
        CandidateMeasurements(
            name=name,
            accuracy=accuracy,
            baseline_accuracy=0.9904,
            size_bytes=size_bytes,
            latency_ms={"p50@1": latency_ms},
            peak_memory_bytes=12_000,
        ),
        CandidateMeasurements(
            name="float32",
            accuracy=0.9904,
            baseline_accuracy=0.9904,
            size_bytes=140_000,
            latency_ms={"p50@1": latency_ms},
            peak_memory_bytes=12_000,
        ),
    ]


@step(enable_cache=False, output_materializers=TFLiteModelMaterializer)
def candidate_file(name: str, size_bytes: int) -> Annotated[TFLiteModel, "test_file"]:
    return _file(name, size_bytes)


@pipeline(enable_cache=False)
def gate_pipeline(
    accuracy: float,
    size_bytes: int,
    stage: str | None = "production",
    champion_margin: float = 0.0,
    replace_unreadable_champion: bool = False,
    raise_on_fail: bool = True,
) -> None:
    candidates = measured_candidate(
        name="int8", accuracy=accuracy, size_bytes=size_bytes, latency_ms=0.03
    )
    files = [
        candidate_file("int8", size_bytes, id="file_int8"),
        candidate_file("float32", 140_000, id="file_float32"),
    ]
    deployment_gate(
        candidates,
        tflite_models=files,
        targets=TARGETS,
        champion_margin=champion_margin,
        replace_unreadable_champion=replace_unreadable_champion,
        stage=stage,
        raise_on_fail=raise_on_fail,
    )


def _run(model_name: str, **params):
    return gate_pipeline.with_options(model=Model(name=model_name))(**params)


def _last_run(model_name: str):
    version = Client().get_model_version(model_name, ModelStages.LATEST)
    runs = Client().list_pipeline_runs(model_version_id=version.id, sort_by="desc:created")
    return version, runs.items[0]


def test_missed_target_fails_the_run_and_promotes_nothing():
    name = f"zq-gate-{uuid.uuid4().hex[:8]}"
    # ZenML 0.98's default execution mode (continue on failure) reports the failed step...
    with pytest.raises(RuntimeError, match="failure in step.*deployment_gate"):
        _run(name, accuracy=0.99, size_bytes=60_632)

    version, run = _last_run(name)
    assert run.status.value == "failed"
    assert version.stage is None  # not promoted
    gate = run.steps["zq_deployment_gate"]
    assert gate.status.value == "failed"
    assert gate.exception_info is not None
    assert "int8: size 60,632 B > limit 50,000 B" in (gate.exception_info.message or "")
    # The run says why, although the failed step saved no output.
    assert gate.run_metadata["passed"] is False
    assert gate.run_metadata["failed_checks"] == ["size"]
    assert "int8: size 60,632 B > limit 50,000 B" in gate.run_metadata["reasons"]

    # ... and FAIL_FAST re-raises the gate's own error.
    with pytest.raises(ConstraintNotMetError, match="size 60,632 B > limit 50,000 B"):
        gate_pipeline.with_options(model=Model(name=name), execution_mode=ExecutionMode.FAIL_FAST)(
            accuracy=0.99, size_bytes=60_632
        )
    assert Client().get_model_version(name, ModelStages.LATEST).stage is None


def test_pass_promotes_and_a_worse_challenger_does_not_replace_the_champion():
    name = f"zq-gate-{uuid.uuid4().hex[:8]}"
    first = _run(name, accuracy=0.99, size_bytes=40_632, champion_margin=0.0)
    assert first.status.value == "completed"
    decision = first.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert isinstance(decision, GateDecision)
    assert decision.passed and decision.selected == "int8" and decision.stage == "production"
    assert "promoted to production" in decision.promotion and decision.champion is None
    report = first.steps["zq_deployment_gate"].outputs["zq_gate_report"][0]
    assert report.visualizations

    champion = Client().get_model_version(name, ModelStages.PRODUCTION)
    assert champion.number == 1
    metadata = champion.run_metadata
    assert metadata[CHAMPION_ACCURACY_KEY] == pytest.approx(0.99)
    assert metadata["zq_gate_candidate"] == "int8"
    assert metadata["zq_gate_size_bytes"] == 40_632
    assert metadata["zq_gate_latency_ms"] == {"p50@1": pytest.approx(0.03)}
    assert metadata["zq_gate_peak_memory_bytes"] == 12_000

    # A challenger that meets every fixed target but is less accurate than the champion.
    second = _run(name, accuracy=0.985, size_bytes=30_000, champion_margin=0.0, raise_on_fail=False)
    assert second.status.value == "completed"
    decision = second.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert not decision.passed and decision.stage is None
    assert decision.champion_accuracy == pytest.approx(0.99)
    assert any("worse than the champion" in r for r in decision.reasons)

    versions = {
        v.number: v.stage for v in Client().list_model_versions(model_name_or_id=name).items
    }
    assert versions == {1: ModelStages.PRODUCTION.value, 2: None}


def test_the_promoted_version_holds_the_chosen_file_byte_for_byte():
    name = f"zq-gate-{uuid.uuid4().hex[:8]}"
    _run(name, accuracy=0.99, size_bytes=40_632)
    production = Client().get_model_version(name, ModelStages.PRODUCTION)
    deployed = production.get_deployment_artifact(DEPLOYMENT_ARTIFACT)
    assert deployed is not None
    loaded = deployed.load()
    assert loaded.content == _file("int8", 40_632).content  # not float32's, not another run's
    assert production.run_metadata["zq_gate_candidate"] == "int8"
    # Through the Model API a user would call, too.
    assert (
        Model(name=name, version="production")
        .get_deployment_artifact(DEPLOYMENT_ARTIFACT)
        .load()
        .content
        == loaded.content
    )


def test_an_unreadable_champion_blocks_promotion_unless_replacing_is_asked():
    name = f"zq-gate-{uuid.uuid4().hex[:8]}"
    _run(name, accuracy=0.99, size_bytes=40_632)
    champion = Client().get_model_version(name, ModelStages.PRODUCTION)
    # The metadata of a champion promoted by another tool, or damaged: not a number.
    Client().create_run_metadata(
        metadata={CHAMPION_ACCURACY_KEY: "n/a"},
        resources=[_resource(champion.id)],
    )
    blocked = _run(name, accuracy=0.995, size_bytes=30_000, raise_on_fail=False)
    decision = blocked.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert not decision.passed and decision.stage is None
    assert any("replace-unreadable-champion" in r for r in decision.reasons)
    assert Client().get_model_version(name, ModelStages.PRODUCTION).number == champion.number

    replaced = _run(name, accuracy=0.995, size_bytes=30_000, replace_unreadable_champion=True)
    decision = replaced.steps["zq_deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert decision.passed and decision.stage == "production"
    assert Client().get_model_version(name, ModelStages.PRODUCTION).number == 3


def _resource(version_id):
    from zenml.enums import MetadataResourceTypes
    from zenml.models import RunMetadataResource

    return RunMetadataResource(id=version_id, type=MetadataResourceTypes.MODEL_VERSION)


def test_entrypoint_outside_a_pipeline_decides_without_promoting():
    candidate = CandidateMeasurements("int8", 0.99, 0.9904, 40_632, {"p50@1": 0.03}, 12_000)
    decision, page = deployment_gate.entrypoint([candidate], stage="production", targets=TARGETS)
    assert decision.passed and decision.stage is None and decision.requested_stage == "production"
    assert "no ZenML model" in decision.promotion
    assert "PASSED" in page
    with pytest.raises(ConstraintNotMetError, match="size 40,632 B > limit 40,000 B"):
        deployment_gate.entrypoint([candidate], targets={"max_size_bytes": 40_000})
