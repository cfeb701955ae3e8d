"""Real ``zenml-quant`` runs that must not lose work or trust: a candidate that fails alone,
QAT on a model tfmot cannot fully annotate, champion and challenger, concurrent runs on a fresh
store, and a run killed mid-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from zenml_quant._compat import tf_keras
from zenml_quant.integration.cli import main

ZENML_QUANT = shutil.which("zenml-quant", path=os.path.dirname(sys.executable))
# The demo CNN has a BatchNorm layer: most runs here are not about the bn_int8 candidate.
FAST_WITH_BN = ["--sensitivity", "off", "--no-mixed", "--threads", "1"]
FAST = [*FAST_WITH_BN, "--no-bn-reestimate"]


def _compress(tmp_path: Path, *args: str) -> tuple[object, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        main,
        ["compress", *args, "--output-dir", str(tmp_path / "out"), "--json", str(summary_path)],
    )
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return result, summary


@pytest.fixture(scope="module")
def bn_after_pool_path(digits, tmp_path_factory):
    """Conv -> MaxPool -> BatchNorm -> ReLU: a common block tfmot's QAT refuses as it is."""
    from zenml_quant.demo import fit_classifier

    tf_keras.utils.set_random_seed(0)
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", name="conv"),
            layers.MaxPooling2D(2, name="pool"),
            layers.BatchNormalization(name="bn_after_pool"),
            layers.ReLU(name="relu"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, name="logits"),
        ],
        name="bn_after_pool",
    )
    fit_classifier(model, digits, epochs=3, batch_size=32)
    path = tmp_path_factory.mktemp("bn") / "bn_after_pool.keras"
    model.save(path)
    return path


def test_batchnorm_after_pooling_goes_through_qat_with_no_options(bn_after_pool_path, tmp_path):
    result, summary = _compress(
        tmp_path, "--model", str(bn_after_pool_path), "--data", "digits", "--qat", *FAST_WITH_BN
    )
    assert result.exit_code == 0, result.output
    rows = {c["name"]: c for c in summary["candidates"]}
    assert set(rows) == {"float32", "int8", "qat", "bn_int8"}  # bn_int8: it has BatchNorm
    for row in rows.values():
        assert row["status"] != "failed", row
        assert Path(row["path"]).stat().st_size == row["size_bytes"]
    notes = " ".join(rows["qat"]["notes"])
    assert "bn_after_pool" in notes and "skipped" in notes.lower()
    assert rows["qat"]["accuracy"] > 0.5


def test_a_failing_candidate_fails_alone(digits_model_path, tmp_path, monkeypatch):
    import zenml_quant.candidates as candidates

    real = candidates.convert_model

    def float16_breaks(model, mode, **kwargs):
        if mode == "float16":
            raise RuntimeError("converter crashed on float16 (injected)")
        return real(model, mode, **kwargs)

    def qat_breaks(*args, **kwargs):
        raise ValueError("tfmot refused the model (injected)")

    monkeypatch.setattr(candidates, "convert_model", float16_breaks)
    monkeypatch.setattr(candidates, "quantization_aware_training", qat_breaks)
    result, summary = _compress(
        tmp_path,
        "--model",
        str(digits_model_path),
        "--data",
        "digits",
        *("--mode", "float32", "--mode", "float16", "--mode", "int8", "--qat"),
        *FAST,
    )
    assert result.exit_code == 0, result.output  # the gate passes with the others
    rows = {c["name"]: c for c in summary["candidates"]}
    assert rows["float16"]["status"] == "failed" and "injected" in rows["float16"]["reason"]
    assert rows["qat"]["status"] == "failed" and "tfmot refused" in rows["qat"]["reason"]
    for name in ("float32", "int8"):
        assert rows[name]["status"] in ("ok", "selected") and Path(rows[name]["path"]).is_file()
    assert rows["float16"]["path"] is None and rows["qat"]["path"] is None
    assert summary["gate"]["passed"] and summary["gate"]["selected"] in ("float32", "int8")
    assert "float16 failed: conversion to float16 failed" in result.output


def test_a_worse_challenger_does_not_replace_the_champion(digits, digits_model_path, tmp_path):
    import uuid

    from zenml import Model
    from zenml.client import Client

    name = f"zq-champion-{uuid.uuid4().hex[:8]}"
    common = ["--data", "digits", "--mode", "int8", *FAST, "--stage", "production"]
    first, summary = _compress(
        tmp_path / "a", "--model", str(digits_model_path), *common, "--model-name", name
    )
    assert first.exit_code == 0, first.output
    assert summary["gate"]["stage"] == "production"
    written = Path(summary["candidates"][0]["path"]).read_bytes()
    deployed = (
        Model(name=name, version="production")
        .get_deployment_artifact("zq_deployment_tflite")
        .load()
    )
    assert deployed.content == written  # the file the gate chose, byte for byte

    # An untrained model of the same architecture: far worse than the champion.
    from zenml_quant.demo import build_demo_cnn

    weak = build_demo_cnn()
    weak_path = tmp_path / "weak.keras"
    weak.save(weak_path)
    second, summary = _compress(
        tmp_path / "b",
        "--model",
        str(weak_path),
        *common,
        "--model-name",
        name,
        "--min-accuracy",
        "0",
    )
    assert second.exit_code == 1 and "nothing was promoted" in second.output
    gate = summary["gate"]
    assert not gate["passed"] and gate["stage"] is None
    assert gate["champion"]["version"] == "1"
    # the champion's recorded figures stand beside the challenger's checks
    assert gate["champion"]["figures"]["candidate"] == "int8"
    assert gate["champion"]["figures"]["size_bytes"] == len(written)
    assert "Champion in production: version 1" in second.output
    assert any("worse than the champion" in r for r in gate["reasons"])
    assert Client().get_model_version(name, "production").number == 1


