"""Bad input to the real ``zenml-quant`` command: refused before anything runs.

Each case runs the installed command in a fresh process with a fresh ZenML config folder and
asserts exit status 2, one line of output naming the problem (and the fix), and that nothing
was written: no output folder, no JSON file, no ZenML store (so no run and no model version).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from zenml_quant._compat import tf_keras

ZENML_QUANT = shutil.which("zenml-quant", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits_model):
    """A valid model, and files of every bad kind, in one folder."""
    root = tmp_path_factory.mktemp("bad-input")
    digits_model.save(root / "model.keras")
    (root / "notes.txt").write_text("not a model")
    (root / "broken.keras").write_bytes(b"PK\x03\x04 truncated")  # not a readable zip
    (root / "folder").mkdir()
    (root / "a_file").write_text("x")
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1), dtype=np.float32)
    np.savez(root / "one_class.npz", x_train=x, y_train=np.zeros(40), x_test=x, y_test=np.zeros(40))
    nan = x.copy()
    nan[0, 0, 0, 0] = np.nan
    y = np.arange(40) % 10
    np.savez(root / "nan.npz", x_train=nan, y_train=y, x_test=x, y_test=y)
    (root / "no_label.csv").write_text("a,b\n1,2\n3,4\n")
    # Several inputs: keys per input, one of them missing; and a two-input model.
    meta = rng.random((40, 4), dtype=np.float32)
    two = {"x_train_image": x, "x_train_meta": meta, "y_train": y, "x_test_image": x}
    np.savez(root / "two_inputs.npz", **two, x_test_meta=meta, y_test=y)
    np.savez(root / "two_inputs_no_test_meta.npz", **two, y_test=y)
    np.savez(root / "one_input.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    image, features = tf_keras.Input((8, 8, 1), name="image"), tf_keras.Input((4,), name="meta")
    joined = tf_keras.layers.Concatenate()([tf_keras.layers.Flatten()(image), features])
    tf_keras.Model([image, features], tf_keras.layers.Dense(10)(joined)).save(root / "two.keras")
    configs = {
        "broken.yaml": "parameters: [unclosed\n",
        "list.yaml": "- modes\n- int8\n",
        "top.yaml": "parametres:\n  modes: [int8]\n",
        "flat.yaml": "parameters:\n  modes: [int8]\n",
        "unknown_param.yaml": "parameters:\n  config:\n    mode: int8\n",
        "gate_key.yaml": "parameters:\n  config:\n    gate:\n      stages: staging\n",
        "int4.yaml": "parameters:\n  config:\n    modes: [int4]\n",
        "neg_target.yaml": "parameters:\n  config:\n    gate:\n      targets:\n"
        "        max_size_bytes: -1\n",
        "kb_target.yaml": "parameters:\n  config:\n    gate:\n      targets:\n        max_size_kb: 3\n",
        "threads.yaml": "parameters:\n  config:\n    benchmark_threads: [0]\n",
        "budget.yaml": "parameters:\n  config:\n    max_quality_drop: -3\n",
        "steps.yaml": "steps:\n  - convert_int8\n",
        "old_step.yaml": "steps:\n  convert_int8:\n    parameters: {quantized_io: false}\n",
        "retired_param.yaml": "steps:\n  zq_quantization_aware_training:\n"
        "    parameters: {epochs: 1}\n",
        "search_settings.yaml": "parameters:\n  config:\n    search:\n"
        "      proposer: best\n      fine_tune_epochs: -1\n",
        "qat_training.yaml": "steps:\n  zq_quantization_aware_training:\n"
        "    parameters: {training: {epochs: 0}}\n",
        "unknown_step.yaml": "steps:\n  zq_qat:\n    parameters: {training: {epochs: 1}}\n",
        "stage.yaml": "parameters:\n  config:\n    gate:\n      stage: prod\n",
        "precisions.yaml": "parameters:\n  config:\n    precisions: [int3, int8]\n",
        "objective.yaml": "parameters:\n  config:\n    precision_objective: speed\n",
        "candidates.yaml": "parameters:\n  config:\n    search:\n      candidates: 9\n",
        "calibration.yaml": "parameters:\n  config:\n    conversion:\n      calibration_samples: 0\n",
        "conversion_key.yaml": "parameters:\n  config:\n    conversion:\n      samples: 100\n",
        "quantized_io.yaml": "parameters:\n  config:\n    conversion:\n      quantized_io: 'yes'\n",
    }
    for name, text in configs.items():
        (root / name).write_text(text)
    return root


def _compress(*args: str) -> list[str]:
    return ["compress", "--model", "{root}/model.keras", "--data", "digits", *args]


# (arguments, words the one-line message must contain); {root} is the files fixture's folder.
CASES: list[tuple[list[str], str]] = [
    # paths
    (["compress", "--model", "{root}/missing.keras", "--data", "digits"], "no model at"),
    (["compress", "--model", "{root}/notes.txt", "--data", "digits"], "not a .keras"),
    (["compress", "--model", "{root}/folder", "--data", "digits"], "saved_model.pb"),
    (["compress", "--model", "{root}/model.keras", "--data", "{root}/none.npz"], "no data at"),
    (["compress", "--model", "{root}/model.keras", "--data", "{root}/notes.txt"], "not an .npz"),
    (
        ["compress", "--model", "{root}/model.keras", "--data", "{root}/one_class.npz"],
        "single class",
    ),
    (["compress", "--model", "{root}/model.keras", "--data", "{root}/nan.npz"], "NaN"),
    (["compress", "--model", "{root}/model.keras", "--data", "{root}/no_label.csv"], "label"),
    (
        ["compress", "--model", "{root}/model.keras", "--data", "{root}/two_inputs.npz"],
        "holds 2 inputs (image, meta) but the model takes one",
    ),
    (
        ["compress", "--model", "{root}/two.keras", "--data", "{root}/two_inputs_no_test_meta.npz"],
        "lacks the keys ['x_test_meta']",
    ),
    (
        [
            "search",
            "--model",
            "{root}/two.keras",
            "--data",
            "{root}/one_input.npz",
            "--max-size-kb",
            "10",
        ],
        "keyed x_train_image, x_train_meta",
    ),
    (["compress", "--data", "digits"], "exactly one of --model, --model-version or --artifact"),
    (_compress("--output-dir", "{root}/a_file"), "is a file"),
    (_compress("--output-dir", "{root}/a_file/sub"), "cannot be created"),
    (_compress("--json", "{root}/missing/summary.json"), "does not exist"),
    (_compress("--json", "{root}/folder"), "is a folder"),
    # numbers
    (_compress("--scale", "nan"), "--scale"),
    (_compress("--scale", "inf"), "--scale"),
    (_compress("--offset", "nan"), "--offset"),
    (_compress("--scale", "abc"), "'--scale'"),
    (_compress("--max-size-kb", "0"), "--max-size-kb"),
    (_compress("--max-size-kb", "-5"), "--max-size-kb"),
    (_compress("--max-size-kb", "nan"), "--max-size-kb"),
    (_compress("--max-size-kb", "inf"), "--max-size-kb"),
    (_compress("--max-latency-ms", "0"), "max_latency_ms"),
    (_compress("--max-latency-ms", "-1"), "max_latency_ms"),
    (_compress("--max-latency-ms", "nan"), "max_latency_ms"),
    (_compress("--max-peak-memory-kb", "0"), "--max-peak-memory-kb"),
    (_compress("--max-accuracy-drop", "2"), "max_quality_drop"),
    (_compress("--max-accuracy-drop", "1"), "max_quality_drop"),
    (_compress("--max-accuracy-drop", "-0.1"), "max_quality_drop"),
    (_compress("--max-accuracy-drop", "nan"), "max_quality_drop"),
    (_compress("--min-accuracy", "1.5"), "min_quality"),
    (_compress("--min-accuracy", "-0.2"), "min_quality"),
    (_compress("--min-accuracy", "98"), "0.98 is 98 %"),
    (_compress("--accuracy-budget", "5"), "--accuracy-budget"),
    (_compress("--accuracy-budget", "-1"), "--accuracy-budget"),
    (_compress("--accuracy-budget", "nan"), "--accuracy-budget"),
    (_compress("--threads", "0"), "--threads"),
    (_compress("--threads", "-2"), "--threads"),
    (_compress("--threads", "1", "--threads", "1"), "given twice"),
    (_compress("--threads", "100000"), "at most 256"),
    (_compress("--champion-margin", "1.5", "--stage", "production"), "--champion-margin"),
    (_compress("--champion-margin", "-0.1", "--stage", "production"), "--champion-margin"),
    # combinations and choices
    (_compress("--no-mixed", "--accuracy-budget", "0.01"), "contradicts"),
    (_compress("--no-mixed", "--relative-budget"), "contradicts"),
    (_compress("--qat-skip", "bn"), "add --qat"),
    (_compress("--qat", "--qat-skip", "no_such_layer"), "no layer named 'no_such_layer'"),
    (["compress", "--model", "{root}/broken.keras", "--data", "digits"], "could not read"),
    (_compress("--mode", "int8", "--mode", "int8"), "given twice"),
    (_compress("--mode", "int4"), "'--mode'"),
    (_compress("--sensitivity", "fastest"), "'--sensitivity'"),
    (_compress("--stage", "prod"), "'--stage'"),
    (_compress("--champion-margin", "0.1"), "no --stage"),
    (_compress("--replace-unreadable-champion"), "add --stage"),
    (_compress("--metric", "nocolon"), "Unknown metric"),
    (_compress("--metric", "bad-ref:x"), "package.module:function"),
    (_compress("--metric", "mae", "--task", "classification"), "does not score"),
    (_compress("--metric", "zenml_quant.metrics:get_metric"), "--higher-is-better"),
    (_compress("--lower-is-better"), "direction of a --metric function"),
    (_compress("--metric", "mae", "--min-accuracy", "0.9"), "not an accuracy"),
    (_compress("--min-quality", "0.9", "--min-accuracy", "0.9"), "another spelling"),
    (_compress("--metric", "mae", "--quality-budget", "-1"), "--quality-budget"),
    (_compress("--accuracy-budget", "0.1", "--quality-budget", "0.1"), "another spelling"),
    (_compress("--task", "segmentation"), "'--task'"),
    (_compress("--val-data", "{root}/none.npz"), "--val-data"),
    (_compress("--val-data", "{root}/notes.txt"), "not an .npz"),
    (_compress("--validation-from", "middle"), "'--validation-from'"),
    (_compress("--frobnicate"), "No such option"),
    # YAML configs
    (_compress("--config", "{root}/missing.yaml"), "cannot be read"),
    (_compress("--config", "{root}/broken.yaml"), "not valid YAML"),
    (_compress("--config", "{root}/list.yaml"), "not a YAML mapping"),
    (_compress("--config", "{root}/top.yaml"), "parametres"),
    (_compress("--config", "{root}/flat.yaml"), "put the pipeline's options under"),
    (_compress("--config", "{root}/unknown_param.yaml"), "unknown key(s) mode: use modes"),
    (_compress("--config", "{root}/gate_key.yaml"), "unknown key(s) gate.stages"),
    (_compress("--config", "{root}/candidates.yaml"), "search.candidates"),
    (_compress("--config", "{root}/int4.yaml"), "modes"),
    (_compress("--config", "{root}/neg_target.yaml"), "max_size_bytes"),
    (_compress("--config", "{root}/kb_target.yaml"), "max_size_kb"),
    (_compress("--config", "{root}/threads.yaml"), "benchmark_threads"),
    (_compress("--config", "{root}/budget.yaml"), "max_quality_drop"),
    (_compress("--config", "{root}/steps.yaml"), "'steps'"),
    (_compress("--config", "{root}/old_step.yaml"), "start with zq_ (zq_convert_int8)"),
    (
        _compress("--qat", "--config", "{root}/retired_param.yaml"),
        "zq_quantization_aware_training has no parameter(s) epochs; its parameters are model, "
        "dataset, layers, skip_layers, training",
    ),
    (_compress("--config", "{root}/unknown_step.yaml"), "'zq_qat' is not a step"),
    (
        _compress("--qat", "--config", "{root}/qat_training.yaml"),
        "zq_quantization_aware_training: training: Invalid QATOptions: epochs=0",
    ),
    (
        ["search", "--model", "{root}/model.keras", "--data", "digits", "--proposer", "best"],
        "Invalid value for '--proposer'",
    ),
    (
        _compress("--config", "{root}/search_settings.yaml"),
        "fine_tune_epochs=-1 (must be an integer >= 0); proposer='best'",
    ),
    (_compress("--config", "{root}/stage.yaml"), "stage"),
    (_compress("--config", "{root}/precisions.yaml"), "Unknown precision 'int3'"),
    (_compress("--config", "{root}/objective.yaml"), "'speed': use one of bytes, latency, energy"),
    (_compress("--precisions", "int3,int8"), "--precisions: Unknown precision 'int3'"),
    (_compress("--precisions", ","), "(none given)"),
    (_compress("--objective", "speed"), "Invalid value for '--objective'"),
    (_compress("--no-mixed", "--objective", "latency"), "--no-mixed: it contradicts"),
    (
        ["compress", "--model", "{root}/two.keras", "--data", "digits", "--bn-reestimate"],
        "--bn-reestimate: the model has no BatchNormalization layer",
    ),
    (_compress("--config", "{root}/calibration.yaml"), "calibration_samples"),
    (_compress("--config", "{root}/conversion_key.yaml"), "unknown key(s) samples"),
    (_compress("--config", "{root}/quantized_io.yaml"), "quantized_io: 'yes' is not a bool"),
    # search
    (["search", "--model", "{root}/model.keras", "--data", "digits"], "needs a target"),
    (
        [
            "search",
            "--model",
            "{root}/model.keras",
            "--data",
            "digits",
            "--max-size-kb",
            "10",
            "--max-trials",
            "0",
        ],
        "--max-trials",
    ),
    (
        [
            "search",
            "--model",
            "{root}/model.keras",
            "--data",
            "digits",
            "--max-size-kb",
            "10",
            "--candidates",
            "9",
        ],
        "--candidates",
    ),
    (
        [
            "search",
            "--model",
            "{root}/model.keras",
            "--data",
            "digits",
            "--max-size-kb",
            "10",
            "--time-budget-min",
            "0",
        ],
        "--time-budget-min",
    ),
    (
        [
            "search",
            "--model",
            "{root}/model.keras",
            "--data",
            "digits",
            "--max-size-kb",
            "10",
            "--seed",
            "-1",
        ],
        "--seed",
    ),
    (
        ["search", "--model", "{root}/missing.keras", "--data", "digits", "--max-size-kb", "10"],
        "no model at",
    ),
    # retrain, demo, studio
    (["retrain", "--epochs", "0"], "--epochs"),
    (["retrain", "--schedule", "every monday"], "cron"),
    (["retrain", "--data", "{root}/none.npz"], "no data at"),
    (["retrain", "--model-name", " "], "--model-name"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--json", "{root}/missing/x.json"], "does not exist"),
    (["studio", "--model", "{root}/model.keras", "--port", "70000"], "--port"),
    (["studio", "--model", "{root}/missing.keras", "--data", "digits"], "no model at"),
    (["studio", "--data", "digits"], "exactly one of --model"),
    (["studio", "--model", "{root}/model.keras", "--threads", "0"], "--threads"),
]


def test_at_least_60_bad_inputs_are_covered():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("args", "words"), CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_bad_input_is_refused_before_anything_runs(files, tmp_path, args, words):
    root = str(files)
    out, summary = tmp_path / "out", tmp_path / "summary.json"
    command = [a.replace("{root}", root) for a in args]
    if command[0] in ("compress", "search", "demo") and "--output-dir" not in command:
        command += ["--output-dir", str(out)]
    if command[0] in ("compress", "search") and "--json" not in command:
        command += ["--json", str(summary)]
    config_dir = tmp_path / "zenml"
    env = {**os.environ, "ZENML_CONFIG_PATH": str(config_dir), "ZENML_ANALYTICS_OPT_IN": "false"}
    done = subprocess.run(
        [ZENML_QUANT, *command], capture_output=True, text=True, env=env, timeout=120
    )
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ") and words in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    # Nothing written: no files, and no ZenML store (so no run and no model version).
    assert not out.exists() and not summary.exists()
    assert not config_dir.exists() or not any(config_dir.rglob("*")), list(config_dir.rglob("*"))


def test_each_pipeline_takes_one_typed_config_and_its_checks_name_real_keys():
    """A pipeline is configured by one frozen config object; every dotted key the CLI checks in
    a YAML config is a field of some pipeline's config, so no check is for a key that cannot
    be set."""
    import dataclasses
    import inspect

    from zenml_quant.integration import CompressConfig, NasConfig, RetrainConfig
    from zenml_quant.integration.cli import checks
    from zenml_quant.integration.pipelines import (
        compress_pipeline,
        nas_pipeline,
        retrain_and_compress,
    )

    for pipeline_, kind, inputs in (
        (compress_pipeline, CompressConfig, ("model_path", "config")),
        (nas_pipeline, NasConfig, ("model_path", "config")),
        (retrain_and_compress, RetrainConfig, ("config",)),
    ):
        parameters = inspect.signature(pipeline_.entrypoint).parameters
        assert tuple(parameters) == inputs
        assert isinstance(parameters["config"].default, kind)

    def keys(kind, prefix=""):
        for field in dataclasses.fields(kind):
            yield prefix + field.name
            factory = field.default_factory
            default = field.default if factory is dataclasses.MISSING else factory()
            if dataclasses.is_dataclass(default):
                yield from keys(type(default), f"{prefix}{field.name}.")

    settable = {k for kind in (CompressConfig, NasConfig, RetrainConfig) for k in keys(kind)}
    assert set(checks.parameter_checks()) <= settable, set(checks.parameter_checks()) - settable


def test_a_flag_wins_over_the_config_file_and_the_rest_of_the_file_stays(tmp_path):
    from zenml_quant.integration import CompressConfig
    from zenml_quant.integration.cli.run_config import pipeline_config, zenml_run_config

    path = tmp_path / "run.yaml"
    path.write_text(
        "parameters:\n  config:\n    modes: [int8, float16]\n    qat: true\n"
        "    gate:\n      targets: {max_size_bytes: 9000}\n      champion_margin: 0.01\n"
        "steps:\n  zq_convert_int8:\n    parameters: {mode: int8}\n"
    )
    flags = {"modes": ("float32",), "gate": {"targets": {"min_quality": 0.9}}}
    config, in_file = pipeline_config(str(path), CompressConfig, flags)
    assert config.modes == ("float32",) and config.qat is True
    assert config.gate.targets == {"max_size_bytes": 9000, "min_quality": 0.9}
    assert config.gate.champion_margin == 0.01 and in_file["modes"] == ["int8", "float16"]
    # ZenML reads the steps' options from a copy without the parameters (given in code).
    with zenml_run_config(str(path)) as copy:
        text = open(copy).read()
        assert "zq_convert_int8" in text and "parameters:\n  config" not in text
    assert not __import__("os").path.exists(copy)
