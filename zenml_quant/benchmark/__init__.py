"""On-device benchmark: batch-1 latency, load time and memory of a TFLite model.

:class:`LocalBenchmarker` runs :data:`RUNNER_PATH` (a self-contained script: standard library,
numpy and ai-edge-litert / tflite-runtime) on this machine in a fresh subprocess per thread
count; a device benchmarker runs the same script on a board. Every :class:`Benchmarker` returns
one :class:`BenchmarkResult` per thread count, and a model that fails is a result with ``error``
set, never an exception.
"""

from __future__ import annotations

from .local import (
    RUNNER_PATH,
    LocalBenchmarker,
    benchmark_table,
    failed_result,
    result_from_runner,
    runner_args,
)
from .remote import SSHBenchmarker, SSHCredentials, SSHTarget
from .types import PERCENTILES, Benchmarker, BenchmarkOptions, BenchmarkResult

__all__ = [
    "PERCENTILES",
    "RUNNER_PATH",
    "BenchmarkOptions",
    "BenchmarkResult",
    "Benchmarker",
    "LocalBenchmarker",
    "SSHBenchmarker",
    "SSHCredentials",
    "SSHTarget",
    "benchmark_table",
    "failed_result",
    "result_from_runner",
    "runner_args",
]
