"""Charts embedded in the HTML reports (inline SVG, so the dashboard needs nothing else)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # reports are rendered in steps and tests, never on a screen

import matplotlib.pyplot as plt  # noqa: E402

from .types import BaselineSummary, CandidateResult  # noqa: E402

__all__ = ["size_accuracy_svg"]


def size_accuracy_svg(baseline: BaselineSummary, candidates: Sequence[CandidateResult]) -> str:
    """Accuracy against file size, one labelled point per candidate, the Keras accuracy dashed.

    Failed candidates are left out (the table lists them with their reason).
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for c in candidates:
        if c.accuracy is None:
            continue
        ax.scatter(c.size_bytes / 1024, 100 * c.accuracy, s=36)
        ax.annotate(
            c.name,
            (c.size_bytes / 1024, 100 * c.accuracy),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=9,
        )
    ax.axhline(100 * baseline.accuracy, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        "keras",
        (0, 100 * baseline.accuracy),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(4, 4),
        fontsize=9,
        color="grey",
    )
    ax.set_xlabel("TFLite file size (KiB)")
    ax.set_ylabel(f"accuracy on {baseline.split} (%)")
    ax.margins(x=0.12, y=0.3)  # room for the point labels
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]  # drop the XML prolog so it can sit inside HTML
