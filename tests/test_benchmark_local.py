"""The local on-device benchmark: runner.py in a subprocess, parsed into BenchmarkResult."""

from __future__ import annotations

import ast
import dataclasses
import json
import resource
import subprocess
import sys

import pytest

from zenml_quant.benchmark import (
    RUNNER_PATH,
    BenchmarkOptions,
    BenchmarkResult,
    LocalBenchmarker,
    benchmark_table,
    result_from_runner,
)
from zenml_quant.convert import convert_model
from zenml_quant.errors import InvalidDatasetError, InvalidOptionError
from zenml_quant.evaluate import evaluate_tflite
from zenml_quant.types import ConversionOptions

FAST = BenchmarkOptions(warmup=2, min_runs=20, min_seconds=0.2, timeout_s=120)
ALLOWED_IMPORTS = {
    "__future__", "argparse", "importlib", "json", "os", "platform", "resource", "sys", "time",
    "zipfile", "typing", "numpy",
}  # fmt: skip


@pytest.fixture(scope="module")
def float_model(digits_model):
    return convert_model(digits_model, "float32")


@pytest.fixture(scope="module")
def int8_model(digits_model, digits):
    options = ConversionOptions(calibration_samples=100)
    return convert_model(digits_model, "int8", representative_data=digits.x_train, options=options)


@pytest.fixture(scope="module")
def int8_results(int8_model, digits):
    x, y = digits.split("test")
    return LocalBenchmarker().run(int8_model, options=FAST, x=x, y=y)


def _sane(r: BenchmarkResult, model, options: BenchmarkOptions = FAST) -> None:
    assert r.ok, r.error
    assert r.device == "local"
    assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms
    assert r.mean_ms > 0 and r.std_ms >= 0
    assert r.runs >= options.min_runs and r.seconds >= options.min_seconds
    assert r.warmup_runs == options.warmup
    assert r.load_ms > 0 and r.allocate_ms >= 0
    assert r.peak_rss_bytes > 0 and r.arena_bytes > 0
    assert r.size_bytes == model.size_bytes
    assert r.runtime.startswith("ai_edge_litert")
    assert r.machine
    assert r.latency_ms("p50") == r.p50_ms and r.latency_ms("mean") == r.mean_ms


def test_float32_model_without_data(float_model):
    (result,) = LocalBenchmarker().run(float_model, options=FAST)
    _sane(result, float_model)
    assert result.threads == 1
    assert result.accuracy is None and result.n_samples is None


def test_int8_accuracy_matches_evaluate_tflite(int8_results, int8_model, digits):
    (result,) = int8_results
    _sane(result, int8_model)
    expected = evaluate_tflite(int8_model, digits, split="test")
    assert result.n_samples == expected.n_samples == len(digits.y_test)
    assert result.accuracy == pytest.approx(expected.accuracy)
    assert result.accuracy > 0.8


def test_peak_rss_is_the_runners_own(int8_results):
    """Not the parent's: Linux carries ru_maxrss over fork + exec, and this process holds TF."""
    parent_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert int8_results[0].peak_rss_bytes < parent_peak


def test_thread_sweep_gives_one_result_per_thread_count(int8_model):
    options = dataclasses.replace(FAST, threads=(1, 2), min_seconds=0.1)
    results = LocalBenchmarker().run(int8_model, options=options)
    assert [r.threads for r in results] == [1, 2]
    for r in results:
        _sane(r, int8_model, options)


def test_broken_model_is_a_result_not_an_exception(float_model):
    broken = dataclasses.replace(float_model, content=b"not a flatbuffer" * 8)
    (result,) = LocalBenchmarker().run(broken, options=FAST)
    assert not result.ok
    assert "cannot load the model" in result.error
    assert result.p50_ms == 0.0 and result.runtime.startswith("ai_edge_litert")
    assert result.size_bytes == broken.size_bytes