def test_search_with_only_a_size_target_returns_nothing_below_the_floor(
    digits_model_path, tmp_path
):
    config = tmp_path / "nas.yaml"
    config.write_text(
        "parameters:\n  config:\n    search:\n"
        "      fine_tune_steps: 2\n      measure_latency: false\n      batch_size: 2\n"
    )
    summary_path = tmp_path / "search.json"
    result = CliRunner().invoke(
        main,
        [
            "search",
            "--model",
            str(digits_model_path),
            "--data",
            "digits",
            "--config",
            str(config),
            "--max-trials",
            "4",
            "--max-size-kb",
            "5",
            "--candidates",
            "2",
            "--output-dir",
            str(tmp_path / "out"),
            "--json",
            str(summary_path),
        ],
    )
    summary = json.loads(summary_path.read_text())
    floor = summary["original_accuracy"] - 0.01
    by_trial = {c["trial"]: c for c in summary["candidates"]}
    for trial in summary["pareto"] + ([summary["best_trial"]] if summary["best_trial"] else []):
        assert by_trial[trial]["accuracy"] >= floor - 1e-9
    for c in summary["candidates"]:
        if c["meets_targets"]:
            assert c["accuracy"] >= floor - 1e-9
    for gated in summary["gated"]:  # what reached the gate: above the floor, or failed
        assert gated["status"] == "failed" or gated["accuracy"] >= floor - 0.05
    assert result.exit_code in (0, 1), result.output


# -- processes --------------------------------------------------------------------------------


def _env(config_dir: Path) -> dict[str, str]:
    env = {**os.environ, "ZENML_CONFIG_PATH": str(config_dir), "ZENML_ANALYTICS_OPT_IN": "false"}
    env.pop("ZENML_CUSTOM_SOURCE_ROOT", None)
    return env


def _command(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        ZENML_QUANT,
        "compress",
        "--model",
        str(model),
        "--data",
        "digits",
        "--mode",
        "int8",
        *FAST,
        "--output-dir",
        str(out),
        "--json",
        str(out / "summary.json"),
        *extra,
    ]


def test_four_runs_started_together_on_a_fresh_store_all_succeed(digits_model_path, tmp_path):
    env = _env(tmp_path / "zenml")  # nothing there yet: the first command creates the store
    procs = []
    for i in range(4):
        out = tmp_path / f"out{i}"
        out.mkdir()
        procs.append(
            subprocess.Popen(
                _command(digits_model_path, out),
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    for code, _stdout, stderr in results:
        assert code == 0, stderr[-3000:]
    for i in range(4):
        assert json.loads((tmp_path / f"out{i}" / "summary.json").read_text())["gate"]["passed"]


def test_a_killed_run_leaves_no_partial_file_and_is_marked_failed_next_time(
    digits_model_path, tmp_path
):
    config_dir = tmp_path / "zenml"
    env = _env(config_dir)
    out = tmp_path / "out"
    out.mkdir()
    records = config_dir / "zenml-quant-runs"
    proc = subprocess.Popen(
        _command(digits_model_path, out, "-v"),  # -v: the converter's line marks the progress
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Kill it once the pipeline run is well under way (the int8 conversion, a step past the
    # first, prints its converter line), however slow the machine: a fixed sleep killed it
    # before the run existed on a busy box.
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "fully_quantize" in line:
                break
        else:
            pytest.fail("the run ended before the int8 conversion:\n" + "".join(seen[-30:]))
    finally:
        watchdog.cancel()
    assert records.is_dir() and any(records.glob("*.json"))  # the run is tracked
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Nothing half-written: any file there is complete, and no temporary file is left.
    leftovers = [p.name for p in out.iterdir()]
    assert not [n for n in leftovers if n.startswith(".") or n.endswith(".partial")], leftovers
    assert "summary.json" not in leftovers  # the summary is written last, after every file

    (tmp_path / "again").mkdir()
    again = subprocess.run(
        _command(digits_model_path, tmp_path / "again"),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"process {proc.pid}" in again.stderr and "marked failed" in again.stderr
    check = (
        "from zenml.client import Client\n"
        "runs = Client().list_pipeline_runs(sort_by='asc:created').items\n"
        "print(' '.join(r.status.value for r in runs))\n"
    )
    statuses = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=120
    )
    assert statuses.stdout.split() == ["failed", "completed"], statuses.stderr[-2000:]
