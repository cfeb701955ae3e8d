"""The deployment gate's pure decision: fail closed on every figure, never raise.

No ZenML run, no TensorFlow. The table below feeds every figure the gate reads (candidate
accuracy, size, latency, peak memory; the original's accuracy; the champion's accuracy) every
kind of bad value, and asserts a refusal whose reason names the figure.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from zenml_quant.gate import (
    CandidateMeasurements,
    Champion,
    GateDecision,
    GateOptions,
    check_candidate,
    decide,
)
from zenml_quant.metrics import METRICS
from zenml_quant.report.gate import decision_html, decision_table
from zenml_quant.targets import Targets

TARGETS = Targets(
    min_quality=0.9, max_size_bytes=50_000, max_latency_ms=1.0, max_peak_memory_bytes=100_000
)
GOOD = {
    "name": "int8",
    "accuracy": 0.9906,
    "baseline_accuracy": 0.9904,
    "size_bytes": 40_832,
    "latency_ms": {"p50@1": 0.026, "p90@1": 0.03},
    "peak_memory_bytes": 30_000,
}
CHAMPION = Champion(version="3", accuracy=0.98, source="test")


def cand(**overrides) -> CandidateMeasurements:
    return CandidateMeasurements(**{**GOOD, **overrides})


# -- the matrix: every figure x every bad value ---------------------------------------------

_MISSING = object()
BAD_VALUES = {
    "missing": _MISSING,
    "None": None,
    "string": "0.99",
    "NaN": math.nan,
    "numpy NaN": np.float32("nan"),
    "+inf": math.inf,
    "-inf": -math.inf,
    "zero": 0,
    "negative": -1,
    "bool": True,
    "list": [0.99],
    "bytes": b"0.99",
    "complex": 0.99 + 0j,
}
ABOVE_RANGE = {
    "accuracy": 1.5,
    "baseline_accuracy": 1.01,
    "size_bytes": 2**31,
    "latency": 3_600_001.0,
    "peak_memory_bytes": 2**41,
    "champion": 1.5,
}
#: words the refusal's reason must contain, per figure
LABELS = {
    "accuracy": "accuracy",
    "baseline_accuracy": "baseline accuracy",
    "size_bytes": "size",
    "latency": "latency",
    "peak_memory_bytes": "peak memory",
    "champion": "champion",
}


def _case(figure: str, value: object) -> tuple[dict, Champion | None]:
    """The raw candidate mapping and champion with ``figure`` set to ``value``."""
    raw = {**GOOD, "latency_ms": dict(GOOD["latency_ms"])}
    champion = CHAMPION
    if figure == "champion":
        champion = Champion(
            version="3", accuracy=None if value is _MISSING else value, source="metadata"
        )
    elif figure == "latency":
        if value is _MISSING:
            del raw["latency_ms"]["p50@1"]
        else:
            raw["latency_ms"]["p50@1"] = value
    elif value is _MISSING:
        del raw[figure]
    else:
        raw[figure] = value
    return raw, champion


CASES = [
    pytest.param(figure, value, id=f"{figure}-{kind}")
    for figure in LABELS
    for kind, value in [*BAD_VALUES.items(), ("above range", ABOVE_RANGE[figure])]
]


def test_the_matrix_has_at_least_80_cases():
    assert len(CASES) >= 80


@pytest.mark.parametrize(("figure", "value"), CASES)
def test_every_bad_figure_is_refused_with_its_name(figure, value):
    raw, champion = _case(figure, value)
    decision = decide(TARGETS, [raw], champion=champion, stage="production")
    assert isinstance(decision, GateDecision)
    assert not decision.passed and decision.selected is None and decision.stage is None
    assert decision.promotion.startswith("nothing promoted")
    failed = [c for c in decision.checks if not c.passed]
    assert failed, decision.checks
    assert any(LABELS[figure] in c.reason for c in failed), [c.reason for c in failed]
    if value is not _MISSING and value is not None and not isinstance(value, (int, float)):
        # a value of the wrong type is quoted as it was read
        assert any(repr(value) in c.reason for c in failed), [c.reason for c in failed]
    # the same candidate with that one figure repaired passes: the refusal was about it
    good, _ = _case(figure, GOOD.get(figure, 0.026) if figure != "champion" else 0.98)
    assert decide(TARGETS, [good], champion=CHAMPION, stage="production").passed


def test_the_good_candidate_passes_every_check():
    decision = decide(TARGETS, [GOOD], champion=CHAMPION, stage="production")
    assert decision.passed and decision.selected == "int8"
    names = [c.name for c in decision.checks]
    assert names == ["baseline", "quality", "size", "latency", "peak_memory", "champion"]
    # decide never promotes: the caller does, and says so
    assert decision.stage is None and decision.requested_stage == "production"
    promoted = decision.promoted("production", "7")
    assert promoted.stage == "production" and "version 7 promoted" in promoted.promotion


# -- what never raises ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "candidates", "stage", "words"),
    [
        (TARGETS, [42], None, "could not check"),
        (TARGETS, [GOOD, GOOD], None, "unique"),
        (TARGETS, [], None, "no candidates"),
        (TARGETS, [GOOD], "prod", "not a promotion stage"),
        ({"max_size_bytes": 1}, [GOOD], None, "Targets"),
        (TARGETS, [{**GOOD, "latency_ms": "fast"}], None, "latency"),
        (TARGETS, None, None, "could not check"),
    ],
)
def test_malformed_input_is_a_refusal_not_an_exception(targets, candidates, stage, words):
    decision = decide(targets, candidates, stage=stage)
    assert not decision.passed and decision.selected is None
    assert any(words in r for r in decision.reasons), decision.reasons


def test_a_failed_candidate_fails_even_without_targets():
    decision = decide(Targets(), [cand(error="conversion to int16x8 failed: boom")])
    assert not decision.passed
    error = next(c for c in decision.checks if c.name == "error")
    assert "conversion to int16x8 failed" in error.reason


# -- the default accuracy floor -----------------------------------------------------------------


def test_without_accuracy_targets_at_most_one_point_is_lost():
    at_one = cand(accuracy=0.9804)
    below = cand(accuracy=0.9803)
    assert decide(Targets(max_size_bytes=50_000), [at_one]).passed
    refused = decide(Targets(max_size_bytes=50_000), [below])
    assert not refused.passed
    drop = next(c for c in refused.checks if c.name == "quality_drop")
    assert "default floor" in drop.reason and "1.01 points" in drop.reason


def test_with_no_targets_the_most_accurate_within_the_floor_wins_then_the_smallest():
    qat = cand(name="qat", accuracy=0.9354, size_bytes=14_016)  # 5.5 points worse
    int8 = cand(name="int8", accuracy=0.9906, size_bytes=14_144)
    mixed = cand(name="mixed", accuracy=0.9906, size_bytes=14_100)
    decision = decide(Targets(), [qat, int8, mixed])
    assert decision.passed and decision.selected == "mixed"
    assert not all(c.passed for c in decision.per_candidate["qat"])


def test_with_no_targets_a_gain_within_the_noise_does_not_buy_a_larger_file():
    # The GRU row of the zoo benchmark: an unrolled int8 file 6x the float32 one, 0.2 points
    # ahead on 1,000 test examples, where one standard error of a difference is 1.41 points.
    base = {"baseline_accuracy": 0.886, "n_examples": 1000}
    float32 = cand(name="float32", accuracy=0.886, size_bytes=23_696, **base)
    int8 = cand(name="int8", accuracy=0.888, size_bytes=144_768, **base)
    decision = decide(Targets(), [float32, int8])
    assert decision.selected == "float32"
    assert "within one standard error (1.41 points on 1,000 examples)" in decision.reasons[1]
    # A gain well beyond the noise is still bought: 5 points on the same split.
    better = cand(name="int8", accuracy=0.936, size_bytes=144_768, **base)
    assert decide(Targets(), [float32, better]).selected == "int8"
    # Without the number of examples the gate cannot tell noise: the most accurate wins.
    unsized = [replace(c, n_examples=None) for c in (float32, int8)]
    assert decide(Targets(), unsized).selected == "int8"
    # An error metric has no such margin here: the lowest error wins as before.
    mae = Targets(metric=METRICS["mae"])
    low, high = (
        cand(name=n, accuracy=a, baseline_accuracy=0.5, size_bytes=s, metric="mae",
             higher_is_better=False, n_examples=1000)
        for n, a, s in (("big", 0.49, 9_000), ("small", 0.495, 1_000))
    )  # fmt: skip
    assert decide(mae, [low, high]).selected == "big"


def test_a_user_accuracy_target_replaces_the_default_floor():
    worse = cand(accuracy=0.95)
    assert decide(Targets(min_quality=0.9), [worse]).passed
    assert not decide(Targets(max_quality_drop=0.02), [worse]).passed
    relative = Targets(max_quality_drop=0.05, relative_drop=True)  # 5 % of 0.9904 = 4.95 pts
    assert decide(relative, [worse]).passed


def test_with_targets_the_smallest_passing_candidate_wins():
    big = cand(name="float32", size_bytes=42_000)
    small = cand(name="int8", size_bytes=14_000, accuracy=0.985)
    decision = decide(Targets(max_size_bytes=50_000), [big, small])
    assert decision.selected == "int8" and "smallest size" in decision.reasons[1]


# -- champion and challenger --------------------------------------------------------------------


def test_a_worse_challenger_does_not_replace_the_champion():
    champion = Champion(version="4", accuracy=0.99)
    decision = decide(Targets(), [cand(accuracy=0.985)], champion=champion, stage="production")
    assert not decision.passed
    check = next(c for c in decision.checks if c.name == "champion")
    assert "worse than the champion" in check.reason and "4" in check.reason
    margin = GateOptions(champion_margin=0.01)
    assert decide(Targets(), [cand(accuracy=0.985)], champion=champion, options=margin).passed


def test_an_unreadable_champion_blocks_unless_replacing_is_asked():
    champion = Champion(version="5", accuracy="n/a", source="metadata")
    blocked = decide(Targets(), [GOOD], champion=champion, stage="production")
    assert not blocked.passed
    assert any("--replace-unreadable-champion" in r for r in blocked.reasons)
    replace = GateOptions(replace_unreadable_champion=True)
    allowed = decide(Targets(), [GOOD], champion=champion, options=replace, stage="production")
    assert allowed.passed
    assert "replaced as asked" in next(c for c in allowed.checks if c.name == "champion").reason


def test_no_champion_means_no_champion_check():
    decision = decide(Targets(), [GOOD], champion=None, stage="production")
    assert decision.passed and "champion" not in [c.name for c in decision.checks]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"champion_margin": -0.1}, "champion_margin"),
        ({"champion_margin": math.nan}, "champion_margin"),
        ({"required": "latency"}, "not a string"),
        ({"required": ("energy",)}, "Unknown required"),
    ],
)
def test_invalid_gate_options_are_refused_when_made(kwargs, words):
    from zenml_quant.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match=words):
        GateOptions(**kwargs)


def test_required_figures_must_be_measured():
    options = GateOptions(required=("latency",))
    no_latency = cand(latency_ms={})
    assert not decide(Targets(), [no_latency], options=options).passed
    assert decide(Targets(), [no_latency]).passed
    checks = check_candidate(Targets(), cand(), options=options)
    assert next(c for c in checks if c.name == "latency").passed


def test_latency_at_another_percentile_or_thread_count_does_not_count():
    targets = Targets(max_latency_ms=1.0, latency_percentile="p90", latency_threads=4)
    decision = decide(targets, [cand(latency_ms={"p50@1": 0.02, "p90@1": 0.03})])
    check = next(c for c in decision.checks if c.name == "latency")
    assert not check.passed and "p90@4" in check.reason and "measured: p50@1, p90@1" in check.reason


# -- reports --------------------------------------------------------------------------------


def test_decision_table_and_page_show_every_check():
    decision = decide(TARGETS, [GOOD, cand(name="float32", size_bytes=140_000)], champion=CHAMPION)
    table = decision_table(decision)
    assert set(table["candidate"]) == {"int8", "float32"}
    assert table.loc[table["candidate"] == "int8", "selected"].all()
    page = decision_html(decision)
    assert "PASSED" in page and "int8" in page and "140,000 B &gt; limit 50,000 B" in page
    refused = decision_html(decide(TARGETS, [], stage="staging"))
    assert "FAILED" in refused and "no candidates" in refused


@pytest.fixture()
def store_dir(tmp_path):
    from zenml.client import Client

    root = Path(Client().active_stack.artifact_store.path) / "zq-gate-tests" / uuid.uuid4().hex
    root.mkdir(parents=True)
    return root


def test_decision_round_trips_through_zenml_materializer(store_dir):
    from zenml.materializers.materializer_registry import materializer_registry

    decision = decide(TARGETS, [GOOD], champion=CHAMPION, stage="production").promoted(
        "production", "8"
    )
    materializer_cls = materializer_registry[GateDecision]
    materializer_cls(uri=str(store_dir)).save(decision)
    loaded = materializer_cls(uri=str(store_dir)).load(GateDecision)
    assert loaded == decision
    assert loaded.champion == CHAMPION and isinstance(loaded.per_candidate["int8"], tuple)
