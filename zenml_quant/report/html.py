"""A self-contained HTML page of a table: what the ZenML dashboard shows for our reports.

Light on purpose (pandas only): the gate and the materializers render pages without importing
TensorFlow, tfmot or matplotlib.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

__all__ = ["render_html"]

# Sized for the dashboard's visualization frame (958 px wide): the table takes the width and
# wraps long cells instead of scrolling sideways; figures shrink to fit.
_STYLE = """
<style>
body{font-family:system-ui,sans-serif;margin:8px;color:#222}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
td{overflow-wrap:anywhere}
svg{max-width:100%;height:auto}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
caption{font-weight:600;font-size:15px;text-align:left;margin-bottom:6px}
.note{color:#555;font-size:12px;margin-top:8px}
</style>
"""


def render_html(
    frame: pd.DataFrame, *, title: str, notes: Sequence[str] = (), figure: str = ""
) -> str:
    """A self-contained HTML page of ``frame`` with a caption, footnotes and an inline figure."""
    # Headers may break after an underscore (a zero-width space), never inside a word; a
    # missing value (None or NaN) shows as an empty cell.
    shown = frame.rename(columns=lambda c: str(c).replace("_", "_\u200b"))
    for column in shown.select_dtypes(include="object").columns:
        shown[column] = shown[column].map(lambda v: "" if v is None else v)
    table = shown.to_html(index=False, na_rep="", float_format=lambda v: f"{v:,.4g}", border=0)
    opening_end = table.index(">") + 1  # the caption must sit right inside <table ...>
    table = f"{table[:opening_end]}<caption>{html.escape(title)}</caption>{table[opening_end:]}"
    foot = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return f"<html><head>{_STYLE}</head><body>{table}{foot}{figure}</body></html>"
