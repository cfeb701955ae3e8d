"""The run's one report."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pandas as pd
from zenml import step
from zenml.types import HTMLString

from ... import summary as _summary
from ...benchmark.types import BenchmarkResult
from ...gate import GateDecision
from ...types import (
    BaselineSummary,
    CandidateResult,
)
from .._runtime import STEP_SETTINGS, record_metadata

__all__ = ["summarize_run"]

logger = logging.getLogger(__name__)


@step(name="zq_summarize_run", enable_cache=False, settings=STEP_SETTINGS)
def summarize_run(
    baseline: BaselineSummary,
    candidates: list[CandidateResult],
    benchmarks: Any = None,
    decision: GateDecision | None = None,
    sensitivity: pd.DataFrame | None = None,
) -> tuple[
    Annotated[_summary.RunSummary, "zq_run_summary"], Annotated[HTMLString, "zq_run_report"]
]:
    """The run's one report: baseline, every candidate with status and reason, the gate.

    ``benchmarks[i]`` (a list of :class:`BenchmarkResult`) belongs to ``candidates[i]``. The
    CLI's table and ``--json`` read this artifact.
    """
    runs: list[list[BenchmarkResult]] | None = benchmarks or None
    summary = _summary.build_summary(
        baseline, candidates, benchmarks=runs, gate=decision, sensitivity=sensitivity
    )
    record_metadata(
        {
            "candidates": {c.name: c.status for c in summary.candidates},
            "gate_passed": None if decision is None else decision.passed,
            "selected": None if decision is None else decision.selected,
        }
    )
    return summary, HTMLString(_summary.summary_html(summary))
