"""Each step's logic through ``.entrypoint()``: no pipeline run, no ZenML server."""

from __future__ import annotations

import pandas as pd
import pytest

from zenml_quant.errors import InvalidDatasetError, InvalidModelError, InvalidOptionError
from zenml_quant.integration import steps
from zenml_quant.types import ConversionOptions, QATOptions


def test_load_steps(digits_model_path):
    model = steps.load_keras_model.entrypoint(str(digits_model_path))
    assert model.name == "demo_cnn"
    data = steps.load_labeled_dataset.entrypoint("digits", model=model)
    assert data.sample_shape == (8, 8, 1) and data.preprocessing.channel_axis_added


def test_load_model_step_rejects_missing_file(tmp_path):
    with pytest.raises(InvalidModelError, match="no model"):
        steps.load_keras_model.entrypoint(str(tmp_path / "nope.keras"))


def test_load_dataset_step_checks_against_the_model(digits_model, tmp_path):
    import numpy as np

    path = tmp_path / "wrong.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
        y_train=np.arange(20) % 10,
        x_test=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8),
        y_test=np.arange(10),
    )
    with pytest.raises(InvalidDatasetError, match="expects"):
        steps.load_labeled_dataset.entrypoint(str(path), model=digits_model)


def test_baseline_convert_evaluate_compare(digits_model, digits):
    summary, layers, page = steps.evaluate_baseline.entrypoint(digits_model, digits)
    assert isinstance(layers, pd.DataFrame) and summary.params == layers["params"].sum()
    assert "<table" in page
    candidates = []
    for mode in ("float32", "int8"):
        tflite = steps.convert_to_tflite.entrypoint(
            digits_model, digits, mode=mode, conversion=ConversionOptions(calibration_samples=50)
        )
        assert tflite.mode == mode and tflite.ok
        candidates.append(
            steps.evaluate_tflite_model.entrypoint(tflite, digits, name=mode, latency_runs=10)
        )
    assert candidates[0].accuracy == pytest.approx(summary.accuracy)
    table, html = steps.compare_candidates.entrypoint(summary, candidates)
    assert list(table["name"]) == ["keras", "float32", "int8"]
    assert table.iloc[2]["size_bytes"] < table.iloc[1]["size_bytes"] / 2
    assert "int8" in html


def test_the_metric_named_at_loading_scores_both_evaluations(digits_model, tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "def error_rate(labels, outputs):\n    return float((outputs.argmax(1) != labels).mean())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    data = steps.load_labeled_dataset.entrypoint(
        "digits", model=digits_model, metric="my_metrics:error_rate", higher_is_better=False
    )
    assert data.task == "classification" and data.metric["spec"] == "my_metrics:error_rate"
    top1 = steps.load_labeled_dataset.entrypoint("digits", model=digits_model)
    assert top1.metric["name"] == "top1"
    summary, _, _ = steps.evaluate_baseline.entrypoint(digits_model, data)
    reference, _, _ = steps.evaluate_baseline.entrypoint(digits_model, top1)
    assert summary.metric == "my_metrics:error_rate" and not summary.higher_is_better
    assert summary.accuracy == pytest.approx(1 - reference.accuracy)
    tflite = steps.convert_to_tflite.entrypoint(digits_model, data, mode="float32")
    result = steps.evaluate_tflite_model.entrypoint(tflite, data, latency_runs=5)
    assert result.metric == "my_metrics:error_rate"
    assert result.accuracy == pytest.approx(summary.accuracy, abs=1e-9)


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ("no_colon", "Unknown metric"),
        ("nowhere_module:f", "Cannot import"),
        ("math:pi", "not a function"),
        ("zenml_quant.metrics:get_metric", "--higher-is-better"),
        ("mae", "does not score a classification"),
    ],
)
def test_bad_metric_reference_is_explained(digits_model, spec, phrase):
    from zenml_quant.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match=phrase):
        steps.load_labeled_dataset.entrypoint("digits", model=digits_model, metric=spec)


