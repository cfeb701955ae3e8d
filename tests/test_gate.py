"""The deployment gate's pure checks and decision (no ZenML run, no TensorFlow)."""

from __future__ import annotations

import math

import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.gate import (
    CandidateMeasurements,
    GateDecision,
    GatePolicy,
    check_candidate,
    decide,
    decision_html,
    decision_table,
)


def cand(name: str = "int8", **overrides) -> CandidateMeasurements:
    figures = {
        "accuracy": 0.9906,
        "baseline_accuracy": 0.9904,
        "size_bytes": 40_832,
        "latency_ms": {"p50@1": 0.026, "p90@1": 0.03, "p50@2": 0.02},
        "peak_memory_bytes": 30_000,
        "error": None,
    }
    figures.update(overrides)
    return CandidateMeasurements(name=name, **figures)


def by_name(checks):
    return {c.name: c for c in checks}


# -- each check --------------------------------------------------------------------------------


def test_no_limits_means_no_checks():
    assert check_candidate(GatePolicy(), cand()) == ()
    decision = decide(GatePolicy(), [cand()])
    assert decision.passed and decision.selected == "int8"


@pytest.mark.parametrize(
    ("policy", "name", "passed", "reason"),
    [
        (GatePolicy(min_accuracy=0.98), "accuracy", True, "accuracy 99.06 % >= minimum 98.00 %"),
        (GatePolicy(min_accuracy=0.995), "accuracy", False, "accuracy 99.06 % < minimum 99.50 %"),
        (GatePolicy(max_size_bytes=50_000), "size", True, "size 40,832 B <= limit 50,000 B"),
        (GatePolicy(max_size_bytes=40_000), "size", False, "size 40,832 B > limit 40,000 B"),
        (GatePolicy(max_latency_ms=1.0), "latency", True, "latency p50@1 0.026 ms <= limit 1 ms"),
        (
            GatePolicy(max_latency_ms=0.025, latency_percentile="p90"),
            "latency",
            False,
            "latency p90@1 0.03 ms > limit 0.025 ms",
        ),
        (
            GatePolicy(max_latency_ms=0.021, latency_threads=2),
            "latency",
            True,
            "latency p50@2 0.02 ms <= limit 0.021 ms",
        ),
        (
            GatePolicy(max_peak_memory_bytes=32_000),
            "peak_memory",
            True,
            "peak memory 30,000 B <= limit 32,000 B",
        ),
        (
            GatePolicy(max_peak_memory_bytes=20_000),
            "peak_memory",
            False,
            "peak memory 30,000 B > limit 20,000 B",
        ),
    ],
)
def test_each_limit_passes_and_fails(policy, name, passed, reason):
    (check,) = check_candidate(policy, cand())
    assert check.name == name
    assert check.passed is passed
    assert check.reason == reason


def test_absolute_accuracy_drop():
    policy = GatePolicy(max_accuracy_drop=0.01)
    (ok,) = check_candidate(policy, cand(accuracy=0.9805, baseline_accuracy=0.99))
    assert ok.passed and ok.name == "accuracy_drop"
    assert ok.value == pytest.approx(0.0095)
    (bad,) = check_candidate(policy, cand(accuracy=0.978, baseline_accuracy=0.99))
    assert not bad.passed
    assert "1.20 points > limit 1.00 points" in bad.reason
    # Exactly at the limit passes despite float rounding.
    (edge,) = check_candidate(policy, cand(accuracy=0.98, baseline_accuracy=0.99))
    assert edge.passed


def test_relative_accuracy_drop():
    # A 0.9 point drop from 90 % is 1 % of the baseline: within 1 % relative, not 0.5 %.
    figures = {"accuracy": 0.891, "baseline_accuracy": 0.9}
    (ok,) = check_candidate(GatePolicy(max_accuracy_drop=0.01, relative_drop=True), cand(**figures))
    assert ok.passed and ok.value == pytest.approx(0.01)
    (bad,) = check_candidate(
        GatePolicy(max_accuracy_drop=0.005, relative_drop=True), cand(**figures)
    )
    assert not bad.passed and "% of baseline" in bad.reason
    # The same figures in absolute mode: 0.9 points > 0.5 points.
    (absolute,) = check_candidate(GatePolicy(max_accuracy_drop=0.005), cand(**figures))
    assert not absolute.passed


def test_accuracy_gain_is_not_a_drop():
    (check,) = check_candidate(GatePolicy(max_accuracy_drop=0.0), cand())  # 99.04 -> 99.06
    assert check.passed


# -- fail closed -------------------------------------------------------------------------------


