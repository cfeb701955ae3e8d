"""The ``zenml-quant`` command: a real compress run, and clean errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from zenml_quant.integration.cli import main


def _compress_ok(tmp_path: Path, *args: str, columns: int | None = None) -> tuple[object, dict]:
    """Run ``zenml-quant compress ARGS`` into ``tmp_path`` (on a terminal ``columns`` wide, or
    piped: 80); its result and JSON summary."""
    summary_path = tmp_path / "summary.json"
    result = CliRunner().invoke(
        main,
        ["compress", *args, "--output-dir", str(tmp_path / "out"), "--json", str(summary_path)],
        env={"COLUMNS": str(columns)} if columns else None,
    )
    assert result.exit_code == 0, result.output
    return result, json.loads(summary_path.read_text())


def _table_lines(output: str) -> list[str]:
    """The lines of the printed table (rich draws it with box characters)."""
    return [line for line in output.splitlines() if line[:1] in "┏┃┡│└"]


def test_compress_writes_tflite_files_and_summary(digits_model_path, tmp_path):
    result, summary = _compress_ok(
        tmp_path,
        "--model",
        str(digits_model_path),
        "--data",
        "digits",
        "--mode",
        "float32",
        "--mode",
        "int8",
        "--sensitivity",
        "off",
        "--no-mixed",
        "--no-bn-reestimate",
    )
    assert summary["baseline"]["params"] > 0 and 0.5 < summary["baseline"]["accuracy"] <= 1
    names = [c["name"] for c in summary["candidates"]]
    assert names == ["float32", "int8"]
    assert "sensitivity" not in summary
    for candidate in summary["candidates"]:
        path = Path(candidate["path"])
        assert path.is_absolute() and path.stat().st_size == candidate["size_bytes"]
        assert candidate["threads"] == 1 and candidate["latency_ms_p50"] > 0
    assert "int8" in result.output and "float32" in result.output
    # Piped (no terminal): the table fits 80 columns instead of forcing 100.
    table = _table_lines(result.output)
    assert any("float32" in line for line in table) and max(map(len, table)) <= 80


def test_compress_reports_a_missing_model_without_traceback(tmp_path):
    result = CliRunner().invoke(
        main, ["compress", "--model", str(tmp_path / "missing.keras"), "--data", "digits"]
    )
    assert result.exit_code == 2
    assert "no model at" in result.output
    assert "Traceback" not in result.output


def test_compress_reports_a_bad_dataset_without_traceback(digits_model_path, tmp_path):
    bad = tmp_path / "data.txt"
    bad.write_text("not data")
    result = CliRunner().invoke(
        main, ["compress", "--model", str(digits_model_path), "--data", str(bad)]
    )
    assert result.exit_code == 2
    assert "Error:" in result.output and "Traceback" not in result.output
    assert ".npz" in result.output  # the message lists the supported sources


def test_one_conversion_config_reaches_every_candidate(digits_model_path, tmp_path):
    """``conversion`` under ``parameters`` is built once and given to every converting step:
    with ``quantized_io: false`` int8, the mixed model and bn_int8 all take float input."""
    from ai_edge_litert.interpreter import Interpreter

    config = tmp_path / "float_io.yaml"
    config.write_text(
        "parameters:\n  config:\n    conversion:\n      quantized_io: false\n      calibration_samples: 64\n"
    )
    _, summary = _compress_ok(
        tmp_path,
        "--model",
        str(digits_model_path),
        "--data",
        "digits",
        "--mode",
        "int8",
        "--precisions",
        "int8,float",
        "--sensitivity",
        "off",
        "--threads",
        "1",
        "--config",
        str(config),
    )
    names = {c["name"] for c in summary["candidates"]}
    assert {"int8", "mixed", "bn_int8"} <= names
    for name in ("int8", "mixed", "bn_int8"):
        interpreter = Interpreter(model_path=str(tmp_path / "out" / f"demo_cnn_{name}.tflite"))
        dtypes = [d["dtype"].__name__ for d in interpreter.get_input_details()]
        assert dtypes == ["float32"], (name, dtypes)


def test_yaml_config_sets_modes_and_step_options(digits_model_path, tmp_path):
    config = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "compress.yaml"
    _, summary = _compress_ok(
        tmp_path, "--model", str(digits_model_path), "--data", "digits", "--config", str(config)
    )
    rows = {c["name"]: c for c in summary["candidates"]}
    modes = {"float32", "dynamic_range", "float16", "int8", "int16x8", "w4a8"}
    # The demo CNN has a BatchNorm layer: compress adds the zero-training bn_int8 on its own.
    assert set(rows) == modes | {"mixed", "qat", "bn_int8"}
    bn = rows["bn_int8"]
    assert bn["status"] != "failed" and bn["mode"] == "bn_int8"
    assert abs(bn["accuracy"] - rows["int8"]["accuracy"]) < 0.05  # same images: little to win
    assert any("BatchNorm statistics of 1 layer(s) re-estimated" in n for n in bn["notes"])
    sizes = {name: row["size_bytes"] for name, row in rows.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    for row in rows.values():
        # every candidate either scored close to float32 or says why it failed
        assert row["error"] or abs(row["accuracy"] - rows["float32"]["accuracy"]) < 0.05
        assert isinstance(row["float_layers"], list) and isinstance(row["notes"], list)
    # The demo CNN loses little in int8 or int4: a 1-point budget gives a file no larger than
    # int8's, and the summary lists every layer's precision.
    assert rows["mixed"]["mode"] in ("int8", "w4a8", "mixed")
    assert set(rows["mixed"]["precisions"]) == {"conv1", "conv2", "logits"}
    assert rows["mixed"]["size_bytes"] <= sizes["int8"]
    assert sizes["w4a8"] < sizes["int8"]
    assert rows["qat"]["mode"] == "int8" and rows["qat"]["size_bytes"] < sizes["float16"]
    layers = [row["layer"] for row in summary["sensitivity"]]
    assert {"conv1", "conv2", "logits"} == set(layers)
    assert sum(row["measured"] for row in summary["sensitivity"]) == 3  # top_k in the YAML


def test_compress_h5_model_on_csv_pixels(digits_model, tmp_path):
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits as sklearn_digits

    model_path = tmp_path / "digits.h5"
    digits_model.save(model_path)
    raw = sklearn_digits()
    frame = pd.DataFrame(raw.data.astype(np.uint8), columns=[f"px{i}" for i in range(64)])
    frame["label"] = raw.target
    data_path = tmp_path / "digits.csv"
    frame.to_csv(data_path, index=False)
    _, summary = _compress_ok(
        tmp_path,
        "--model",
        str(model_path),
        "--data",
        str(data_path),
        "--scale",
        "0.0625",
        "--mode",
        "int8",
        "--no-mixed",
        "--no-bn-reestimate",
    )
    # 0..16 pixels scaled by 1/16 as in training: the model scores as it did on the digits.
    assert summary["baseline"]["accuracy"] > 0.8
    (int8,) = summary["candidates"]
    assert abs(int8["accuracy"] - summary["baseline"]["accuracy"]) < 0.03


def test_mixed_candidate_with_budget_and_float_layers_in_the_table(hard_case, tmp_path):
    model_path = tmp_path / "hard_case.keras"
    hard_case.save(model_path)
    result, summary = _compress_ok(
        tmp_path,
        "--model",
        str(model_path),
        "--data",
        "digits",
        "--mode",
        "int8",
        "--accuracy-budget",
        "0.01",
        "--precisions",
        "int8,float",  # the converter's int8 with float layers (quantize_mixed)
        columns=160,
    )
    rows = {c["name"]: c for c in summary["candidates"]}
    assert set(rows["mixed"]["float_layers"]) == {"bottleneck", "logits"}
    assert rows["mixed"]["accuracy"] - rows["int8"]["accuracy"] > 0.3
    # the "layers not int8" column of the printed table, on one line at this width
    assert "bottleneck float, logits" in result.output
    assert max(map(len, _table_lines(result.output))) > 100  # the table took the width


def test_precisions_are_checked_before_anything_runs(digits_model_path):
    for flags, message in (
        (["--precisions", "int3,int8"], "--precisions: Unknown precision 'int3'"),
        (["--no-mixed", "--precisions", "int4,int8"], "--no-mixed: it contradicts --precisions"),
    ):
        result = CliRunner().invoke(
            main, ["compress", "--model", str(digits_model_path), "--data", "digits", *flags]
        )
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_no_mixed_contradicts_a_budget(digits_model_path):
    result = CliRunner().invoke(
        main,
        [
            "compress",
            "--model",
            str(digits_model_path),
            "--data",
            "digits",
            "--no-mixed",
            "--accuracy-budget",
            "0.01",
        ],
    )
    assert result.exit_code == 2 and "contradicts" in result.output


def test_gate_flags_fail_with_reasons_and_pass_with_promotion(digits_model_path, tmp_path):
    common = ["compress", "--model", str(digits_model_path), "--data", "digits", "--mode", "int8"]
    common += ["--sensitivity", "off", "--no-mixed", "--no-bn-reestimate", "--stage", "staging"]
    summary_path = tmp_path / "fail.json"
    failed = CliRunner().invoke(main, [*common, "--max-size-kb", "5", "--json", str(summary_path)])
    assert failed.exit_code == 1 and "deployment gate failed" in failed.output
    gate = json.loads(summary_path.read_text())["gate"]
    assert gate["passed"] is False and gate["stage"] is None
    size = next(c for c in gate["checks"] if c["name"] == "size")
    assert size == {**size, "limit": 5000, "passed": False}

    _, summary = _compress_ok(
        tmp_path,
        *common[1:],
        "--max-size-kb",
        "50",
        "--max-accuracy-drop",
        "0.02",
        "--min-accuracy",
        "0.5",
        "--max-latency-ms",
        "100",
        "--threads",
        "1",
        "--threads",
        "2",
    )
    gate = summary["gate"]
    assert gate["passed"] and gate["stage"] == "staging" and gate["selected"] == "int8"
    assert {c["name"] for c in gate["checks"]} == {
        "baseline",
        "quality",
        "quality_drop",
        "size",
        "latency",
        "peak_memory",
    }
    assert "promoted to staging" in gate["promotion"]
    (int8,) = summary["candidates"]
    assert [b["threads"] for b in int8["benchmark"]] == [1, 2]
    assert all(b["p50_ms"] > 0 and b["error"] is None for b in int8["benchmark"])


def test_retrain_schedule_on_the_local_stack_says_what_to_do():
    result = CliRunner().invoke(main, ["retrain", "--schedule", "0 3 * * 1", "--epochs", "1"])
    assert result.exit_code == 1
    assert "cannot run pipelines on a schedule" in result.output
    assert "nothing was scheduled" in result.output and "Traceback" not in result.output


def test_retrain_runs_the_config_file_with_the_flags_given_over_it():
    """``retrain --config``: the file's RetrainConfig and step options, a flag given on the
    command line over them (``--epochs``), its unset defaults not."""
    from zenml.client import Client

    config = Path(__file__).resolve().parents[1] / "pipelines" / "configs" / "retrain.yaml"
    result = CliRunner().invoke(
        main,
        [
            "retrain",
            "--config",
            str(config),
            "--epochs",
            "4",
            "--model-name",
            "zq-test-retrain-cli",
        ],
    )
    assert result.exit_code == 0, result.output
    run = Client().list_pipeline_runs(sort_by="desc:created", size=1)[0]
    parameters = run.config.parameters["config"]
    assert parameters["epochs"] == 4  # the flag
    assert parameters["gate"]["targets"]["max_size_bytes"] == 50_000  # the file
    assert parameters["data"]["source"] == "digits" and parameters["gate"]["stage"] == "staging"
    assert run.steps["zq_benchmark_int8"].config.parameters["min_runs"] == 100  # file's steps:


def test_mixed_qat_is_a_candidate_of_its_own_with_each_layers_precision(
    digits_model_path, tmp_path
):
    result, summary = _compress_ok(
        tmp_path,
        "--model",
        str(digits_model_path),
        "--data",
        "digits",
        "--mode",
        "int8",
        "--sensitivity",
        "off",
        "--mixed-qat",
        "--no-bn-reestimate",
        "--threads",
        "1",
    )
    rows = {c["name"]: c for c in summary["candidates"]}
    assert set(rows) == {"int8", "mixed", "mixed_qat"}
    qat = rows["mixed_qat"]
    assert qat["status"] != "failed", qat["reason"]
    assert qat["mode"] == "mixed_qat" and "int4" in qat["precisions"].values()
    assert qat["size_bytes"] < rows["int8"]["size_bytes"]
    assert any("int4-aware training of" in note for note in qat["notes"])
    assert (tmp_path / "out").exists() and any((tmp_path / "out").glob("*mixed_qat*.tflite"))
