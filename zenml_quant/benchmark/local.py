"""Benchmark a TFLite model on this machine: ``runner.py`` in a fresh subprocess per thread count."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._validate import as_finite
from ..errors import InvalidDatasetError
from ..types import TFLiteModel
from .types import BenchmarkOptions, BenchmarkResult

__all__ = [
    "RUNNER_PATH",
    "LocalBenchmarker",
    "benchmark_table",
    "check_data",
    "failed_result",
    "result_from_runner",
    "runner_args",
]

logger = logging.getLogger(__name__)

#: The self-contained benchmark script; copy it to a device and run it with ``python3``.
RUNNER_PATH = Path(__file__).with_name("runner.py")

_INTS = ("warmup_runs", "runs", "peak_rss_bytes", "arena_bytes", "size_bytes")
_FLOATS = ("load_ms", "allocate_ms", "seconds", "mean_ms", "std_ms", "p50_ms", "p90_ms", "p99_ms")
_LATENCIES = ("mean_ms", "p50_ms", "p90_ms", "p99_ms")


def runner_args(
    model_path: str, options: BenchmarkOptions, threads: int, data_path: str | None = None
) -> list[str]:
    """The runner's command-line arguments (after ``python runner.py``) for one thread count."""
    args = [
        f"--model={model_path}",
        f"--threads={threads}",
        f"--warmup={options.warmup}",
        f"--min-runs={options.min_runs}",
        f"--min-seconds={options.min_seconds}",
    ]
    if data_path is not None:
        args += [f"--data={data_path}", "--split-key-x=x", "--split-key-y=y"]
    return args


def result_from_runner(
    stdout: str, returncode: int, stderr: str = "", *, device: str, threads: int
) -> BenchmarkResult:
    """A :class:`BenchmarkResult` from the runner's output; never raises.

    A non-zero exit or output that is not the runner's JSON gives a result with ``error`` set
    (the runner's own message when it printed one, else the exit code and the end of stderr).
    """
    payload: dict[str, Any] = {}
    lines = stdout.strip().splitlines()
    try:
        loaded = json.loads(lines[-1]) if lines else None
        payload = loaded if isinstance(loaded, dict) else {}
    except ValueError:
        pass
    error = payload.get("error")
    if not payload:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        error = f"the runner exited with code {returncode} without a JSON result: {tail or stdout[-300:]}"
    elif returncode != 0 and not error:
        error = f"the runner exited with code {returncode}"
    elif not error:
        # A figure the runner left out or reported as null is not 0: the result is unusable.
        absent = [k for k in _LATENCIES if as_finite(payload.get(k)) is None]
        if absent:
            error = f"the runner reported no valid {', '.join(absent)} ({payload.get(absent[0])!r})"
    try:
        values: dict[str, Any] = {k: int(payload.get(k) or 0) for k in _INTS}
        values.update({k: float(payload.get(k) or 0.0) for k in _FLOATS})
        accuracy = payload.get("accuracy")
        n_samples = payload.get("n_samples")
        return BenchmarkResult(
            device=device,
            threads=int(payload.get("threads") or threads),
            runtime=str(payload.get("runtime") or ""),
            machine=str(payload.get("machine") or ""),
            accuracy=None if accuracy is None else float(accuracy),
            n_samples=None if n_samples is None else int(n_samples),
            error=None if error is None else str(error),
            **values,
        )
    except (TypeError, ValueError) as exc:
        return failed_result(device, threads, f"the runner's JSON is malformed: {exc}")


def failed_result(device: str, threads: int, error: str) -> BenchmarkResult:
    """A result that says why nothing could be measured (all figures 0)."""
    zeros: dict[str, Any] = {k: 0 for k in _INTS} | {k: 0.0 for k in _FLOATS}
    return BenchmarkResult(
        device=device, threads=threads, runtime="", machine="", error=error, **zeros
    )


class LocalBenchmarker:
    """Benchmarks on this machine, with the same runner script a device runs.

    Each thread count runs in a fresh ``sys.executable`` subprocess, so load time and peak memory
    are the model's own and not this process's (which holds TensorFlow and the Keras model).
    ``python`` overrides the interpreter, e.g. a venv that has only ai-edge-litert and numpy.
    """

    device = "local"

    def __init__(self, *, python: str | None = None) -> None:
        self.python = python or sys.executable

    def run(
        self,
        model: TFLiteModel,
        *,
        options: BenchmarkOptions,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> list[BenchmarkResult]:
        """One result per thread count in ``options.threads``; a model that fails is a result."""
        check_data(x, y)
        with tempfile.TemporaryDirectory(prefix="zq-bench-") as tmp:
            model_path = Path(tmp) / "model.tflite"
            model_path.write_bytes(model.content)
            data_path = None
            if x is not None and y is not None:
                data_path = str(Path(tmp) / "data.npz")
                np.savez(data_path, x=np.asarray(x), y=np.asarray(y), allow_pickle=False)
            results = []
            for threads in options.threads:
                args = runner_args(str(model_path), options, threads, data_path)
                result = self._run_one([self.python, str(RUNNER_PATH), *args], options, threads)
                logger.info("benchmark %s: %s", model.source_model or model.mode, _summary(result))
                results.append(result)
        return results

    def _run_one(self, cmd: list[str], options: BenchmarkOptions, threads: int) -> BenchmarkResult:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=options.timeout_s)
        except subprocess.TimeoutExpired:
            return failed_result(
                self.device, threads, f"timed out after {options.timeout_s:g} s (raise timeout_s)"
            )
        return result_from_runner(
            proc.stdout, proc.returncode, proc.stderr, device=self.device, threads=threads
        )


def check_data(x: np.ndarray | None, y: np.ndarray | None) -> None:
    """Accuracy needs both features and labels, one label per example."""
    if (x is None) != (y is None):
        raise InvalidDatasetError(
            "Pass both x and y to measure accuracy on the device (or neither to time only)."
        )
    if x is not None and y is not None and len(x) != len(np.asarray(y).reshape(-1)):
        raise InvalidDatasetError(
            f"x has {len(x)} examples but y has {np.asarray(y).size} labels: they must match."
        )


def _summary(r: BenchmarkResult) -> str:
    if not r.ok:
        return f"{r.threads} thread(s) on {r.device}: FAILED ({r.error})"
    acc = "" if r.accuracy is None else f", accuracy {100 * r.accuracy:.2f} %"
    return (
        f"{r.threads} thread(s) on {r.device}: p50 {r.p50_ms:.3f} ms, p99 {r.p99_ms:.3f} ms over "
        f"{r.runs} runs, peak RSS {r.peak_rss_bytes / 2**20:.1f} MiB{acc}"
    )


def benchmark_table(results: Sequence[BenchmarkResult]) -> pd.DataFrame:
    """One row per result, with readable column names (latency in ms, memory in bytes)."""
    rows = [
        {
            "device": r.device,
            "threads": r.threads,
            "p50 ms": r.p50_ms,
            "p90 ms": r.p90_ms,
            "p99 ms": r.p99_ms,
            "mean ms": r.mean_ms,
            "std ms": r.std_ms,
            "runs": r.runs,
            "load ms": r.load_ms,
            "allocate ms": r.allocate_ms,
            "peak RSS bytes": r.peak_rss_bytes,
            "arena bytes": r.arena_bytes,
            "size bytes": r.size_bytes,
            "accuracy": r.accuracy,
            "n samples": r.n_samples,
            "runtime": r.runtime,
            "machine": r.machine,
            "error": r.error,
        }
        for r in results
    ]
    return pd.DataFrame(rows)
