"""Everything a person reads about a run: tables, charts and the HTML pages the dashboard shows.

One module per subject: :mod:`.compress` (the candidates compared, the per-layer profile, the
sensitivity, PTQ and QAT pages), :mod:`.precision` (the per-layer precision allocation),
:mod:`.search` (the architecture search's history, Pareto chart and suggestions), :mod:`.gate`
(the deployment gate's decision), :mod:`.plots` (the charts, with matplotlib) and :mod:`.html`
(the page around a table; pandas only, so the gate and the materializers render pages without
loading matplotlib or TensorFlow). Names load on first use.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        (
            "attempts_table",
            "comparison_html",
            "comparison_table",
            "layer_table_html",
            "ptq_html",
            "qat_html",
            "sensitivity_html",
            "summary_dict",
        ),
        "compress",
    ),
    **dict.fromkeys(
        ("allocation_attempts_table", "allocation_html", "precision_profile_svg"), "precision"
    ),
    **dict.fromkeys(
        (
            "HISTORY_COLUMNS",
            "PHASE_COLUMNS",
            "SUGGESTION_COLUMNS",
            "history_frame",
            "pareto_svg",
            "search_html",
            "suggestions_frame",
        ),
        "search",
    ),
    **dict.fromkeys(("decision_html", "decision_table"), "gate"),
    **dict.fromkeys(("sensitivity_bars_svg", "size_accuracy_svg", "svg_of"), "plots"),
    "render_html": "html",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
