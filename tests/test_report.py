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


def test_chart_labels_never_overprint_and_accuracy_stops_at_100_percent():
    from zenml_quant.report.plots import cap_percent, plt, separate_labels

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    points = [(9.1, 99.95), (9.128, 99.95), (9.13, 99.9), (14.0, 98.0)]  # near-twins
    ax.scatter(*zip(*points))
    labels = [
        ax.annotate(name, xy, textcoords="offset points", xytext=(5, 4), fontsize=9)
        for name, xy in zip(("mixed", "mixed_qat", "int4", "int8"), points)
    ]
    ax.margins(y=0.3)  # room for the labels: it would reach 100.5 %
    assert ax.get_ylim()[1] > 100.0
    cap_percent(ax)
    assert ax.get_ylim()[1] == 100.0
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    before = [label.get_window_extent(renderer) for label in labels]
    assert before[0].overlaps(before[1])  # what matplotlib does alone
    separate_labels(fig, labels)
    boxes = [label.get_window_extent(renderer) for label in labels]
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(4) for j in range(i))
    plt.close(fig)


def test_charts_fit_the_dashboard_frame():
    import re

    from zenml_quant.report.plots import size_accuracy_svg

    candidates = [_candidate(f"c{i}", 0.999 - i * 1e-4, 9_100 + 10 * i) for i in range(6)]
    svg = size_accuracy_svg(_baseline(), candidates)
    width = float(re.search(r'width="([\d.]+)pt"', svg).group(1))
    assert width * 100 / 72 <= 958  # pt at 72 per inch, drawn at 100 dpi