def test_missing_measurements_fail_closed():
    policy = GatePolicy(
        min_accuracy=0.9,
        max_accuracy_drop=0.01,
        max_size_bytes=50_000,
        max_latency_ms=1.0,
        max_peak_memory_bytes=100_000,
    )
    missing = cand(
        accuracy=None,
        baseline_accuracy=None,
        size_bytes=None,
        latency_ms={},
        peak_memory_bytes=None,
    )
    checks = by_name(check_candidate(policy, missing))
    assert set(checks) == {"accuracy", "accuracy_drop", "size", "latency", "peak_memory"}
    assert not any(c.passed for c in checks.values())
    assert checks["latency"].reason == "latency p50@1 not measured"
    assert checks["size"].reason == "size not measured"
    assert checks["accuracy_drop"].reason == "accuracy drop not measured (accuracy missing)"
    assert all(c.value is None for c in checks.values())


def test_latency_at_another_percentile_or_thread_count_does_not_count():
    policy = GatePolicy(max_latency_ms=1.0, latency_threads=4)
    (check,) = check_candidate(policy, cand())
    assert not check.passed
    assert check.reason.startswith("latency p50@4 not measured (measured: ")


def test_nan_fails_closed():
    policy = GatePolicy(min_accuracy=0.5, max_latency_ms=1.0, max_accuracy_drop=0.01)
    checks = by_name(
        check_candidate(
            policy,
            cand(accuracy=math.nan, latency_ms={"p50@1": math.nan}, baseline_accuracy=0.9),
        )
    )
    assert not checks["accuracy"].passed and checks["accuracy"].value is None
    assert not checks["latency"].passed
    assert not checks["accuracy_drop"].passed


def test_candidate_error_fails_every_check():
    policy = GatePolicy(max_size_bytes=50_000)
    checks = by_name(check_candidate(policy, cand(error="allocate_tensors() failed")))
    assert set(checks) == {"size", "error"}
    assert not checks["size"].passed
    assert "candidate failed: allocate_tensors() failed" in checks["size"].reason
    # Even a policy without limits never promotes a failed candidate.
    decision = decide(GatePolicy(), [cand(error="boom")])
    assert not decision.passed
    assert decision.reasons == ("int8: candidate failed: boom",)


def test_required_without_limit_passes_iff_measured():
    policy = GatePolicy(required=("latency", "size"))
    checks = by_name(check_candidate(policy, cand()))
    assert checks["latency"].passed and checks["latency"].limit is None
    assert checks["latency"].reason == "latency p50@1 0.026 ms measured (no limit)"
    assert checks["size"].passed
    checks = by_name(check_candidate(policy, cand(latency_ms={})))
    assert not checks["latency"].passed and checks["size"].passed


# -- champion ----------------------------------------------------------------------------------


def test_champion_margin():
    policy = GatePolicy(champion_margin=0.0)
    (none,) = check_candidate(policy, cand(), champion_accuracy=None)
    assert none.passed and none.reason == "no champion"
    (better,) = check_candidate(policy, cand(accuracy=0.99), champion_accuracy=0.99)
    assert better.passed
    (worse,) = check_candidate(policy, cand(accuracy=0.98), champion_accuracy=0.99)
    assert not worse.passed and worse.reason.startswith("worse than champion")
    # Within a one point margin, the same candidate passes.
    (tolerated,) = check_candidate(
        GatePolicy(champion_margin=0.01), cand(accuracy=0.98), champion_accuracy=0.99
    )
    assert tolerated.passed
    (unmeasured,) = check_candidate(policy, cand(accuracy=None), champion_accuracy=0.99)
    assert not unmeasured.passed


def test_no_champion_check_without_margin():
    assert check_candidate(GatePolicy(), cand(accuracy=0.1), champion_accuracy=0.99) == ()


# -- decision ----------------------------------------------------------------------------------


def test_selection_smallest_size_then_latency_then_name():
    policy = GatePolicy(max_size_bytes=100_000, max_latency_ms=1.0)
    big = cand("float32", size_bytes=90_000, latency_ms={"p50@1": 0.01})
    small_slow = cand("int8_slow", size_bytes=40_000, latency_ms={"p50@1": 0.5})
    small_fast = cand("int8_fast", size_bytes=40_000, latency_ms={"p50@1": 0.1})
    too_big = cand("huge", size_bytes=200_000, latency_ms={"p50@1": 0.001})
    decision = decide(policy, [big, small_slow, too_big, small_fast], stage="production")
    assert decision.passed
    assert decision.selected == "int8_fast" and decision.checked == "int8_fast"
    assert decision.stage == "production"
    assert all(c.passed for c in decision.checks)
    assert set(decision.per_candidate) == {"float32", "int8_slow", "int8_fast", "huge"}
    assert any("smallest size" in r for r in decision.reasons)
    # Same size and latency: the name decides, deterministically.
    twins = [cand("b"), cand("a")]
    assert decide(policy, twins).selected == "a"


