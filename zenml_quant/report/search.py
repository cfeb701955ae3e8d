"""What a person reads about a search: the trial history, the Pareto chart and the suggestions.

DataFrames are the data (ZenML stores them and shows a CSV view); :func:`search_html` is the
page the dashboard shows, with the chart inline so it needs nothing else.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # rendered in steps and tests, never on a screen

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import InvalidOptionError  # noqa: E402
from ..metrics import METRICS, Metric  # noqa: E402
from ..search.pareto import objectives, pareto_front  # noqa: E402
from ..search.types import PHASE_COLUMNS, Targets, TrialRecord  # noqa: E402
from .html import _STYLE  # noqa: E402
from .plots import FRAME_WIDTH_IN, cap_percent, separate_labels
from .plots import svg_of as _svg  # noqa: E402

__all__ = [
    "HISTORY_COLUMNS",
    "PHASE_COLUMNS",
    "SUGGESTION_COLUMNS",
    "history_frame",
    "pareto_svg",
    "search_html",
    "suggestions_frame",
]

#: Columns of :func:`history_frame`, in order.
HISTORY_COLUMNS: tuple[str, ...] = (
    "trial",
    "status",
    "edits",
    "n_edits",
    "accuracy",
    "keras_accuracy",
    "size_bytes",
    "size_kb",
    "peak_memory_bytes",
    "latency_ms",
    "energy_uj",
    "params",
    "macs",
    "reward",
    "meets_targets",
    "pareto",
    "rung",
    "seconds",
    *PHASE_COLUMNS.values(),
    "error",
)
#: Columns of :func:`suggestions_frame`, in order.
SUGGESTION_COLUMNS: tuple[str, ...] = (
    "trial",
    "edits",
    "accuracy",
    "size_kb",
    "peak_memory_bytes",
    "latency_ms",
    "energy_uj",
    "meets_targets",
    "reward",
)
_FLOATS = (
    "accuracy",
    "keras_accuracy",
    "size_bytes",
    "size_kb",
    "peak_memory_bytes",
    "latency_ms",
    "energy_uj",
    "params",
    "macs",
    "reward",
    "seconds",
)
_DTYPES: dict[str, Any] = {
    "trial": "int64",
    "status": str,
    "edits": str,
    "n_edits": "int64",
    "meets_targets": bool,
    "pareto": bool,
    "error": str,
    **dict.fromkeys(_FLOATS, "float64"),
    **dict.fromkeys(PHASE_COLUMNS.values(), "float64"),
    "rung": "float64",  # NaN without successive halving
}
_KB = 1000  # one unit everywhere: the CLI's --max-size-kb, the tables and the plots
_FRONT_COLOR = "tab:blue"
_TARGET_COLOR = "tab:red"


def _check_records(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    if isinstance(records, TrialRecord):
        raise InvalidOptionError("Pass a list of TrialRecords, not a single one.")
    for record in records:
        if not isinstance(record, TrialRecord):
            raise InvalidOptionError(f"Expected TrialRecords, got {type(record).__name__}.")
    return sorted(records, key=lambda r: r.trial)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _kb(size_bytes: int | None) -> float:
    return math.nan if size_bytes is None else size_bytes / _KB


def _edits(record: TrialRecord) -> str:
    return "; ".join(record.plan.describe())


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype({c: _DTYPES[c] for c in columns})


def history_frame(records: Sequence[TrialRecord], pareto: Collection[int] = ()) -> pd.DataFrame:
    """One row per record in trial order, with the columns of :data:`HISTORY_COLUMNS`.

    ``edits`` joins the plan's readable lines with ``"; "``; ``size_kb`` is ``size_bytes /
    1000``; ``pareto`` flags the trials in ``pareto``; ``rung`` is the successive-halving
    rung (0: the short fine-tune, 1: in full; NaN without halving). Figures are float64 with NaN where a
    trial did not measure them (every figure of a failed trial); ``error`` is ``""`` for a
    successful trial.
    """
    front = set(pareto)
    rows = [
        {
            "trial": r.trial,
            "status": r.status,
            "edits": _edits(r),
            "n_edits": len(r.plan),
            "accuracy": _num(r.accuracy),
            "keras_accuracy": _num(r.keras_accuracy),
            "size_bytes": _num(r.size_bytes),
            "size_kb": _kb(r.size_bytes),
            "peak_memory_bytes": _num(r.peak_memory_bytes),
            "latency_ms": _num(r.latency_ms),
            "energy_uj": _num(r.energy_uj),
            "params": _num(r.params),
            "macs": _num(r.macs),
            "reward": _num(r.reward),
            "meets_targets": bool(r.meets_targets),
            "pareto": r.trial in front,
            "rung": _num(r.plan.meta.get("rung")),
            "seconds": _num(r.seconds),
            **{
                column: _num(dict(r.phase_seconds).get(phase))
                for phase, column in PHASE_COLUMNS.items()
            },
            "error": r.error or "",
        }
        for r in _check_records(records)
    ]
    return _frame(rows, HISTORY_COLUMNS)


def _size_order(record: TrialRecord) -> tuple[bool, float, int]:
    return (record.size_bytes is None, float(record.size_bytes or 0), record.trial)


def _front_records(records: Sequence[TrialRecord], pareto: Collection[int]) -> list[TrialRecord]:
    by_trial = {r.trial: r for r in _check_records(records)}
    unknown = sorted(set(pareto) - by_trial.keys())
    if unknown:
        raise InvalidOptionError(
            f"pareto names trial(s) {unknown} that are not among the {len(by_trial)} records."
        )
    failed = sorted(t for t in set(pareto) if not by_trial[t].ok)
    if failed:
        raise InvalidOptionError(
            f"pareto names failed trial(s) {failed}; the front holds successful trials only."
        )
    return sorted((by_trial[t] for t in set(pareto)), key=_size_order)


def suggestions_frame(records: Sequence[TrialRecord], pareto: Collection[int]) -> pd.DataFrame:
    """One row per Pareto trial, smallest file first: what to try, and what it costs.

    Columns are :data:`SUGGESTION_COLUMNS`; ``edits`` joins the plan's readable lines with
    ``"; "``. Raises :class:`InvalidOptionError` when ``pareto`` names a trial that is not
    among ``records`` or that failed.
    """
    rows = [
        {
            "trial": r.trial,
            "edits": _edits(r),
            "accuracy": _num(r.accuracy),
            "size_kb": _kb(r.size_bytes),
            "peak_memory_bytes": _num(r.peak_memory_bytes),
            "latency_ms": _num(r.latency_ms),
            "energy_uj": _num(r.energy_uj),
            "meets_targets": bool(r.meets_targets),
            "reward": _num(r.reward),
        }
        for r in _front_records(records, pareto)
    ]
    return _frame(rows, SUGGESTION_COLUMNS)


def _floor(
    targets: Targets | None, original: TrialRecord | None, original_accuracy: float | None
) -> float | None:
    if targets is None:
        return None
    if original_accuracy is None and original is not None:
        original_accuracy = original.accuracy
    if original_accuracy is None:  # a drop target needs the original's accuracy
        return None if targets.min_quality is None else float(targets.min_quality)
    return targets.quality_floor(float(original_accuracy))


def _panel(
    ax: Any,
    *,
    figure: str,
    scale: float,
    label: str,
    limit: float | None,
    limit_label: str,
    trials: list[TrialRecord],
    front: set[int],
    original: TrialRecord | None,
    floor: float | None,
    metric: Metric,
) -> list[Any]:
    """Draw one panel; returns its point labels (for :func:`separate_labels`)."""
    unit = 100.0 if metric.fraction else 1.0  # fractions are drawn in percent
    labels: list[Any] = []

    def x_of(r: TrialRecord) -> float | None:
        value = getattr(r, figure)
        return None if value is None else float(value) * scale

    points = [r for r in trials if x_of(r) is not None]
    others = [r for r in points if r.trial not in front]
    best = sorted((r for r in points if r.trial in front), key=lambda r: (x_of(r), r.trial))
    if others:
        ax.scatter(
            [x_of(r) for r in others],
            [unit * (r.accuracy or 0) for r in others],
            s=22,
            color="0.65",
            label="trial",
            zorder=2,
            gid=f"trials-{figure}",
        )
    if best:
        # The line joins the trials on this panel's own two-objective front (a trial on the
        # overall front may be beaten here by one that is slower or larger elsewhere).
        line = set(pareto_front(best, (objectives(metric)[0], (figure, "min"))))
        stairs = [r for r in best if r.trial in line]
        ax.step(
            [x_of(r) for r in stairs],
            [unit * (r.accuracy or 0) for r in stairs],
            where="post",
            color=_FRONT_COLOR,
            linewidth=1.2,
            alpha=0.8,
            zorder=3,
        )
        ax.scatter(
            [x_of(r) for r in best],
            [unit * (r.accuracy or 0) for r in best],
            s=44,
            color=_FRONT_COLOR,
            edgecolors="black",
            linewidths=0.6,
            label="Pareto trial",
            zorder=4,
            gid=f"pareto-{figure}",
        )
        for r in best:
            labels.append(
                ax.annotate(
                    f"#{r.trial}",
                    (x_of(r), unit * (r.accuracy or 0)),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
            )
    if original is not None and original.accuracy is not None and x_of(original) is not None:
        ax.scatter(
            [x_of(original)],
            [unit * original.accuracy],
            s=150,
            marker="*",
            color="black",
            label="original model",
            zorder=5,
            gid=f"original-{figure}",
        )
    if limit is not None:
        ax.axvline(
            limit * scale,
            color=_TARGET_COLOR,
            linestyle="--",
            linewidth=1,
            label=limit_label.format(limit * scale),
        )
    if floor is not None:
        ax.axhline(
            unit * floor,
            color=_TARGET_COLOR,
            linestyle="--",
            linewidth=1,
            label=f"{metric.label} floor {metric.format(floor)}",
        )
    if not points and original is None:
        ax.text(0.5, 0.5, "no successful trials", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(label)
    ax.set_ylabel(f"{metric.label}{' (%)' if metric.fraction else ''}, {metric.direction}")
    ax.grid(alpha=0.3)
    ax.margins(x=0.1, y=0.12)
    if metric.fraction:
        cap_percent(ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    return labels


def pareto_svg(
    records: Sequence[TrialRecord],
    pareto: Collection[int],
    *,
    original: TrialRecord | None = None,
    targets: Targets | None = None,
    original_accuracy: float | None = None,
) -> str:
    """Accuracy against file size and, when any latency was measured, against latency.

    Successful trials are grey dots, the Pareto trials blue (labelled ``#trial``) with a step
    line along each panel's trade-off, the original model a black star; failed trials are not
    drawn. Targets are dashed red lines: the size and latency limits vertical, the accuracy
    floor (``targets.quality_floor(original_accuracy)``, with ``original.accuracy`` when
    ``original_accuracy`` is None) horizontal. Text stays SVG text, so labels are searchable.

    Each point group has an SVG id: ``pareto-size_bytes``/``pareto-latency_ms`` (Pareto
    trials), ``trials-…`` (the others) and ``original-…``.
    """
    ordered = _check_records(records)
    trials = [r for r in ordered if r.ok and r.accuracy is not None]
    front = set(pareto)
    panels: list[dict[str, Any]] = [
        {
            "figure": "size_bytes",
            "scale": 1 / _KB,
            "label": "TFLite file size (KB)",
            "limit": None if targets is None else targets.max_size_bytes,
            "limit_label": "size limit {:,.1f} KB",
        }
    ]
    with_latency = any(r.latency_ms is not None for r in trials) or (
        original is not None and original.latency_ms is not None
    )
    if with_latency:
        panels.append(
            {
                "figure": "latency_ms",
                "scale": 1.0,
                "label": "latency, batch 1 p50 (ms)",
                "limit": None if targets is None else targets.max_latency_ms,
                "limit_label": "latency limit {:,.3g} ms",
            }
        )
    floor = _floor(targets, original, original_accuracy)
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(min(5.6 * len(panels), FRAME_WIDTH_IN), 4.0),
        dpi=100,
        squeeze=False,
    )
    labels = []
    for ax, panel in zip(axes[0], panels):
        labels += _panel(
            ax,
            trials=trials,
            front=front,
            original=original,
            floor=floor,
            metric=_metric(targets),
            **panel,
        )
    n_failed = sum(1 for r in ordered if not r.ok)
    fig.suptitle(
        f"{len(trials)} successful trial(s), {len(front & {r.trial for r in trials})} on the "
        f"Pareto front" + (f", {n_failed} failed (not drawn)" if n_failed else ""),
        fontsize=10,
    )
    fig.tight_layout()
    for ax in axes[0]:  # labels overprint only within one panel
        separate_labels(fig, [label for label in labels if label.axes is ax])
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        return _svg(fig)


def _metric(targets: Targets | None) -> Metric:
    return METRICS["top1"] if targets is None else targets.metric


def _best(
    records: Sequence[TrialRecord], metric: Metric | None = None
) -> tuple[str, TrialRecord] | None:
    metric = metric or METRICS["top1"]
    sign = 1.0 if metric.higher_is_better else -1.0  # max() of the better quality
    ok = [r for r in records if r.ok and r.accuracy is not None]
    met = [r for r in ok if r.meets_targets]
    if met:
        return "Best trial meeting every target", max(
            met, key=lambda r: (sign * (r.accuracy or 0.0), -float(r.size_bytes or 0), -r.trial)
        )
    rewarded = [r for r in ok if r.reward is not None and not math.isnan(r.reward)]
    if rewarded:
        return "No trial met every target; highest reward", max(
            rewarded, key=lambda r: (r.reward, -r.trial)
        )
    if ok:
        return "Best-quality trial", max(ok, key=lambda r: (sign * (r.accuracy or 0.0), -r.trial))
    return None


def _describe(record: TrialRecord, metric: Metric | None = None) -> str:
    metric = metric or METRICS["top1"]
    parts = [f"{metric.label} {metric.format(record.accuracy)}"]
    if record.size_bytes is not None:
        parts.append(f"{record.size_bytes / _KB:,.1f} KB")
    if record.peak_memory_bytes is not None:
        parts.append(f"peak memory {record.peak_memory_bytes / _KB:,.1f} KB")
    if record.latency_ms is not None:
        parts.append(f"{record.latency_ms:.3g} ms")
    if record.energy_uj is not None:
        parts.append(f"{record.energy_uj:.3g} µJ")
    return ", ".join(parts)


def _describe_targets(targets: Targets, floor: float | None) -> str:
    parts = []
    metric = targets.metric
    if floor is not None:
        sign = "≥" if metric.higher_is_better else "≤"
        parts.append(f"{metric.label} {sign} {metric.format(floor)}")
    elif targets.min_quality is not None or targets.max_quality_drop is not None:
        parts.append(f"a {metric.label} floor (needs the original's)")
    if targets.max_size_bytes is not None:
        parts.append(f"size ≤ {targets.max_size_bytes / _KB:,.1f} KB")
    if targets.max_peak_memory_bytes is not None:
        parts.append(f"peak memory ≤ {targets.max_peak_memory_bytes / _KB:,.1f} KB")
    if targets.max_latency_ms is not None:
        parts.append(f"latency ≤ {targets.max_latency_ms:g} ms")
    if targets.max_energy_uj is not None:
        parts.append(f"energy ≤ {targets.max_energy_uj:g} µJ")
    return ", ".join(parts)


def _shown(frame: pd.DataFrame, metric: Metric | None = None) -> pd.DataFrame:
    """Display strings: quality in the metric's format (accuracies in %), sizes and counts with
    thousands separators."""
    metric = metric or METRICS["top1"]

    def fmt(pattern: str) -> Any:
        return lambda v: "" if pd.isna(v) else pattern.format(v)

    formats = {
        "accuracy": lambda v: "" if pd.isna(v) else metric.format(float(v)),
        "keras_accuracy": lambda v: "" if pd.isna(v) else metric.format(float(v)),
        "size_kb": fmt("{:,.1f}"),
        "peak_memory_bytes": fmt("{:,.0f}"),
        "latency_ms": fmt("{:.3g}"),
        "energy_uj": fmt("{:.3g}"),
        "params": fmt("{:,.0f}"),
        "macs": fmt("{:,.0f}"),
        "reward": fmt("{:.4f}"),
        "seconds": fmt("{:.1f}"),
        "meets_targets": lambda v: "yes" if v else "no",
        "pareto": lambda v: "yes" if v else "",
    }
    shown = frame.drop(columns=[c for c in ("size_bytes",) if c in frame])
    for column, f in formats.items():
        if column in shown:
            shown[column] = shown[column].map(f).astype(object)
    return shown


def _table(frame: pd.DataFrame, caption: str) -> str:
    if frame.empty:
        return f'<p class="note">{html.escape(caption)}: none.</p>'
    table = frame.to_html(index=False, na_rep="", border=0, escape=True)
    opening_end = table.index(">") + 1  # the caption must sit right inside <table ...>
    return f"{table[:opening_end]}<caption>{html.escape(caption)}</caption>{table[opening_end:]}"


def search_html(
    records: Sequence[TrialRecord],
    pareto: Collection[int],
    *,
    original: TrialRecord | None = None,
    targets: Targets | None = None,
    original_accuracy: float | None = None,
    stop_reason: str = "",
    notes: Sequence[str] = (),
) -> str:
    """One self-contained page: a summary, the Pareto chart, the suggestions, every trial."""
    ordered = _check_records(records)
    if isinstance(notes, str):
        notes = (notes,)
    n_failed = sum(1 for r in ordered if not r.ok)
    n_met = sum(1 for r in ordered if r.ok and r.meets_targets)
    summary = [
        f"{len(ordered)} trial(s) run: {len(ordered) - n_failed} succeeded, {n_failed} failed, "
        f"{n_met} met every target, {len(set(pareto))} on the Pareto front."
    ]
    if original is not None:
        summary.append(f"Original model: {_describe(original, _metric(targets))}.")
    floor = _floor(targets, original, original_accuracy)
    if targets is not None and not targets.empty:
        summary.append(f"Targets: {_describe_targets(targets, floor)}.")
    best = _best(ordered, _metric(targets))
    if best is not None:
        label, record = best
        summary.append(
            f"{label}: trial #{record.trial} ({_describe(record, _metric(targets))}): "
            f"{_edits(record)}."
        )
    else:
        summary.append("No trial succeeded.")
    if stop_reason:
        summary.append(f"Stopped: {stop_reason}")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary)
    foot = "".join(f'<p class="note">{html.escape(str(n))}</p>' for n in notes)
    chart = pareto_svg(
        ordered, pareto, original=original, targets=targets, original_accuracy=original_accuracy
    )
    suggestions = _table(
        _shown(suggestions_frame(ordered, pareto), _metric(targets)),
        "Suggestions: the Pareto trials, smallest file first",
    )
    history = _table(
        _shown(history_frame(ordered, pareto), _metric(targets)), "Every trial, in order"
    )
    legend = (
        "Sizes in KB are the .tflite file (1 KB = 1000 B); quality is the converted model's "
        f"{_metric(targets).label} on validation; latency is the batch-1 median; energy is the "
        "per-inference estimate."
    )
    return (
        '<html><head><meta charset="utf-8"><title>Architecture search</title>'
        f"{_STYLE}</head><body>"
        f"<h2>Architecture search</h2><ul>{items}</ul>{foot}"
        f'<h3>Quality against cost</h3><div class="figure">{chart}</div>'
        f"<h3>Suggestions</h3>{suggestions}"
        f"<h3>History</h3>{history}"
        f'<p class="note">{html.escape(legend)}</p>'
        "</body></html>"
    )
