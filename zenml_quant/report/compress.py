"""Tables a person reads: the comparison of candidates and the per-layer profile.

DataFrames are the data (ZenML stores them with a CSV view); the HTML renderings are what the
dashboard shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from ..metrics import Metric, metric_named
from ..types import BaselineSummary, CandidateResult, PTQResult
from .html import render_html
from .plots import sensitivity_bars_svg, size_accuracy_svg

if TYPE_CHECKING:  # tfmot and TensorFlow: not needed to render a page
    from ..qat import QATResult
    from ..sensitivity import SensitivityReport

__all__ = [
    "attempts_table",
    "comparison_html",
    "comparison_table",
    "layer_table_html",
    "ptq_html",
    "qat_html",
    "sensitivity_html",
    "summary_dict",
]


def comparison_table(
    baseline: BaselineSummary, candidates: Sequence[CandidateResult]
) -> pd.DataFrame:
    """One row for the Keras baseline and one per candidate, all scored on the same split.

    ``accuracy`` holds the run's metric (``baseline.metric``); ``accuracy_delta_pts`` is its
    change against the Keras model, in percentage points for an accuracy or AUC and in the
    metric's own units otherwise; ``size_vs_float32`` divides each size by the float32 TFLite
    size.
    """
    scale = 100.0 if _metric(baseline).fraction else 1.0
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
            "float_layers": "",
            "error": None,
            "notes": "",
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
                else scale * (c.accuracy - baseline.accuracy),
                "size_bytes": c.size_bytes,
                "size_vs_float32": c.size_bytes / baseline.float_tflite_bytes,
                "latency_ms_p50": c.latency_ms_p50,
                "threads": c.threads,
                "peak_activation_bytes": c.peak_activation_bytes,
                "float_layers": ", ".join(c.float_layers),
                "error": c.error,
                "notes": " ".join(c.notes),
            }
        )
    return pd.DataFrame(rows)


def comparison_html(baseline: BaselineSummary, candidates: Sequence[CandidateResult]) -> str:
    """The comparison table as a dashboard page."""
    frame = comparison_table(baseline, candidates)
    metric = _metric(baseline)
    shown = frame.assign(
        accuracy=frame["accuracy"].map(lambda a: None if pd.isna(a) else metric.format(a))
    ).rename(columns={"accuracy": metric.label})
    return render_html(
        shown,
        title=f"{baseline.model_name}: Keras baseline vs TFLite candidates ({baseline.split} split, "
        f"{baseline.n_samples} examples)",
        notes=(
            "size_bytes of the Keras row is its float32 weights; of the others, the .tflite file.",
            "latency_ms_p50: median batch-1 invoke() on this machine's CPU, at the stated thread count.",
            "float_layers: the Keras layers a mixed-precision candidate keeps in float.",
        ),
        figure=size_accuracy_svg(baseline, candidates),
    )


def layer_table_html(baseline: BaselineSummary, layers: pd.DataFrame) -> str:
    """The per-layer profile as a dashboard page, with the totals in the caption."""
    return render_html(
        layers,
        title=(
            f"{baseline.model_name}: {baseline.params:,} parameters, {baseline.macs:,} MACs, "
            f"{_metric(baseline).label} {_metric(baseline).format(baseline.accuracy)} on "
            f"{baseline.split}, float32 TFLite "
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
    sensitivity: list[dict] | None = None,
    benchmarks: dict[str, list[dict]] | None = None,
    gate: dict | None = None,
) -> dict:
    """The CLI's JSON summary. Key names are stable: users script against them.

    ``sensitivity`` (rows of the sensitivity table) and ``gate`` (the deployment decision) are
    included when they ran; each candidate's ``benchmark`` lists its device runs, one per
    thread count.
    """
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
                "float_layers": list(c.float_layers),
                "notes": list(c.notes),
                "benchmark": (benchmarks or {}).get(c.name, []),
            }
            for c in candidates
        ],
        **({"sensitivity": sensitivity} if sensitivity is not None else {}),
        **({"gate": gate} if gate is not None else {}),
    }


def sensitivity_html(report: SensitivityReport) -> str:
    """The ranked sensitivity table with its bar chart, as a dashboard page."""
    return render_html(
        report.table,
        title=(
            f"Int8 sensitivity per layer ({report.mode} mode, {report.split} split, "
            f"{report.n_samples} examples): float {100 * report.float_accuracy:.2f} %, full int8 "
            f"{100 * report.int8_accuracy:.2f} %"
        ),
        notes=(
            "drop_alone_pts: accuracy lost when only this layer is int8. drop_all_but_pts: lost "
            "when every layer but this one is int8; recovery_pts: what keeping this one layer in "
            "float wins back from full int8. sensitivity_pts: the larger of the two.",
            "rmse_over_scale and noise_to_signal: TFLite quantization debugger, full int8, each "
            "layer fed the same quantized input in float and in int8. rmse_over_scale ~0.29 is "
            "rounding alone; noise_to_signal is per output channel, averaged.",
            f"{report.evaluations} evaluations in {report.seconds:.1f} s; "
            + (
                "every layer measured exactly."
                if report.mode == "exhaustive"
                else "exact drops only for the layers the debugger suspected most."
            ),
        ),
        figure=sensitivity_bars_svg(report.table),
    )


def _metric(baseline: BaselineSummary) -> Metric:
    return metric_named(baseline.metric, baseline.higher_is_better)


def _budget_metric(result: PTQResult) -> Metric:
    return result.budget.metric if result.budget is not None else metric_named("top1")


def attempts_table(result: PTQResult) -> pd.DataFrame:
    """Every model accuracy control tried, in order (empty for a plain conversion)."""
    return pd.DataFrame(
        [
            {
                "step": a.step,
                "action": a.action,
                "float_layers": ", ".join(a.float_layers),
                "n_float_layers": len(a.float_layers),
                "accuracy": a.accuracy,
                "drop_pts": (100 if _budget_metric(result).fraction else 1) * a.drop,
                "size_bytes": a.size_bytes,
                "meets_budget": a.meets_budget,
            }
            for a in result.attempts
        ],
        columns=[
            "step",
            "action",
            "float_layers",
            "n_float_layers",
            "accuracy",
            "drop_pts",
            "size_bytes",
            "meets_budget",
        ],
    )


def ptq_html(result: PTQResult) -> str:
    """Post-training quantization outcome: status, reason and the attempts trace."""
    model = result.model
    title = f"Post-training quantization: {result.status} ({model.mode}, {model.size_bytes:,} B)"
    notes = [result.reason]
    if result.budget is not None and result.reference_accuracy is not None:
        metric = result.budget.metric
        notes.append(
            f"Budget: {result.budget.describe_quality()} on the {result.split} split; float Keras "
            f"{metric.format(result.reference_accuracy)}, chosen model "
            f"{metric.format(result.accuracy)}."
        )
    notes.append(f"Float layers: {', '.join(model.float_layers) or 'none'}.")
    notes.extend(model.notes)
    frame = attempts_table(result)
    if frame.empty:
        frame = pd.DataFrame([{"mode": model.mode, "size_bytes": model.size_bytes}])
    return render_html(frame, title=title, notes=notes)


def qat_html(result: QATResult, history: pd.DataFrame) -> str:
    """QAT outcome: Keras QAT vs deployed int8 accuracy, layers, and the training history."""
    metric = result.metric
    gap = metric.format_change(result.tflite_accuracy - result.keras_accuracy)
    return render_html(
        history,
        title=(
            f"Quantization-aware training: {metric.label} Keras QAT "
            f"{metric.format(result.keras_accuracy)}, int8 .tflite "
            f"{metric.format(result.tflite_accuracy)} ({gap} {metric.change_unit}) on "
            f"{result.split}, {result.tflite.size_bytes:,} B"
        ),
        notes=(
            f"{result.epochs_run} epoch(s) run (early stopping on validation).",
            f"Quantized layers: {', '.join(result.quantized_layers) or 'none'}.",
            f"Float layers: {', '.join(result.float_layers) or 'none'}.",
            *result.tflite.notes,
        ),
    )
