"""Charts embedded in the HTML reports (inline SVG, so the dashboard needs nothing else)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are rendered in steps and tests, never on a screen

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..metrics import metric_named  # noqa: E402
from ..types import BaselineSummary, CandidateResult  # noqa: E402

__all__ = [
    "FRAME_WIDTH_IN",
    "cap_percent",
    "sensitivity_bars_svg",
    "separate_labels",
    "size_accuracy_svg",
    "svg_of",
]

#: The widest figure, in inches at 100 dpi: the ZenML dashboard shows a visualization in a
#: frame 958 px wide, and a wider image scrolls or shrinks its text.
FRAME_WIDTH_IN = 9.2


def size_accuracy_svg(baseline: BaselineSummary, candidates: Sequence[CandidateResult]) -> str:
    """The run's metric against file size, one labelled point per candidate, the Keras value
    dashed. Failed candidates are left out (the table lists them with their reason).
    """
    metric = metric_named(baseline.metric, baseline.higher_is_better)
    scale = 100.0 if metric.fraction else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    labels = []
    for c in candidates:
        if c.accuracy is None:
            continue
        ax.scatter(c.size_bytes / 1000, scale * c.accuracy, s=36)
        labels.append(
            ax.annotate(
                c.name,
                (c.size_bytes / 1000, scale * c.accuracy),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=9,
            )
        )
    ax.axhline(scale * baseline.accuracy, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        "keras",
        (0, scale * baseline.accuracy),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=9,
        color="grey",
    )
    ax.set_xlabel("TFLite file size (KB, 1 KB = 1000 B)")
    unit = " (%)" if metric.fraction else ""
    ax.set_ylabel(f"{metric.label} on {baseline.split}{unit}, {metric.direction}")
    ax.margins(x=0.12, y=0.3)  # room for the point labels
    ax.set_xlim(left=0)
    if metric.fraction:
        cap_percent(ax)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    separate_labels(fig, labels)
    return svg_of(fig)


def sensitivity_bars_svg(table: pd.DataFrame) -> str:
    """Per-layer bars: exact accuracy drops (left) and the debugger's noise-to-signal (right).

    ``table`` is :attr:`SensitivityReport.table`; layers are drawn in its (ranked) order.
    """
    layers = list(table["layer"])[::-1]  # barh draws bottom-up: most sensitive on top
    rows = table.set_index("layer").loc[layers]
    height = max(2.4, 0.32 * len(layers) + 1.2)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FRAME_WIDTH_IN, height), dpi=100, sharey=True)
    y = np.arange(len(layers))
    left.barh(y + 0.2, rows["drop_alone_pts"].fillna(0), height=0.4, label="only this layer int8")
    left.barh(
        y - 0.2, rows["recovery_pts"].fillna(0), height=0.4, label="won back by keeping it float"
    )
    for i, measured in enumerate(rows["measured"]):
        if not measured:
            left.annotate("not measured", (0, y[i]), fontsize=8, color="grey", va="center")
    left.set_yticks(y, layers)
    left.set_xlabel("accuracy points")
    left.legend(fontsize=8, loc="lower right")
    left.grid(axis="x", alpha=0.3)
    right.barh(y, rows["noise_to_signal"].fillna(0), color="tab:purple", height=0.6)
    right.set_xlabel("debugger: noise-to-signal of the output")
    right.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return svg_of(fig)


def cap_percent(ax: Any) -> None:
    """An accuracy axis in percent ends at 100 %: margins added for labels must not draw an
    impossible accuracy."""
    bottom, top = ax.get_ylim()
    if top > 100.0:
        ax.set_ylim(bottom, 100.0)


def separate_labels(fig: Any, labels: Sequence[Any], *, rounds: int = 30) -> None:
    """Move point labels apart until none overprints another (matplotlib places each label
    alone; candidates of similar size and accuracy put theirs on top of each other).

    Each overlapping label moves up by the overlap, in display units, a few rounds at most;
    a label keeps its arrow-less offset from its point, so which point it names stays clear.
    """
    if len(labels) < 2:
        return
    renderer = fig.canvas.get_renderer()
    for _ in range(rounds):
        moved = False
        boxes = [label.get_window_extent(renderer) for label in labels]
        for i in range(len(labels)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                if a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1:
                    dx, dy = labels[i].get_position()  # offset points from the point
                    # display pixels -> points (72 per inch)
                    shift = (b.y1 - a.y0 + 1) * 72.0 / fig.dpi
                    labels[i].set_position((dx, dy + shift))
                    boxes[i] = labels[i].get_window_extent(renderer)
                    moved = True
        if not moved:
            return


def svg_of(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog so it can sit inside HTML