def test_failing_decision_reports_best_failing_candidate():
    policy = GatePolicy(max_size_bytes=40_000, min_accuracy=0.99)
    near = cand("int8", size_bytes=40_632)  # only the size misses
    far = cand("float32", size_bytes=142_164, accuracy=0.95)  # both miss
    decision = decide(policy, [far, near], stage="production")
    assert not decision.passed
    assert decision.selected is None and decision.stage is None
    assert decision.checked == "int8"
    assert [c.name for c in decision.failed_checks] == ["size"]
    assert "int8: size 40,632 B > limit 40,000 B" in decision.reasons
    assert any(r.startswith("float32: accuracy") for r in decision.reasons)


def test_no_candidates_fails():
    decision = decide(GatePolicy(max_size_bytes=1), [])
    assert not decision.passed and decision.selected is None
    assert "no candidates" in decision.reasons[0]


def test_champion_passed_through():
    decision = decide(GatePolicy(champion_margin=0.0), [cand(accuracy=0.9)], champion_accuracy=0.95)
    assert not decision.passed
    assert decision.champion_accuracy == 0.95
    assert "worse than champion" in decision.reasons[0]


# -- invalid policies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_size_bytes": -1}, "max_size_bytes must be a number >= 0"),
        ({"max_latency_ms": math.nan}, "max_latency_ms must be a number >= 0"),
        ({"min_accuracy": 98.0}, "divide a percentage by 100"),
        ({"max_accuracy_drop": 2.0, "relative_drop": True}, "fraction of the baseline"),
        ({"latency_percentile": "p95"}, "use one of p50, p90, p99, mean"),
        ({"latency_threads": 0}, "latency_threads must be an integer >= 1"),
        ({"required": ("speed",)}, "Unknown required check"),
        ({"required": ("champion",)}, "set champion_margin"),
        ({"required": "latency"}, "not a string"),
        ({"champion_margin": -0.1}, "champion_margin must be a number >= 0"),
    ],
)
def test_invalid_policy(kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        GatePolicy(**kwargs)


def test_invalid_stage_and_duplicate_names():
    with pytest.raises(InvalidOptionError, match="'staging', 'production' or None"):
        decide(GatePolicy(), [cand()], stage="prod")
    with pytest.raises(InvalidOptionError, match="must be unique"):
        decide(GatePolicy(), [cand("a"), cand("a")])


# -- reports and round trip --------------------------------------------------------------------


def _decision() -> GateDecision:
    policy = GatePolicy(max_size_bytes=50_000, max_latency_ms=1.0, champion_margin=0.0)
    return decide(
        policy,
        [cand("int8"), cand("float32", size_bytes=142_164), cand("broken", error="boom")],
        champion_accuracy=0.99,
        stage="production",
    )


def test_decision_table_and_html():
    decision = _decision()
    table = decision_table(decision)
    assert list(table.columns) == [
        "candidate",
        "selected",
        "check",
        "value",
        "limit",
        "passed",
        "reason",
    ]
    assert set(table["candidate"]) == {"int8", "float32", "broken"}
    assert table.loc[table["candidate"] == "int8", "selected"].all()
    page = decision_html(decision)
    assert "Deployment gate PASSED: int8 selected for production" in page
    assert "size 142,164 B &gt; limit 50,000 B" in page
    assert "champion (current production) accuracy: 99.00 %" in page
    failed = decision_html(decide(GatePolicy(max_size_bytes=1), [cand()]))
    assert "FAILED" in failed


@pytest.fixture()
def store_dir():
    """A fresh folder inside the active (throwaway) artifact store."""
    import uuid
    from pathlib import Path

    from zenml.client import Client

    root = Path(Client().active_stack.artifact_store.path) / "zq-gate-tests" / uuid.uuid4().hex
    root.mkdir(parents=True)
    return root


def test_decision_round_trips_through_zenml_materializer(store_dir):
    from zenml.materializers.materializer_registry import materializer_registry

    decision = _decision()
    materializer_cls = materializer_registry[GateDecision]
    assert materializer_cls.__name__ == "DataclassMaterializer"
    materializer_cls(uri=str(store_dir)).save(decision)
    loaded = materializer_cls(uri=str(store_dir)).load(GateDecision)
    assert loaded == decision
    assert isinstance(loaded.checks, tuple) and isinstance(loaded.per_candidate["int8"], tuple)

    candidate = cand(latency_ms={"p50@1": 0.5, "p90@4": 0.25})
    measurements_cls = materializer_registry[CandidateMeasurements]
    (store_dir / "m").mkdir()
    measurements_cls(uri=str(store_dir / "m")).save(candidate)
    assert measurements_cls(uri=str(store_dir / "m")).load(CandidateMeasurements) == candidate
