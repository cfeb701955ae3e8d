"""What a benchmark measures, and how it is asked to measure."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import InvalidOptionError
from ..types import TFLiteModel

__all__ = ["PERCENTILES", "BenchmarkOptions", "BenchmarkResult", "Benchmarker"]

#: The names :meth:`BenchmarkResult.latency_ms` accepts.
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p99", "mean")


@dataclass(frozen=True)
class BenchmarkResult:
    """One model at one thread count on one device (batch-1 ``invoke()`` latency, memory).

    Plain values only, so it crosses ZenML step boundaries through the built-in dataclass
    materializer. ``device`` is ``"local"`` or ``"ssh://user@host:port"``. ``peak_rss_bytes`` is
    the peak resident memory of the benchmark process (Python, numpy and the runtime included),
    ``arena_bytes`` an upper-bound estimate of the interpreter's tensor arena (every non-constant
    tensor, no memory reuse). ``accuracy`` / ``n_samples`` are set when data was sent along.
    When ``error`` is set the model could not be measured and the numeric figures are 0.
    """

    device: str
    threads: int
    load_ms: float
    allocate_ms: float
    warmup_runs: int
    runs: int
    seconds: float
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    peak_rss_bytes: int
    arena_bytes: int
    size_bytes: int
    runtime: str
    machine: str
    accuracy: float | None = None
    n_samples: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def latency_ms(self, percentile: str = "p50") -> float:
        """The ``"p50"``, ``"p90"``, ``"p99"`` or ``"mean"`` latency in milliseconds."""
        if percentile not in PERCENTILES:
            raise InvalidOptionError(
                f"Unknown latency statistic {percentile!r}: use one of {', '.join(PERCENTILES)}."
            )
        return float(getattr(self, f"{percentile}_ms"))


@dataclass(frozen=True)
class BenchmarkOptions:
    """How to benchmark: thread counts to sweep, warm-up invokes, and when to stop timing.

    Timed invokes go on until at least ``min_runs`` were made AND ``min_seconds`` have passed.
    ``timeout_s`` bounds one thread count's whole run (load, timing, accuracy).
    """

    threads: tuple[int, ...] = (1,)
    warmup: int = 10
    min_runs: int = 50
    min_seconds: float = 1.0
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        threads = tuple(self.threads) if isinstance(self.threads, (tuple, list)) else ()
        if not threads or any(not _is_int(t) or t < 1 for t in threads):
            raise InvalidOptionError(
                f"threads must be a non-empty sequence of integers >= 1 (e.g. (1, 2, 4)), got "
                f"{self.threads!r}."
            )
        object.__setattr__(self, "threads", tuple(int(t) for t in threads))
        checks = [
            ("warmup", self.warmup, _is_int(self.warmup) and self.warmup >= 0, "an integer >= 0"),
            (
                "min_runs",
                self.min_runs,
                _is_int(self.min_runs) and self.min_runs >= 1,
                "an integer >= 1",
            ),
            ("min_seconds", self.min_seconds, self.min_seconds >= 0, "a number of seconds >= 0"),
            ("timeout_s", self.timeout_s, self.timeout_s > 0, "a number of seconds > 0"),
        ]
        for name, value, good, what in checks:
            if not good:  # NaN fails every comparison, so it lands here too
                raise InvalidOptionError(f"{name} must be {what}, got {value!r}.")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class Benchmarker(Protocol):
    """Measures a TFLite model somewhere (this machine, a board over SSH, ...)."""

    def run(
        self,
        model: TFLiteModel,
        *,
        options: BenchmarkOptions,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> list[BenchmarkResult]:
        """One result per thread count in ``options.threads``; failures are results, not raised."""
        ...
