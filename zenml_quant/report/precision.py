"""Tables and a chart of a precision allocation, for the dashboard and the CLI."""

from __future__ import annotations

import pandas as pd

from ..allocate import Allocation
from ..metrics import metric_named
from .html import render_html
from .plots import FRAME_WIDTH_IN, plt, svg_of

__all__ = ["allocation_attempts_table", "allocation_html", "precision_profile_svg"]


def allocation_attempts_table(allocation: Allocation) -> pd.DataFrame:
    """Every whole model scored, in order: origin, the layers not at int8, quality, bytes."""
    return pd.DataFrame(
        [
            {
                "origin": a.origin,
                "not_int8": ", ".join(f"{layer} {p}" for layer, p in a.plan if p != "int8"),
                "quality": a.quality,
                "change": a.change,
                "size_bytes": a.size_bytes,
                "meets_budget": a.met,
            }
            for a in allocation.attempts
        ],
        columns=["origin", "not_int8", "quality", "change", "size_bytes", "meets_budget"],
    )


def precision_profile_svg(table: pd.DataFrame, metric_name: str, fraction: bool) -> str:
    """Per layer and precision: the quality change (left) and the bytes saved (right)."""
    rows = table[table["applied"] & (table["precision"] != "int8")]
    layers = list(dict.fromkeys(table["layer"]))[::-1]  # barh draws bottom-up
    precisions = list(dict.fromkeys(rows["precision"]))
    height = max(2.6, 0.38 * len(layers) + 1.4)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FRAME_WIDTH_IN, height), dpi=100, sharey=True)
    width = 0.8 / max(len(precisions), 1)
    scale = 100 if fraction else 1
    for k, precision in enumerate(precisions):
        part = rows[rows["precision"] == precision].set_index("layer")
        offsets = [i - 0.4 + width * (k + 0.5) for i in range(len(layers))]
        changes = [scale * part["change"].get(layer, 0.0) for layer in layers]
        saved = [-part["bytes_delta"].get(layer, 0) / 1000 for layer in layers]
        left.barh(offsets, changes, height=width, label=precision)
        right.barh(offsets, saved, height=width, label=precision)
    left.set_yticks(range(len(layers)), layers)
    left.set_xlabel(f"{'points' if fraction else metric_name} worse than all-int8")
    right.set_xlabel("KB saved against all-int8 (negative: costs)")
    for ax in (left, right):
        ax.axvline(0, color="black", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return svg_of(fig)


def allocation_html(allocation: Allocation) -> str:
    """The allocation's outcome, the models it scored and the per-layer profile chart."""
    profile = allocation.profile
    metric = metric_named(profile.metric)
    model = allocation.model
    title = (
        f"Per-layer precision ({allocation.objective} objective): {allocation.status} "
        f"({model.size_bytes:,} B against all-int8 {profile.int8_bytes:,} B)"
    )
    notes = [
        allocation.reason,
        "Precision per layer (read from the file): "
        + ", ".join(f"{layer} {p}" for layer, p in model.precisions)
        + ".",
        f"Profile: {profile.mode} mode, {profile.n_samples} examples of the {profile.split} "
        f"split, {profile.evaluations} evaluations in {profile.seconds:.1f} s; all-int8 "
        f"{metric.format(profile.int8_quality)}, float Keras {metric.format(profile.float_quality)}.",
        *model.notes,
    ]
    return render_html(
        allocation_attempts_table(allocation),
        title=title,
        notes=notes,
        figure=precision_profile_svg(profile.table, metric.name, metric.fraction),
    )
