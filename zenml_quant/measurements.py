"""What the deployment gate is shown for each candidate, from evaluations and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from .benchmark.types import PERCENTILES, BenchmarkResult
from .gate import CandidateMeasurements
from .types import BaselineSummary, CandidateResult

__all__ = ["candidate_measurements"]


def candidate_measurements(
    candidate: CandidateResult,
    baseline: BaselineSummary,
    benchmarks: Sequence[BenchmarkResult] = (),
) -> CandidateMeasurements:
    """The gate's view of one candidate.

    Accuracy is the candidate's on the report split, against the Keras baseline on the same
    split. Latency comes from the device benchmark (every percentile at every thread count
    measured); without one, the evaluation's median stands in as ``p50@<threads>``. Peak memory
    is the interpreter's tensor arena on the device, else the activation estimate read off the
    graph. A failed evaluation or benchmark sets ``error``, which fails every check.
    """
    measured = [b for b in benchmarks if b.ok]
    latency = {f"{p}@{b.threads}": b.latency_ms(p) for b in measured for p in PERCENTILES}
    if not benchmarks and candidate.latency_ms_p50 is not None:
        latency[f"p50@{candidate.threads}"] = candidate.latency_ms_p50
    peak = max((b.arena_bytes for b in measured), default=None)
    errors = [candidate.error] if candidate.error else []
    if candidate.metric != baseline.metric:
        errors.append(
            f"measured by {candidate.metric}, the original by {baseline.metric}: the two "
            "cannot be compared"
        )
    errors += [
        f"benchmark at {b.threads} thread(s) on {b.device}: {b.error}"
        for b in benchmarks
        if not b.ok
    ]
    return CandidateMeasurements(
        name=candidate.name,
        accuracy=candidate.accuracy,
        baseline_accuracy=baseline.accuracy,
        size_bytes=candidate.size_bytes,
        latency_ms=latency,
        peak_memory_bytes=peak if peak is not None else candidate.peak_activation_bytes,
        error="; ".join(errors) or None,
        metric=baseline.metric,
        higher_is_better=baseline.higher_is_better,
        n_examples=baseline.n_samples,
    )
