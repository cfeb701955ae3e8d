"""Tables a person reads: the comparison of candidates and the per-layer profile.

DataFrames are the data (ZenML stores them with a CSV view); the HTML renderings are what the
dashboard shows.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from .plots import size_accuracy_svg
from .types import BaselineSummary, CandidateResult

__all__ = ["comparison_html", "comparison_table", "layer_table_html", "render_html", "summary_dict"]

_STYLE = """
<style>
body{font-family:system-ui,sans-serif;margin:1.2em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
caption{font-weight:600;font-size:15px;text-align:left;margin-bottom:6px}
.note{color:#555;font-size:12px;margin-top:8px}
</style>
"""


def comparison_table(
    baseline: BaselineSummary, candidates: Sequence[CandidateResult]
) -> pd.DataFrame:
    """One row for the Keras baseline and one per candidate, all scored on the same split.

    ``accuracy_delta_pts`` is the change in percentage points against the Keras model;
    ``size_vs_float32`` divides each size by the float32 TFLite size.
    """
    rows = [
        {
            "name": "keras",
            "mode": f"keras ({baseline.flavour})",
            "accuracy": baseline.accuracy,
            "accuracy_delta_pts": 0.0,
            "size_bytes": baseline.float32_weight_bytes,
            "size_vs_float32": baseline.float32_weight_bytes / baseline.float_tflite_bytes,
            "latency_ms_p50": None,
            "threads": None,
            "peak_activation_bytes": baseline.peak_activation_bytes,
            "error": None,
        }
    ]
    for c in candidates:
        rows.append(
            {
                "name": c.name,
                "mode": c.mode,
                "accuracy": c.accuracy,
                "accuracy_delta_pts": None
                if c.accuracy is None
                else 100 * (c.accuracy - baseline.accuracy),
                "size_bytes": c.size_bytes,
                "size_vs_float32": c.size_bytes / baseline.float_tflite_bytes,
                "latency_ms_p50": c.latency_ms_p50,
                "threads": c.threads,
                "peak_activation_bytes": c.peak_activation_bytes,
                "error": c.error,
            }
        )
    return pd.DataFrame(rows)


def render_html(
    frame: pd.DataFrame, *, title: str, notes: Sequence[str] = (), figure: str = ""
) -> str:
    """A self-contained HTML page of ``frame`` with a caption, footnotes and an inline figure."""
    table = frame.to_html(index=False, na_rep="", float_format=lambda v: f"{v:,.4g}", border=0)
    opening_end = table.index(">") + 1  # the caption must sit right inside <table ...>
    table = f"{table[:opening_end]}<caption>{html.escape(title)}</caption>{table[opening_end:]}"
    foot = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return f"<html><head>{_STYLE}</head><body>{table}{foot}{figure}</body></html>"


def comparison_html(baseline: BaselineSummary, candidates: Sequence[CandidateResult]) -> str:
    """The comparison table as a dashboard page."""
    frame = comparison_table(baseline, candidates)
    shown = frame.assign(
        accuracy=frame["accuracy"].map(lambda a: None if pd.isna(a) else f"{100 * a:.2f} %")
    )
    return render_html(
        shown,
        title=f"{baseline.model_name}: Keras baseline vs TFLite candidates ({baseline.split} split, "
        f"{baseline.n_samples} examples)",
        notes=(
            "size_bytes of the Keras row is its float32 weights; of the others, the .tflite file.",
            "latency_ms_p50: median batch-1 invoke() on this machine's CPU, at the stated thread count.",
        ),
        figure=size_accuracy_svg(baseline, candidates),
    )


def layer_table_html(baseline: BaselineSummary, layers: pd.DataFrame) -> str:
    """The per-layer profile as a dashboard page, with the totals in the caption."""
    return render_html(
        layers,
        title=(
            f"{baseline.model_name}: {baseline.params:,} parameters, {baseline.macs:,} MACs, "
            f"accuracy {100 * baseline.accuracy:.2f} % on {baseline.split}, float32 TFLite "
            f"{baseline.float_tflite_bytes:,} B, peak activations {baseline.peak_activation_bytes:,} B"
        ),
        notes=(
            (
                "MACs for one example. BatchNorm is folded into the preceding layer by the converter; "
                "pooling and activations are comparisons, not MACs."
            ),
            "weight_bytes_int8 stores weights in 1 byte and biases in 4 (int32), as TFLite does.",
        ),
    )


def summary_dict(
    baseline: BaselineSummary,
    candidates: Sequence[CandidateResult],
    paths: dict[str, str] | None = None,
) -> dict:
    """The CLI's JSON summary. Key names are stable: users script against them."""
    paths = paths or {}
    return {
        "baseline": {
            "model": baseline.model_name,
            "split": baseline.split,
            "n_samples": baseline.n_samples,
            "accuracy": baseline.accuracy,
            "params": baseline.params,
            "macs": baseline.macs,
            "peak_activation_bytes": baseline.peak_activation_bytes,
            "float_tflite_bytes": baseline.float_tflite_bytes,
            "metrics": baseline.metrics,
        },
        "candidates": [
            {
                "name": c.name,
                "mode": c.mode,
                "accuracy": c.accuracy,
                "size_bytes": c.size_bytes,
                "latency_ms_p50": c.latency_ms_p50,
                "threads": c.threads,
                "peak_activation_bytes": c.peak_activation_bytes,
                "path": paths.get(c.name),
                "error": c.error,
                "metrics": c.metrics,
            }
            for c in candidates
        ],
    }
