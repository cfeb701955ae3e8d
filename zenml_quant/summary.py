"""The one report of a compress run: baseline, every candidate with its status, the gate.

A final pipeline step builds a :class:`RunSummary`; the CLI's table, its ``--json`` file and the
dashboard page all read it. Each candidate is a row whatever happened to it: ``status`` is
``"ok"``, ``"failed"`` (with the reason) or, after the gate, ``"selected"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from .benchmark.types import BenchmarkResult
from .gate import GateDecision
from .metrics import Metric, metric_named
from .report.html import render_html
from .types import BaselineSummary, CandidateResult

__all__ = ["CANDIDATE_STATUSES", "CandidateSummary", "RunSummary", "build_summary", "summary_html"]

CANDIDATE_STATUSES: tuple[str, ...] = ("ok", "failed", "selected")


@dataclass(frozen=True)
class CandidateSummary:
    """One candidate's row: its figures, what became of it and why.

    ``gate_checks`` are the gate's checks of it as ``(name, passed, reason)``.
    """

    name: str
    mode: str
    status: str
    reason: str
    accuracy: float | None
    size_bytes: int | None
    latency_ms_p50: float | None
    threads: int
    peak_activation_bytes: int | None
    float_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    precisions: tuple[tuple[str, str], ...] = ()
    benchmark: tuple[dict[str, Any], ...] = ()
    gate_checks: tuple[tuple[str, bool, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def not_int8(self) -> str:
        """The layers of a mixed model that are not int8, with their precision
        (``"conv1 int4, logits float"``); empty for a model at one precision."""
        if self.precisions:
            return ", ".join(f"{layer} {p}" for layer, p in self.precisions if p != "int8")
        return ", ".join(f"{layer} float" for layer in self.float_layers)

    @property
    def artifact(self) -> str:
        """The ZenML artifact that holds this candidate's ``.tflite``."""
        return f"zq_tflite_{self.name}"


@dataclass(frozen=True)
class RunSummary:
    """Everything a person or a script needs from one run, in plain values.

    ``sensitivity`` holds the rows of the sensitivity table when profiling ran; ``gate`` the
    decision when the gate ran. ``candidates`` keep the pipeline's order.
    """

    baseline: BaselineSummary
    candidates: tuple[CandidateSummary, ...]
    gate: GateDecision | None = None
    sensitivity: tuple[dict[str, Any], ...] | None = None
    notes: tuple[str, ...] = ()

    def candidate(self, name: str) -> CandidateSummary:
        """The candidate called ``name`` (KeyError naming the known ones otherwise)."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}: the run has {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.candidates)

    @property
    def metric(self) -> Metric:
        """What every quality figure of the run measures (the ``accuracy`` fields)."""
        return metric_named(self.baseline.metric, self.baseline.higher_is_better)

    def to_dict(self, paths: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON summary; key names are stable (users script against them).

        ``paths`` maps candidate names to the files the caller wrote.
        """
        paths = paths or {}
        b = self.baseline
        metric = self.metric
        out: dict[str, Any] = {
            # The "accuracy" fields below hold values of this metric.
            "metric": {
                "name": metric.key,
                "task": b.task,
                "direction": metric.direction,
                "higher_is_better": metric.higher_is_better,
                "description": metric.description,
            },
            "validation": b.validation_source,
            "baseline": {
                "model": b.model_name,
                "flavour": b.flavour,
                "split": b.split,
                "n_samples": b.n_samples,
                "accuracy": b.accuracy,
                "params": b.params,
                "macs": b.macs,
                "peak_activation_bytes": b.peak_activation_bytes,
                "float_tflite_bytes": b.float_tflite_bytes,
                "metrics": dict(b.metrics),
            },
            "candidates": [
                {
                    **{k: v for k, v in asdict(c).items() if k not in ("gate_checks", "benchmark")},
                    "error": c.reason if c.status == "failed" else None,
                    "float_layers": list(c.float_layers),
                    "precisions": dict(c.precisions),
                    "notes": list(c.notes),
                    "benchmark": [dict(r) for r in c.benchmark],
                    "gate_checks": [
                        {"name": n, "passed": p, "reason": r} for n, p, r in c.gate_checks
                    ],
                    "artifact": c.artifact,
                    "path": paths.get(c.name),
                }
                for c in self.candidates
            ],
            "notes": list(self.notes),
        }
        if self.sensitivity is not None:
            out["sensitivity"] = [dict(row) for row in self.sensitivity]
        if self.gate is not None:
            out["gate"] = gate_dict(self.gate)
        return out

    def table(self) -> pd.DataFrame:
        """One row per candidate (after the Keras baseline): what the CLI and dashboard show.

        ``accuracy`` holds the run's metric, ``delta`` its change against the Keras model (in
        the metric's units; ``delta_pts`` the same in percentage points for fraction metrics).
        """
        b = self.baseline
        fraction = self.metric.fraction
        rows = [
            {
                "candidate": f"keras ({b.flavour})",
                "status": "baseline",
                "accuracy": b.accuracy,
                "delta": None,
                "delta_pts": None,
                "size_bytes": None,
                "vs_float32": None,
                "latency_ms_p50": None,
                "float_layers": "",
                "not_int8": "",
                "reason": "",
            }
        ]
        for c in self.candidates:
            rows.append(
                {
                    "candidate": c.name,
                    "status": c.status,
                    "accuracy": c.accuracy,
                    "delta": None if c.accuracy is None else c.accuracy - b.accuracy,
                    "delta_pts": None
                    if c.accuracy is None or not fraction
                    else 100 * (c.accuracy - b.accuracy),
                    "size_bytes": c.size_bytes if c.ok else None,
                    "vs_float32": (c.size_bytes or 0) / b.float_tflite_bytes
                    if c.ok and b.float_tflite_bytes
                    else None,
                    "latency_ms_p50": c.latency_ms_p50,
                    "float_layers": ", ".join(c.float_layers),
                    "not_int8": c.not_int8,
                    "reason": c.reason,
                }
            )
        return pd.DataFrame(rows)


