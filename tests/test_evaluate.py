"""Accuracy of Keras and TFLite models, latency, and the baseline profile."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant.baseline import profile_baseline
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.errors import InvalidDatasetError
from zenml_quant.evaluate import (
    accuracy_from_outputs,
    evaluate_candidate,
    evaluate_keras,
    evaluate_tflite,
)
from zenml_quant.interpreter import measure_latency, run_tflite


def test_accuracy_from_logits_and_sigmoid():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert accuracy_from_outputs(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    sigmoid = np.array([[0.9], [0.2], [0.6], [0.4]])
    assert accuracy_from_outputs(sigmoid, np.array([1, 0, 0, 0])) == pytest.approx(0.75)


def test_accuracy_rejects_mismatched_lengths():
    with pytest.raises(InvalidDatasetError, match="same length"):
        accuracy_from_outputs(np.zeros((3, 2)), np.zeros(4))


def test_keras_evaluation_matches_manual_argmax(digits_model, digits):
    result = evaluate_keras(digits_model, digits, split="test")
    manual = np.mean(digits_model.predict(digits.x_test, verbose=0).argmax(1) == digits.y_test)
    assert result.accuracy == pytest.approx(manual)
    assert result.n_samples == len(digits.y_test)
    assert result.accuracy > 0.8
    # The demo model is compiled with an accuracy metric; Keras' own figure agrees with ours.
    assert result.metrics["keras_accuracy"] == pytest.approx(manual, abs=1e-6)


def error_rate(labels, outputs):
    """A user metric (lower is better) for the test below."""
    return float(np.mean(outputs.argmax(1) != labels))


def test_user_metric_scores_both_paths(digits_model, digits):
    from zenml_quant.metrics import get_metric

    metric = get_metric(f"{__name__}:error_rate", higher_is_better=False)
    top1 = evaluate_keras(digits_model, digits).accuracy
    keras_result = evaluate_keras(digits_model, digits, metric=metric)
    assert keras_result.accuracy == pytest.approx(1 - top1)
    assert keras_result.metric == f"{__name__}:error_rate"
    tflite = convert_model(digits_model, "float32")
    tflite_result = evaluate_tflite(tflite, digits, metric=metric)
    assert tflite_result.accuracy == pytest.approx(1 - evaluate_tflite(tflite, digits).accuracy)


def test_tflite_accuracy_follows_keras(digits_model, digits):
    keras_acc = evaluate_keras(digits_model, digits).accuracy
    float_acc = evaluate_tflite(convert_model(digits_model, "float32"), digits).accuracy
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    int8_acc = evaluate_tflite(int8, digits).accuracy
    assert float_acc == pytest.approx(keras_acc, abs=1e-9)
    assert abs(int8_acc - keras_acc) < 0.03


def test_batched_and_single_example_runs_agree(digits_model, digits):
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    x = digits.x_test[:37]  # not a multiple of the batch: exercises the padded last batch
    batched = run_tflite(int8, x, batch_size=16)
    single = np.concatenate([run_tflite(int8, x[i : i + 1], batch_size=1) for i in range(len(x))])
    np.testing.assert_array_equal(batched, single)


def test_latency_reports_threads_and_order(tiny_dense, tiny_features):
    latency = measure_latency(
        convert_model(tiny_dense, "float32"), tiny_features[0], num_threads=2, runs=30
    )
    assert latency.threads == 2 and latency.runs == 30
    assert 0 < latency.p50_ms <= latency.p95_ms


def test_failed_candidate_is_reported(tiny_dense, digits):
    broken = inspect_tflite(b"not a flatbuffer", mode="int16x8")
    result = evaluate_candidate(broken, digits, name="broken")
    assert result.accuracy is None and result.latency_ms_p50 is None
    assert "cannot allocate" in result.error


def test_baseline_profile(digits_model, digits):
    summary, layers = profile_baseline(digits_model, digits)
    assert summary.params == digits_model.count_params() == layers["params"].sum()
    assert summary.macs == layers["macs"].sum() > 0
    assert summary.float_tflite_bytes > summary.params * 4 * 0.9
    assert summary.peak_activation_bytes > 0
    assert summary.flavour == "tf_keras"
    assert list(layers["layer"])[:2] == ["conv1", "bn1"]


def test_baseline_reuses_a_given_float_model_and_refuses_another_mode(digits_model, digits):
    from zenml_quant.errors import InvalidOptionError

    float_model = convert_model(digits_model, "float32")
    summary, _ = profile_baseline(digits_model, digits, float_model=float_model)
    assert summary.float_tflite_bytes == float_model.size_bytes
    assert summary.peak_activation_bytes == float_model.peak_activation_bytes
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    with pytest.raises(InvalidOptionError, match="float32 conversion"):
        profile_baseline(digits_model, digits, float_model=int8)
