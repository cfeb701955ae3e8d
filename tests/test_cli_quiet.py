"""What a command prints: the table, the files and the decision; ``-v`` for the libraries' logs."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from zenml_quant.integration.cli.quiet import NOISE, _ConsoleFilter, _filtered_fd2, _Status

NATIVE_NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796489521.409642     414 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796489265.314124   31253 cuda_platform.cc:52] failed call to cuInit: INTERNAL",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
]


def test_only_the_known_native_lines_are_noise():
    assert all(NOISE.match(line) for line in NATIVE_NOISE)
    for ours in (
        "mixed: low-bit weights rounded by GPTQ on the calibration data",
        "Error: --model: the file does not exist",
        "Fatal Python error: Segmentation fault",
        "INFO: something TFLite has not said before",
    ):
        assert not NOISE.match(ours), ours


def test_native_writes_to_stderr_lose_the_noise_and_keep_the_rest(capfd):
    with _filtered_fd2():
        for line in [*NATIVE_NOISE, "a real problem: keep me"]:
            os.write(2, (line + "\n").encode())
    err = capfd.readouterr().err
    assert err == "a real problem: keep me\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_the_console_shows_errors_and_our_warnings_and_a_status_line_for_steps():
    terminal = _Terminal()
    keep = _ConsoleFilter(_Status(terminal))
    assert keep.filter(_record("zenml.client", logging.ERROR, "the store is gone"))
    assert keep.filter(_record("zenml_quant.convert", logging.WARNING, "calibrated on 12"))
    assert not keep.filter(_record("zenml.materializers", logging.WARNING, "use parquet"))
    assert not keep.filter(_record("zenml_quant.allocate", logging.INFO, "profile 1/9"))
    assert not keep.filter(
        _record("zenml.orchestrators", logging.INFO, "Step `convert_int8` has started.")
    )
    assert "running step convert_int8" in terminal.getvalue()
    piped = io.StringIO()  # not a terminal: no status line at all
    _ConsoleFilter(_Status(piped)).filter(_record("zenml", logging.INFO, "Step `x` has started."))
    assert piped.getvalue() == ""


def _compress(model_path: Path, tmp_path: Path, *flags: str) -> list[str]:
    env = {**os.environ, "ZENML_CONFIG_PATH": str(tmp_path / "zenml"), "COLUMNS": "80"}
    env.pop("ZENML_LOGGING_VERBOSITY", None)  # the suite's own setting: a user has none
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "zenml-quant"),
            "compress",
            "--model",
            str(model_path),
            "--data",
            "digits",
            "--output-dir",
            str(tmp_path / "out"),
            *flags,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return (done.stdout + done.stderr).splitlines()


def test_compress_prints_at_most_30_lines_and_v_shows_the_logs(digits_model_path, tmp_path):
    lines = _compress(digits_model_path, tmp_path / "quiet")
    assert len(lines) <= 30, "\n".join(lines)
    assert not any(NOISE.match(line) or "has started" in line for line in lines)
    text = "\n".join(lines)
    assert "Deployment gate" in text and "demo_cnn_int8.tflite" in text
    verbose = _compress(
        digits_model_path, tmp_path / "verbose", "-v", "--mode", "int8", "--no-mixed"
    )
    assert any("has started" in line for line in verbose)
    assert any(NOISE.match(line) for line in verbose)
