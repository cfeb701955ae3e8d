"""Steps that measure on a device and feed the deployment gate. Never cached: a device (and
the production model the gate compares against) can change between runs."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any
from urllib.parse import urlparse

from zenml import ArtifactConfig, step
from zenml.client import Client
from zenml.types import HTMLString

from ...benchmark import (
    Benchmarker,
    BenchmarkOptions,
    BenchmarkResult,
    LocalBenchmarker,
    benchmark_table,
)
from ...benchmark.local import failed_result
from ...errors import InvalidOptionError
from ...gate import CandidateMeasurements
from ...inputs import input_names, is_multi
from ...measurements import candidate_measurements
from ...report.html import render_html
from ...types import BaselineSummary, CandidateResult, LabeledDataset, TFLiteModel
from .._runtime import STEP_SETTINGS, record_metadata

__all__ = ["benchmark_on_device", "gate_inputs"]


@step(
    name="zq_benchmark_on_device",
    enable_cache=False,
    settings=STEP_SETTINGS,
    substitutions={"candidate": "model"},
)
def benchmark_on_device(
    tflite_model: TFLiteModel,
    dataset: LabeledDataset | None = None,
    name: str | None = None,
    device: str = "local",
    ssh_secret: str | None = None,
    ssh_python: str = "python3",
    threads: list[int] | None = None,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    timeout_s: float = 300.0,
    accuracy_split: str | None = None,
) -> tuple[
    Annotated[list[BenchmarkResult], ArtifactConfig(name="zq_benchmark_{candidate}")],
    Annotated[HTMLString, ArtifactConfig(name="zq_benchmark_report_{candidate}")],
]:
    """Latency percentiles, load time and memory of ``tflite_model`` on ``device``.

    ``device`` is ``"local"`` (a fresh subprocess on the machine the step runs on) or
    ``"ssh://user@host:port"``; SSH credentials come from the ZenML secret ``ssh_secret``
    (keys ``private_key``, ``password``, ``passphrase``, ``known_hosts``), never from step
    parameters. ``threads`` sweeps thread counts (default ``[1]``); ``accuracy_split`` also
    scores that split on the device with the same interpreter.
    """
    options = BenchmarkOptions(
        threads=tuple(threads or (1,)),
        warmup=warmup,
        min_runs=min_runs,
        min_seconds=min_seconds,
        timeout_s=timeout_s,
    )
    if not tflite_model.ok:  # a candidate that failed upstream has nothing to measure
        why = f"not benchmarked: the candidate failed ({tflite_model.error})"
        results = [failed_result(device, t, why) for t in options.threads]
        page = render_html(benchmark_table(results), title=f"{name}: {why}")
        return results, HTMLString(page)
    x = y = None
    if accuracy_split is not None:
        if dataset is None:
            raise InvalidOptionError("accuracy_split needs the dataset input.")
        x, y = dataset.split(accuracy_split)
        if is_multi(x):
            # The device runner is a standalone numpy script that reads one input array.
            raise InvalidOptionError(
                "accuracy_split measures accuracy on the device for models with one input; "
                f"this model takes {', '.join(input_names(x))}: leave accuracy_split unset "
                "(the candidates' quality is measured by the evaluate steps)."
            )
    benchmarker = (
        LocalBenchmarker()
        if device == "local"
        else _ssh_benchmarker(device, ssh_secret, ssh_python)
    )
    results = benchmarker.run(tflite_model, options=options, x=x, y=y)
    record_metadata(
        {
            f"threads_{r.threads}": {
                "p50_ms": r.p50_ms,
                "p90_ms": r.p90_ms,
                "p99_ms": r.p99_ms,
                "arena_bytes": r.arena_bytes,
                "peak_rss_bytes": r.peak_rss_bytes,
                "error": r.error,
            }
            for r in results
        }
        | {"device": device, "candidate": name or tflite_model.mode}
    )
    table = benchmark_table(results)
    title = f"Benchmark of {name or tflite_model.mode} ({tflite_model.size_bytes:,} B) on {device}"
    return results, HTMLString(render_html(table, title=title))


def _ssh_benchmarker(device: str, secret_name: str | None, python: str) -> Benchmarker:
    from ...benchmark.remote import SSHBenchmarker, SSHCredentials, SSHTarget

    url = urlparse(device)
    if url.scheme != "ssh" or not url.hostname:
        raise InvalidOptionError(
            f"device {device!r} is neither 'local' nor 'ssh://user@host[:port]'."
        )
    if not secret_name:
        raise InvalidOptionError(
            f"Benchmarking on {device} needs SSH credentials from a ZenML secret: create one with "
            "`zenml secret create pi-ssh --private_key=@~/.ssh/id_ed25519 "
            "--known_hosts=@~/.ssh/known_hosts` and pass ssh_secret='pi-ssh'."
        )
    values = Client().get_secret(secret_name).secret_values
    known_hosts = None
    if values.get("known_hosts"):
        known_hosts = os.path.join(tempfile.mkdtemp(prefix="zq-ssh-"), "known_hosts")
        with open(known_hosts, "w") as f:
            f.write(values["known_hosts"])
    target = SSHTarget(
        host=url.hostname,
        port=url.port or 22,
        username=url.username or "pi",
        python=python,
        known_hosts=known_hosts,
    )
    credentials = SSHCredentials(
        private_key=values.get("private_key"),
        password=values.get("password"),
        passphrase=values.get("passphrase"),
    )
    return SSHBenchmarker(target, credentials)


@step(name="zq_gate_inputs", enable_cache=False, settings=STEP_SETTINGS)
def gate_inputs(
    baseline: BaselineSummary,
    candidates: list[CandidateResult],
    # Any, not list[list[BenchmarkResult]] | None: ZenML 0.98 cannot parse an optional nested
    # list annotation on an input artifact (issubclass on a generic alias).
    benchmarks: Any = None,
) -> Annotated[list[CandidateMeasurements], "zq_gate_inputs"]:
    """One :class:`CandidateMeasurements` per candidate: its evaluation plus its benchmark.

    ``benchmarks[i]``, a list of :class:`BenchmarkResult`, belongs to ``candidates[i]`` (the
    pipeline builds both lists in order); without benchmarks the evaluation's latency is used.
    """
    benchmarks = benchmarks or [[] for _ in candidates]
    if len(benchmarks) != len(candidates):
        raise InvalidOptionError(
            f"{len(candidates)} candidates but {len(benchmarks)} benchmark lists: pass one "
            "list of benchmark results per candidate, in the same order."
        )
    return [candidate_measurements(c, baseline, b) for c, b in zip(candidates, benchmarks)]
