"""``compress`` and ``search`` take a model already in ZenML: a model version or an artifact."""

from __future__ import annotations

import json

from click.testing import CliRunner

from zenml_quant.integration.cli import main

QUICK = [
    "--data",
    "digits",
    "--mode",
    "int8",
    "--no-mixed",
    "--sensitivity",
    "off",
    "--no-bn-reestimate",
]


def test_compress_from_a_model_version_and_from_an_artifact(digits_model_path, tmp_path):
    from zenml import Model

    from zenml_quant.integration import CompressConfig, GateConfig
    from zenml_quant.integration.pipelines import compress_pipeline

    compress_pipeline.with_options(model=Model(name="zq-test-cli-source"), enable_cache=False)(
        model_path=str(digits_model_path),
        config=CompressConfig(
            modes=("int8",),
            sensitivity_mode=None,
            max_quality_drop=None,
            benchmark_threads=None,
            gate=GateConfig(raise_on_fail=False),
        ),
    )
    for flag, reference in (
        ("--model-version", "zq-test-cli-source:1"),
        ("--artifact", "zq_keras_model"),
    ):
        out, summary_path = tmp_path / flag.strip("-"), tmp_path / f"{flag.strip('-')}.json"
        result = CliRunner().invoke(
            main,
            [
                "compress",
                flag,
                reference,
                *QUICK,
                "--output-dir",
                str(out),
                "--json",
                str(summary_path),
            ],
        )
        assert result.exit_code == 0, result.output
        stem = reference.replace(":", "_")
        assert (out / f"{stem}.keras").is_file() and (out / f"{stem}_int8.tflite").is_file()
        assert f"{stem}.keras  (the model from ZenML" in result.output
        summary = json.loads(summary_path.read_text())
        assert [c["name"] for c in summary["candidates"]] == ["int8"]


def test_a_model_source_is_checked_before_anything_runs(digits_model_path, tmp_path):
    for args, message in (
        ([], "exactly one of --model, --model-version or --artifact"),
        (["--model", str(digits_model_path), "--artifact", "x"], "exactly one of"),
        (["--model-version", "zq-no-such-model"], "--model-version: No ZenML model version"),
        (["--artifact", "zq-no-such-artifact"], "--artifact: No ZenML artifact"),
    ):
        for command in ("compress", "search"):
            extra = ["--max-size-kb", "10"] if command == "search" else []
            result = CliRunner().invoke(
                main, [command, *args, "--data", "digits", *extra, "--output-dir", str(tmp_path)]
            )
            assert result.exit_code == 2, (command, args, result.output)
            assert message in result.output and "Traceback" not in result.output
            assert list(tmp_path.iterdir()) == []  # nothing written
