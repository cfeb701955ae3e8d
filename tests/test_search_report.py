"""The search's Pareto front (zenml_quant.search.pareto) and its report (search.report)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from zenml_quant.errors import InvalidOptionError
from zenml_quant.report.search import (
    HISTORY_COLUMNS,
    SUGGESTION_COLUMNS,
    history_frame,
    pareto_svg,
    search_html,
    suggestions_frame,
)
from zenml_quant.search.edits import EditPlan
from zenml_quant.search.pareto import dominates, pareto_front
from zenml_quant.search.types import Targets, TrialRecord

SVG = "{http://www.w3.org/2000/svg}"
ACC_SIZE = (("accuracy", "max"), ("size_bytes", "min"))


def ok(trial, accuracy, size, latency=None, *, edits=(), **figures):
    return TrialRecord(
        trial=trial,
        plan=EditPlan.from_edits(list(edits)),
        status="ok",
        seconds=1.5,
        accuracy=accuracy,
        size_bytes=size,
        latency_ms=latency,
        **figures,
    )


def failed(trial, error="conversion failed", *, edits=()):
    return TrialRecord(trial, EditPlan.from_edits(list(edits)), "failed", seconds=0.25, error=error)


# ---------------------------------------------------------------------------- pareto_front


def test_dominated_points_are_excluded_and_the_front_is_sorted_by_size():
    records = [
        ok(0, 0.98, 40_000),
        ok(1, 0.97, 20_000),
        ok(2, 0.90, 30_000),  # beaten by 1: less accurate and larger
        ok(3, 0.96, 25_000),  # beaten by 1 too
        ok(4, 0.93, 15_000),
    ]
    assert pareto_front(records) == [4, 1, 0]
    assert dominates(records[1], records[2], ACC_SIZE)
    assert not dominates(records[2], records[1], ACC_SIZE)
    assert not dominates(records[0], records[1], ACC_SIZE)  # a trade-off: neither wins
    assert not dominates(records[1], records[0], ACC_SIZE)


def test_ties_on_one_objective_and_exact_duplicates():
    records = [
        ok(5, 0.95, 20_000),
        ok(2, 0.95, 20_000),  # the same figures as trial 5 but earlier: it stands for both
        ok(3, 0.95, 25_000),  # equal accuracy, larger: dominated
        ok(4, 0.97, 20_000),  # equal size, more accurate: beats 2 and 5
    ]
    assert pareto_front(records) == [4]
    assert pareto_front(records[:3]) == [2]
    assert not dominates(records[0], records[1], ACC_SIZE)  # equal is not better


def test_an_objective_nobody_measured_is_ignored():
    records = [ok(0, 0.98, 40_000), ok(1, 0.97, 20_000), ok(2, 0.90, 30_000)]
    assert pareto_front(records) == [1, 0]  # latency is None everywhere
    with_latency = [ok(0, 0.98, 40_000, 2.0), ok(1, 0.97, 20_000, 3.0), ok(2, 0.90, 30_000, 1.0)]
    assert pareto_front(with_latency) == [1, 2, 0]  # 2 is the fastest


def test_a_record_missing_a_figure_others_have_is_left_out():
    records = [
        ok(0, 0.98, 40_000, 2.0),
        ok(1, 0.99, 10_000),  # best on both other objectives, but its latency is unknown
        ok(2, 0.97, 20_000, float("nan")),  # NaN counts as missing too
    ]
    assert pareto_front(records) == [0]
    assert not dominates(records[1], records[0])  # incomparable
    assert not dominates(records[0], records[1])


def test_failed_trials_are_excluded():
    better_but_failed = TrialRecord(
        9, EditPlan(), "failed", 1.0, error="x", accuracy=1.0, size_bytes=1
    )
    records = [ok(0, 0.9, 30_000), failed(1), better_but_failed]
    assert pareto_front(records) == [0]
    assert pareto_front([failed(1)]) == []
    assert pareto_front([]) == []


def test_custom_objectives_and_their_validation():
    records = [
        ok(0, 0.98, 40_000, energy_uj=5.0),
        ok(1, 0.97, 20_000, energy_uj=9.0),
        ok(2, 0.96, 30_000, energy_uj=1.0),
    ]
    assert pareto_front(records, (("energy_uj", "min"),)) == [2]
    assert pareto_front(records, (("accuracy", "max"), ("energy_uj", "min"))) == [2, 0]
    with pytest.raises(InvalidOptionError, match="Unknown objective 'flops'"):
        pareto_front(records, (("flops", "min"),))
    with pytest.raises(InvalidOptionError, match="'max' or 'min'"):
        pareto_front(records, (("accuracy", "up"),))
    with pytest.raises(InvalidOptionError, match="at least one"):
        pareto_front(records, ())
    with pytest.raises(InvalidOptionError, match="TrialRecords"):
        pareto_front([{"trial": 0}])


# ---------------------------------------------------------------------------- report


@pytest.fixture()
def records():
    return [
        ok(2, 0.90, 30_000, 1.2, edits=[{"layer": "conv2", "op": "remove"}]),
        ok(0, 0.98, 40_000, 1.0, reward=0.9),
        failed(3, "shape mismatch <b>", edits=[{"layer": "c3", "op": "scale", "value": 0.5}]),
        ok(
            1,
            0.97,
            20_000,
            0.8,
            edits=[
                {"layer": "conv<1>", "op": "replace", "value": "sepconv3"},
                {"layer": "conv<1>", "op": "activation", "value": "relu6"},
            ],
            meets_targets=True,
            reward=0.95,
            energy_uj=1.25,
            peak_memory_bytes=4096,
            params=1234,
            macs=56789,
            keras_accuracy=0.975,
        ),
        ok(4, 0.96, 25_000, 0.5),
    ]


@pytest.fixture()
def original():
    return ok(-1, 0.985, 60_000, 1.5)


def test_history_frame_columns_dtypes_and_rows(records):
    front = pareto_front(records)
    assert front == [1, 4, 0]
    frame = history_frame(records, front)
    assert list(frame.columns) == list(HISTORY_COLUMNS)
    assert list(frame["trial"]) == [0, 1, 2, 3, 4]  # trial order, whatever the input order
    assert frame["trial"].dtype == "int64" and frame["n_edits"].dtype == "int64"
    for column in ("accuracy", "size_bytes", "size_kb", "latency_ms", "energy_uj", "reward"):
        assert frame[column].dtype == "float64", column
    assert frame["meets_targets"].dtype == bool and frame["pareto"].dtype == bool
    for column in ("status", "edits", "error"):
        assert pd.api.types.is_string_dtype(frame[column]), column
    assert list(frame["pareto"]) == [True, True, False, False, True]
    row = frame.set_index("trial").loc[1]
    assert row["edits"] == "replace conv<1> by sepconv3; set conv<1>'s activation to relu6"
    assert row["n_edits"] == 2
    assert row["size_kb"] == pytest.approx(20_000 / 1000)
    assert row["energy_uj"] == 1.25 and row["macs"] == 56789 and row["error"] == ""
    bad = frame.set_index("trial").loc[3]
    assert bad["status"] == "failed" and bad["error"] == "shape mismatch <b>"
    assert math.isnan(bad["accuracy"]) and math.isnan(bad["size_kb"])
    assert frame.set_index("trial").loc[0, "edits"] == "original model"


def test_history_frame_of_no_records_keeps_its_columns_and_dtypes(records):
    empty = history_frame([])
    assert empty.empty and list(empty.columns) == list(HISTORY_COLUMNS)
    assert (empty.dtypes == history_frame(records).dtypes).all()


def test_suggestions_are_the_pareto_trials_smallest_first(records):
    frame = suggestions_frame(records, {0, 4, 1})
    assert list(frame.columns) == list(SUGGESTION_COLUMNS)
    assert list(frame["trial"]) == [1, 4, 0]
    assert frame["size_kb"].is_monotonic_increasing
    assert frame.loc[0, "edits"].startswith("replace conv<1> by sepconv3; ")
    assert list(frame["meets_targets"]) == [True, False, False]
    assert math.isnan(frame.loc[1, "reward"])
    with pytest.raises(InvalidOptionError, match=r"\[7\]"):
        suggestions_frame(records, [1, 7])
    with pytest.raises(InvalidOptionError, match="failed"):
        suggestions_frame(records, [3])


def _groups(svg):
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root, {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}


def _points(group):
    return len(list(group.iter(f"{SVG}use")))


def test_pareto_svg_draws_each_group_once_per_panel(records, original):
    targets = Targets(max_quality_drop=0.02, max_size_bytes=30_000, max_latency_ms=1.0)
    front = pareto_front(records)
    svg = pareto_svg(records, front, original=original, targets=targets)
    root, groups = _groups(svg)
    for panel in ("size_bytes", "latency_ms"):
        assert _points(groups[f"pareto-{panel}"]) == 3
        assert _points(groups[f"trials-{panel}"]) == 1  # trial 2; the failed trial 3 is absent
        assert _points(groups[f"original-{panel}"]) == 1
    text = " ".join(t for t in root.itertext())
    for label in (
        "#0",
        "#1",
        "#4",
        "TFLite file size (KB)",
        "latency, batch 1 p50 (ms)",
        "accuracy (%)",
        "original model",
        "Pareto trial",
        "size limit 30.0 KB",
        "latency limit 1 ms",
        "accuracy floor 96.50 %",  # 98.5 % original minus the 2-point drop
        "1 failed (not drawn)",
    ):
        assert label in text, label
    assert "#2" not in text and "#3" not in text


def test_pareto_svg_without_latency_has_one_panel(records):
    no_latency = [TrialRecord(**{**r.__dict__, "latency_ms": None}) if r.ok else r for r in records]
    svg = pareto_svg(no_latency, [1, 0], targets=Targets(min_quality=0.95))
    root, groups = _groups(svg)
    assert "pareto-size_bytes" in groups and "pareto-latency_ms" not in groups
    assert _points(groups["pareto-size_bytes"]) == 2
    text = " ".join(root.itertext())
    assert "accuracy floor 95.00 %" in text and "latency" not in text


def test_pareto_svg_with_nothing_to_draw():
    root, groups = _groups(pareto_svg([failed(0)], []))
    assert "no successful trials" in " ".join(root.itertext())
    assert not any(key.startswith("pareto-") for key in groups)


def test_search_html_has_the_sections_and_escapes_everything(records, original):
    front = pareto_front(records)
    page = search_html(
        records,
        front,
        original=original,
        targets=Targets(max_quality_drop=0.02, max_size_bytes=30_000),
        stop_reason="no improvement in 3 rounds <early>",
        notes=["seed 0 & 2 workers"],
    )
    assert page.startswith("<html>") and page.endswith("</html>")
    assert "5 trial(s) run: 4 succeeded, 1 failed, 1 met every target, 3 on the Pareto front" in (
        page
    )
    assert "Best trial meeting every target: trial #1" in page
    assert "Targets: accuracy ≥ 96.50 %, size ≤ 30.0 KB" in page
    assert "Stopped: no improvement in 3 rounds &lt;early&gt;" in page
    assert "seed 0 &amp; 2 workers" in page
    # Edit text and errors are escaped wherever they appear; the raw markup never does.
    assert "replace conv&lt;1&gt; by sepconv3" in page
    assert "shape mismatch &lt;b&gt;" in page
    assert "<b>" not in page and "conv<1>" not in page
    sections = ["<h2>Architecture search", "<svg", "Suggestions", "Every trial, in order"]
    positions = [page.index(s) for s in sections]
    assert positions == sorted(positions)
    assert page.count("<table") == 2
    assert "<style>" in page


def test_search_html_when_nothing_succeeded():
    page = search_html([failed(0, "boom")], [], stop_reason="every trial failed")
    assert "No trial succeeded." in page
    assert "boom" in page and "Suggestions" in page
