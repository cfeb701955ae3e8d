"""Comparison table, HTML rendering and the CLI's JSON summary."""

from __future__ import annotations

import json

import pytest

from zenml_quant.report.compress import comparison_html, comparison_table, summary_dict
from zenml_quant.types import BaselineSummary, CandidateResult


def _baseline():
    return BaselineSummary(
        model_name="m",
        flavour="tf_keras",
        split="test",
        n_samples=100,
        accuracy=0.9,
        metrics={},
        params=1000,
        trainable_params=1000,
        macs=5000,
        float32_weight_bytes=4000,
        peak_activation_bytes=800,
        float_tflite_bytes=5000,
    )


def _candidate(name, accuracy, size, error=None):
    return CandidateResult(
        name=name,
        mode=name,
        size_bytes=size,
        accuracy=accuracy,
        split="test",
        metrics={},
        latency_ms_p50=None if error else 0.05,
        threads=1,
        peak_activation_bytes=200,
        operators=("CONV_2D",),
        error=error,
    )


def test_comparison_rows_and_derived_columns():
    table = comparison_table(
        _baseline(), [_candidate("float32", 0.9, 5000), _candidate("int8", 0.88, 1500)]
    )
    assert list(table["name"]) == ["keras", "float32", "int8"]
    int8 = table.set_index("name").loc["int8"]
    assert int8["accuracy_delta_pts"] == pytest.approx(-2.0)
    assert int8["size_vs_float32"] == pytest.approx(0.3)


def test_failed_candidate_row_and_html():
    failed = _candidate("int16x8", None, 3000, error="cannot allocate")
    table = comparison_table(_baseline(), [failed])
    assert table.iloc[1]["error"] == "cannot allocate"
    page = comparison_html(_baseline(), [failed])
    assert "<caption>" in page and "cannot allocate" in page and "int16x8" in page


def test_summary_keys_are_the_documented_ones():
    summary = summary_dict(
        _baseline(), [_candidate("int8", 0.88, 1500)], {"int8": "/tmp/m_int8.tflite"}
    )
    json.dumps(summary)  # plain types only
    assert {"accuracy", "params", "macs", "float_tflite_bytes"} <= set(summary["baseline"])
    (row,) = summary["candidates"]
    assert {"name", "mode", "accuracy", "size_bytes", "latency_ms_p50", "threads", "path"} <= set(
        row
    )
    assert row["path"] == "/tmp/m_int8.tflite"


def test_html_report_embeds_a_size_accuracy_chart_of_the_scored_candidates():
    ok, failed = _candidate("int8", 0.88, 1500), _candidate("int16x8", None, 3000, error="x")
    page = comparison_html(_baseline(), [ok, failed])
    assert page.count("<svg") == 1 and "<?xml" not in page
    svg = page[page.index("<svg") :]
    assert "int8" in svg and "int16x8" not in svg  # failed rows are only in the table
