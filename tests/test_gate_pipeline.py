"""The deployment gate in real pipeline runs with a ZenML model (on the throwaway store).

No TensorFlow: a step builds the candidates' figures from its parameters.
"""

from __future__ import annotations

import uuid

import pytest
from zenml import Model, pipeline, step
from zenml.client import Client
from zenml.enums import ExecutionMode, ModelStages

from zenml_quant.errors import ConstraintNotMetError
from zenml_quant.gate import CandidateMeasurements, GateDecision
from zenml_quant.integration.gate_step import CHAMPION_ACCURACY_KEY, deployment_gate

TARGETS = {"max_size_bytes": 50_000, "max_latency_ms": 1.0, "min_accuracy": 0.98}


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
        )
    ]


@pipeline(enable_cache=False)
def gate_pipeline(
    accuracy: float,
    size_bytes: int,
    stage: str | None = "production",
    champion_margin: float | None = None,
    raise_on_fail: bool = True,
) -> None:
    candidates = measured_candidate(
        name="int8", accuracy=accuracy, size_bytes=size_bytes, latency_ms=0.03
    )
    deployment_gate(
        candidates,
        champion_margin=champion_margin,
        stage=stage,
        raise_on_fail=raise_on_fail,
        **TARGETS,
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
    gate = run.steps["deployment_gate"]
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
    decision = first.steps["deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert isinstance(decision, GateDecision)
    assert decision.passed and decision.selected == "int8" and decision.stage == "production"
    assert first.steps["deployment_gate"].run_metadata["champion"] == "no production version"
    report = first.steps["deployment_gate"].outputs["zq_gate_report"][0]
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
    decision = second.steps["deployment_gate"].outputs["zq_gate_decision"][0].load()
    assert not decision.passed and decision.stage is None
    assert decision.champion_accuracy == pytest.approx(0.99)
    assert any("worse than champion" in r for r in decision.reasons)

    versions = {
        v.number: v.stage for v in Client().list_model_versions(model_name_or_id=name).items
    }
    assert versions == {1: ModelStages.PRODUCTION.value, 2: None}


def test_entrypoint_outside_a_pipeline_decides_without_promoting():
    candidate = CandidateMeasurements("int8", 0.99, 0.9904, 40_632, {"p50@1": 0.03}, 12_000)
    decision, page = deployment_gate.entrypoint([candidate], stage="production", **TARGETS)
    assert decision.passed and decision.stage == "production"
    assert "PASSED" in page
    with pytest.raises(ConstraintNotMetError, match="size 40,632 B > limit 40,000 B"):
        deployment_gate.entrypoint([candidate], max_size_bytes=40_000)