def test_runner_timeout_is_a_result(float_model):
    options = BenchmarkOptions(min_runs=1, min_seconds=60, timeout_s=0.5)
    (result,) = LocalBenchmarker().run(float_model, options=options)
    assert not result.ok and "timed out" in result.error


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threads": (0,)},
        {"threads": ()},
        {"threads": (1, -2)},
        {"min_runs": 0},
        {"min_seconds": -0.1},
        {"min_seconds": float("nan")},
        {"warmup": -1},
        {"timeout_s": 0},
    ],
)
def test_bad_options_raise(kwargs):
    with pytest.raises(InvalidOptionError):
        BenchmarkOptions(**kwargs)


def test_mismatched_data_raises(float_model, digits):
    with pytest.raises(InvalidDatasetError, match="both x and y"):
        LocalBenchmarker().run(float_model, options=FAST, x=digits.x_test)
    with pytest.raises(InvalidDatasetError, match="must match"):
        LocalBenchmarker().run(float_model, options=FAST, x=digits.x_test, y=digits.y_test[:3])


def test_latency_statistic_name_is_checked(int8_results):
    with pytest.raises(InvalidOptionError, match="p50"):
        int8_results[0].latency_ms("p95")


def test_bad_runner_output_is_a_result():
    r = result_from_runner("Segmentation fault", -11, "core dumped", device="local", threads=2)
    assert not r.ok and "code -11" in r.error and "core dumped" in r.error and r.threads == 2
    payload = json.dumps({"p50_ms": 1.0, "error": None})
    assert "code 1" in result_from_runner(payload, 1, device="local", threads=1).error


def test_a_null_latency_from_the_runner_is_an_error_not_zero():
    # A device runner (or a hand-edited JSON) that reports null must not read as 0 ms.
    figures = {"mean_ms": 1.0, "p50_ms": None, "p90_ms": 1.2, "p99_ms": 1.5, "error": None}
    result = result_from_runner(json.dumps(figures), 0, device="ssh://pi@board", threads=1)
    assert not result.ok and "p50_ms" in result.error and "None" in result.error
    from zenml_quant.gate import CandidateMeasurements, decide
    from zenml_quant.targets import Targets

    # ... and the gate refuses the candidate it belongs to.
    candidate = CandidateMeasurements(
        "int8", 0.99, 0.99, 40_000, {"p50@1": result.p50_ms}, error=result.error
    )
    assert not decide(Targets(max_latency_ms=1.0), [candidate]).passed


def test_table_has_one_row_per_result(int8_results, float_model):
    broken = dataclasses.replace(float_model, content=b"x" * 64)
    results = [*int8_results, *LocalBenchmarker().run(broken, options=FAST)]
    table = benchmark_table(results)
    assert len(table) == 2
    assert {"device", "threads", "p50 ms", "p99 ms", "peak RSS bytes", "error"} <= set(table)
    assert table["error"].isna().tolist() == [True, False]


def test_runner_is_self_contained():
    """runner.py is copied to devices: only the standard library, numpy and a TFLite runtime."""
    tree = ast.parse(RUNNER_PATH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports in runner.py"
            imported.add((node.module or "").split(".")[0])
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    runtimes = {"ai_edge_litert", "tflite_runtime"}
    assert all(name in RUNNER_PATH.read_text() for name in runtimes)


def test_runner_cli_prints_one_json_object(float_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(float_model.content)
    cmd = [sys.executable, str(RUNNER_PATH), "--model", str(path), "--min-runs", "5"]
    proc = subprocess.run([*cmd, "--min-seconds", "0"], capture_output=True, text=True, check=True)
    payload = json.loads(proc.stdout)
    assert proc.stdout.count("\n") == 1
    assert payload["error"] is None and payload["runs"] >= 5 and payload["threads"] == 1


def test_runner_without_runtime_exits_3(float_model, tmp_path):
    """With neither runtime importable the runner says what to install (exit code 3)."""
    blocker = tmp_path / "block"
    for package in ("ai_edge_litert", "tflite_runtime"):
        (blocker / package).mkdir(parents=True)
        (blocker / package / "__init__.py").write_text("raise ImportError('blocked')\n")
    path = tmp_path / "m.tflite"
    path.write_bytes(float_model.content)
    env = {"PYTHONPATH": str(blocker)}
    proc = subprocess.run(
        [sys.executable, str(RUNNER_PATH), "--model", str(path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 3
    assert "install ai-edge-litert" in json.loads(proc.stdout)["error"]