def gate_dict(gate: GateDecision) -> dict[str, Any]:
    """The gate decision as plain JSON values (stable keys)."""
    champion = gate.champion
    return {
        "passed": gate.passed,
        "selected": gate.selected,
        "requested_stage": gate.requested_stage,
        "stage": gate.stage,
        "promotion": gate.promotion,
        "champion": None if champion is None else asdict(champion),
        "targets": dict(gate.targets),
        "checked": gate.checked,
        "checks": [asdict(c) for c in gate.checks],
        "reasons": list(gate.reasons),
    }


def _status(candidate: CandidateResult, gate: GateDecision | None) -> tuple[str, str]:
    if candidate.error:
        return "failed", candidate.error
    if gate is not None and gate.selected == candidate.name:
        return "selected", "; ".join(gate.reasons[:1]) or "selected by the gate"
    if gate is not None and candidate.name in gate.per_candidate:
        failed = [c.reason for c in gate.per_candidate[candidate.name] if not c.passed]
        if failed:
            return "ok", "gate: " + "; ".join(failed)
        return "ok", "passes the gate (another candidate was chosen)"
    return "ok", ""


def build_summary(
    baseline: BaselineSummary,
    candidates: Sequence[CandidateResult],
    *,
    benchmarks: Sequence[Sequence[BenchmarkResult]] | None = None,
    gate: GateDecision | None = None,
    sensitivity: pd.DataFrame | None = None,
) -> RunSummary:
    """The run's summary. ``benchmarks[i]`` belongs to ``candidates[i]`` when given."""
    rows = []
    for i, c in enumerate(candidates):
        status, reason = _status(c, gate)
        runs = tuple(asdict(r) for r in benchmarks[i]) if benchmarks else ()
        checks = () if gate is None else gate.per_candidate.get(c.name, ())
        rows.append(
            CandidateSummary(
                name=c.name,
                mode=c.mode,
                status=status,
                reason=reason,
                accuracy=c.accuracy,
                size_bytes=c.size_bytes if not c.error else None,
                latency_ms_p50=c.latency_ms_p50,
                threads=c.threads,
                peak_activation_bytes=c.peak_activation_bytes,
                float_layers=tuple(c.float_layers),
                precisions=tuple(c.precisions),
                notes=tuple(c.notes),
                metrics=dict(c.metrics),
                benchmark=runs,
                gate_checks=tuple((ch.name, ch.passed, ch.reason) for ch in checks),
            )
        )
    rows_sens = None
    if sensitivity is not None:
        rows_sens = tuple(
            {k: (None if pd.isna(v) else v) for k, v in row.items()}
            for row in sensitivity.to_dict(orient="records")
        )
    failed = [r.name for r in rows if r.status == "failed"]
    notes = (f"{len(failed)} candidate(s) failed: {', '.join(failed)}",) if failed else ()
    return RunSummary(
        baseline=baseline, candidates=tuple(rows), gate=gate, sensitivity=rows_sens, notes=notes
    )


def summary_html(summary: RunSummary) -> str:
    """The summary as a dashboard page: the candidates' table, the gate's verdict as a note."""
    frame = summary.table()
    metric = summary.metric
    shown = frame.assign(
        accuracy=frame["accuracy"].map(lambda a: None if pd.isna(a) else metric.format(a)),
        size_bytes=frame["size_bytes"].map(lambda v: None if pd.isna(v) else f"{int(v):,}"),
    ).rename(columns={"accuracy": metric.label})
    notes = list(summary.notes)
    gate = summary.gate
    if gate is not None:
        verdict = "PASSED" if gate.passed else "FAILED"
        notes.append(f"Deployment gate {verdict}: {gate.promotion}.")
        notes += list(gate.reasons)
    b = summary.baseline
    title = (
        f"{b.model_name} ({b.task}): {metric.label} ({metric.direction}) on {b.split} "
        f"({b.n_samples} examples)"
    )
    if b.validation_source:
        notes.insert(0, f"Decisions were taken on {b.validation_source}.")
    return render_html(shown, title=title, notes=notes)
