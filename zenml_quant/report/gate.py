"""The gate's decision as a table and a dashboard page (pandas only, no TensorFlow)."""

from __future__ import annotations

import pandas as pd

from ..gate import GateDecision
from .html import render_html

__all__ = ["decision_html", "decision_table"]

_COLUMNS = ["candidate", "selected", "check", "value", "limit", "passed", "reason"]


def decision_table(decision: GateDecision) -> pd.DataFrame:
    """One row per candidate and check: ``candidate, selected, check, value, limit, passed,
    reason`` (a refusal before any candidate was checked is one row with candidate ``-``)."""
    per_candidate = decision.per_candidate or ({"-": decision.checks} if decision.checks else {})
    rows = [
        {
            "candidate": name,
            "selected": name == decision.selected,
            "check": check.name,
            "value": check.value,
            "limit": check.limit,
            "passed": check.passed,
            "reason": check.reason,
        }
        for name, checks in per_candidate.items()
        for check in checks
    ]
    return pd.DataFrame(rows, columns=_COLUMNS)


def decision_html(decision: GateDecision) -> str:
    """The decision as a dashboard page: the verdict in the caption, the reasons as notes."""
    if decision.passed:
        title = f"Deployment gate PASSED: {decision.selected} selected; {decision.promotion}"
    else:
        title = f"Deployment gate FAILED: {decision.promotion}"
    notes = list(decision.reasons)
    champion = decision.champion
    if champion is not None:
        notes.append(f"champion: version {champion.version}, accuracy {champion.accuracy!r}")
    frame = decision_table(decision).assign(
        passed=lambda f: f["passed"].map(lambda p: "yes" if p else "NO"),
        value=lambda f: f["value"].map(lambda v: None if v is None or pd.isna(v) else f"{v:,.6g}"),
        limit=lambda f: f["limit"].map(
            lambda v: None if v is None else (v if isinstance(v, str) else f"{v:,.6g}")
        ),
    )
    return render_html(frame, title=title, notes=notes)