def test_keras3_model_through_the_steps(digits, tmp_path):
    from zenml_quant._compat import keras3

    if keras3 is None:
        pytest.skip("Keras 3 is not installed")
    keras3.utils.set_random_seed(0)
    model = keras3.Sequential(
        [
            keras3.Input((8, 8, 1)),
            keras3.layers.Conv2D(8, 3, activation="relu"),
            keras3.layers.Flatten(),
            keras3.layers.Dense(10),
        ],
        name="k3_cnn",
    )
    model.compile("adam", keras3.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(digits.x_train, digits.y_train, epochs=3, verbose=0)
    path = tmp_path / "k3.keras"
    model.save(path)

    loaded = steps.load_keras_model.entrypoint(str(path))
    data = steps.load_labeled_dataset.entrypoint("digits", model=loaded)
    summary, layers, _ = steps.evaluate_baseline.entrypoint(loaded, data)
    assert summary.flavour == "keras3" and summary.accuracy > 0.6
    assert layers["macs"].sum() == 6 * 6 * 8 * 9 + 288 * 10
    int8 = steps.convert_to_tflite.entrypoint(
        loaded, data, mode="int8", conversion=ConversionOptions(calibration_samples=100)
    )
    result = steps.evaluate_tflite_model.entrypoint(int8, data, name="int8", latency_runs=5)
    assert int8.inputs[0].dtype == "int8"
    assert abs(result.accuracy - summary.accuracy) < 0.05


def test_sensitivity_then_budgeted_ptq_steps(hard_case, wide_digits):
    table, page = steps.profile_sensitivity.entrypoint(hard_case, wide_digits, top_k=2)
    assert set(table["layer"][:2]) == {"bottleneck", "logits"} and "<svg" in page
    model, attempts, report = steps.quantize_post_training.entrypoint(
        hard_case, wide_digits, sensitivity=table, max_quality_drop=0.005
    )
    assert model.mode == "mixed" and set(model.float_layers) <= {"bottleneck", "logits"}
    assert attempts["meets_budget"].any() and "budget met" in report
    # The ranking came from the table: the first float layer tried is its top layer.
    assert attempts.iloc[1]["float_layers"] == table["layer"].iloc[0]


def test_ptq_step_plain_and_selective(digits_model, digits):
    model, attempts, _ = steps.quantize_post_training.entrypoint(
        digits_model, digits, mode="float16"
    )
    assert model.mode == "float16" and attempts.empty
    model, _, _ = steps.quantize_post_training.entrypoint(
        digits_model, digits, float_layer_types=["Dense"]
    )
    assert model.float_layers == ("logits",)
    with pytest.raises(InvalidOptionError, match="'dense_7'"):
        steps.quantize_post_training.entrypoint(digits_model, digits, float_layers=["dense_7"])


def test_qat_step(digits_model, digits):
    tflite, history, page = steps.quantization_aware_training.entrypoint(
        digits_model,
        digits,
        training=QATOptions(epochs=1),
        conversion=ConversionOptions(calibration_samples=100),
    )
    assert tflite.mode == "int8" and tflite.inputs[0].dtype == "int8"
    assert len(history) == 1 and "accuracy" in history.columns
    assert "Quantization-aware training" in page


def test_int4_aware_qat_step_hands_its_training_options_to_the_core(
    digits_model, digits, monkeypatch
):
    from zenml_quant.candidates import failed_model
    from zenml_quant.integration.steps import precision as precision_step

    seen = {}

    def capture(model, dataset, **kwargs):
        seen.update(kwargs)
        return failed_model("mixed_qat", "stopped by the test", kwargs["conversion"])

    monkeypatch.setattr(precision_step._candidates, "mixed_qat_candidate", capture)
    options = QATOptions(epochs=2, early_stopping_patience=0, seed=5)
    tflite, page = steps.int4_aware_qat.entrypoint(digits_model, digits, training=options)
    assert seen["options"] == options and not tflite.ok
    assert "stopped by the test" in page
    steps.int4_aware_qat.entrypoint(digits_model, digits)
    assert seen["options"] == QATOptions()  # no training options: the defaults


def test_a_failed_sensitivity_profile_leaves_the_candidates_a_ranking_free_run(
    digits_model, digits, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("Cannot set tensor: Got value of type FLOAT32 but expected type INT8")

    from zenml_quant.integration.steps import sensitivity as sensitivity_step

    monkeypatch.setattr(sensitivity_step._sensitivity, "profile_sensitivity", broken)
    table, page = steps.profile_sensitivity.entrypoint(digits_model, digits)
    assert table.empty and list(table.columns) == ["rank", "layer"]
    assert "Sensitivity profiling failed" in page and "expected type INT8" in page
    # The mixed candidate still runs, trying layers in model order.
    tflite, attempts, _ = steps.quantize_post_training.entrypoint(
        digits_model, digits, sensitivity=table, max_quality_drop=0.05
    )
    assert tflite.ok and len(attempts) >= 1
