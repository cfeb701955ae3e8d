"""Task inference, fitting data to a model's task, and training on the targets a task needs."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.conform import fit_to_model
from zenml_quant.datasets import load_npz
from zenml_quant.errors import InvalidDatasetError, InvalidOptionError
from zenml_quant.metrics import METRICS
from zenml_quant.paired import paired_gain
from zenml_quant.tasks import ModelSignature, infer_task
from zenml_quant.training import one_hot_loss, training_data

layers = tf_keras.layers
RNG = np.random.default_rng(0)


def _npz(tmp_path, name, x, y, **extra):
    n = len(x)
    cut = int(0.6 * n)
    path = tmp_path / f"{name}.npz"
    np.savez(path, x_train=x[:cut], y_train=y[:cut], x_test=x[cut:], y_test=y[cut:], **extra)
    return path


def _classes(tmp_path, n=120, classes=3, features=6):
    x = RNG.normal(size=(n, features)).astype(np.float32)
    y = np.arange(n) % classes
    return load_npz(_npz(tmp_path, "cls", x, y))


def _values(tmp_path, n=120, features=6):
    x = RNG.normal(size=(n, features)).astype(np.float32)
    y = (x @ RNG.normal(size=features) + 0.1).astype(np.float32)
    return load_npz(_npz(tmp_path, "reg", x, y))


def _anomalies(tmp_path, n=160, features=8):
    x = RNG.normal(size=(n, features)).astype(np.float32)
    y = (np.arange(n) % 4 == 0).astype(np.int64)  # every 4th example is an anomaly
    return load_npz(_npz(tmp_path, "ae", x, y))


def _sig(inp, out, activation=None):
    return ModelSignature(input_shape=inp, output_shape=out, final_activation=activation)


# --- inference: each rule and each refusal ---------------------------------------------------


def test_per_class_outputs_and_class_labels_are_classification(tmp_path):
    assert infer_task(_sig((6,), (3,), "softmax"), _classes(tmp_path)) == "classification"


def test_one_sigmoid_unit_and_0_1_labels_are_binary(tmp_path):
    data = _classes(tmp_path, classes=2)
    assert infer_task(_sig((6,), (1,), "sigmoid"), data) == "binary"


def test_output_shaped_like_the_input_is_reconstruction(tmp_path):
    assert infer_task(_sig((8,), (8,)), _anomalies(tmp_path)) == "reconstruction"


def test_float_targets_are_regression(tmp_path):
    data = _values(tmp_path)
    assert not data.has_classes
    assert infer_task(_sig((6,), (1,)), data) == "regression"


def test_one_linear_unit_with_whole_labels_is_refused_naming_the_flag(tmp_path):
    with pytest.raises(InvalidOptionError, match="--task"):
        infer_task(_sig((6,), (1,)), _classes(tmp_path, classes=2))


def test_an_autoencoder_shape_with_as_many_classes_is_refused(tmp_path):
    # 6 inputs, 6 outputs and 6 classes: a classifier or an autoencoder
    with pytest.raises(InvalidOptionError, match="--task"):
        infer_task(_sig((6,), (6,)), _classes(tmp_path, classes=6))


def test_an_explicit_task_is_checked_against_model_and_labels(tmp_path):
    with pytest.raises(InvalidOptionError, match="needs class labels"):
        infer_task(_sig((6,), (3,)), _values(tmp_path), "classification")
    with pytest.raises(InvalidOptionError, match="input's shape"):
        infer_task(_sig((6,), (3,)), _classes(tmp_path), "reconstruction")
    with pytest.raises(InvalidOptionError, match="Unknown task"):
        infer_task(_sig((6,), (3,)), _classes(tmp_path), "segmentation")


# --- fit_to_model: the dataset learns its task and metric ------------------------------------


def _dense(inputs, units, activation=None):
    inp = layers.Input((inputs,))
    hidden = layers.Dense(8, activation="relu")(inp)
    return tf_keras.Model(inp, layers.Dense(units, activation=activation)(hidden))


def test_fit_to_model_settles_task_and_default_metric(tmp_path):
    fitted = fit_to_model(_dense(6, 3), _classes(tmp_path))
    assert fitted.task == "classification" and fitted.metric["name"] == "top1"
    regression = fit_to_model(_dense(6, 1), _values(tmp_path))
    assert regression.task == "regression" and regression.metric["name"] == "mae"
    ae = fit_to_model(_dense(8, 8), _anomalies(tmp_path))
    assert ae.task == "reconstruction" and ae.metric["name"] == "reconstruction_auc"


def test_whole_number_targets_become_values_when_told_regression(tmp_path):
    x = RNG.normal(size=(100, 6)).astype(np.float32)
    counts = RNG.integers(0, 7, size=100)
    data = load_npz(_npz(tmp_path, "counts", x, counts))
    assert data.has_classes  # whole numbers read as classes until the task says otherwise
    fitted = fit_to_model(_dense(6, 1), data, task="regression")
    assert not fitted.has_classes and fitted.y_train.dtype == np.float32
    np.testing.assert_array_equal(fitted.y_train, counts[:60].astype(np.float32))


def test_metric_must_fit_the_task(tmp_path):
    with pytest.raises(InvalidOptionError, match="does not score a regression"):
        fit_to_model(_dense(6, 1), _values(tmp_path), metric="top1")
    with pytest.raises(InvalidDatasetError, match="targets have shape"):
        fit_to_model(_dense(6, 2), _values(tmp_path), task="regression")


def test_reconstruction_without_anomalies_scores_the_error(tmp_path):
    x = RNG.normal(size=(80, 8)).astype(np.float32)
    data = load_npz(_npz(tmp_path, "normal", x, np.zeros(80, np.int64)))
    fitted = fit_to_model(_dense(8, 8), data, task="reconstruction")
    assert fitted.metric["name"] == "reconstruction_error"
    with pytest.raises(InvalidOptionError, match="reconstruction_auc needs"):
        fit_to_model(_dense(8, 8), data, task="reconstruction", metric="reconstruction_auc")


# --- training targets ------------------------------------------------------------------------


def test_categorical_loss_gets_one_hot_labels_and_sparse_gets_indices(tmp_path):
    data = fit_to_model(_dense(6, 3, "softmax"), _classes(tmp_path))
    model = _dense(6, 3, "softmax")
    model.compile(loss="categorical_crossentropy")
    assert one_hot_loss(model.loss) and one_hot_loss(tf_keras.losses.CategoricalCrossentropy())
    shaped = training_data(model, data.task, *data.split("train"), *data.split("validation"))
    assert shaped.y_train.shape == (len(data.y_train), 3)
    np.testing.assert_array_equal(shaped.y_train.argmax(1), data.y_train)
    sparse = _dense(6, 3, "softmax")
    sparse.compile(loss="sparse_categorical_crossentropy")
    plain = training_data(sparse, data.task, *data.split("train"), *data.split("validation"))
    assert plain.y_train.ndim == 1
    # the one-hot model actually trains on them
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.fit(shaped.x_train, shaped.y_train, epochs=1, verbose=0)


def test_an_autoencoder_trains_on_its_normal_inputs_never_on_the_labels(tmp_path):
    data = fit_to_model(_dense(8, 8), _anomalies(tmp_path))
    shaped = training_data(_dense(8, 8), data.task, *data.split("train"), *data.split("validation"))
    normal = data.y_train == 0
    np.testing.assert_array_equal(shaped.x_train, data.x_train[normal])
    np.testing.assert_array_equal(shaped.y_train, shaped.x_train)
    assert "left out" in shaped.note


# --- the paired test -------------------------------------------------------------------------


def test_paired_test_tells_a_real_gain_from_noise():
    labels = np.arange(400) % 2
    right = np.eye(2)[labels]
    wrong = np.eye(2)[1 - labels]
    # a: 90 % right; b: 70 % right on the same examples -> significant
    a = np.where((np.arange(400) % 10 < 9)[:, None], right, wrong)
    b = np.where((np.arange(400) % 10 < 7)[:, None], right, wrong)
    strong = paired_gain(METRICS["top1"], a, b, labels)
    assert strong.significant and strong.gain == pytest.approx(0.2)
    # c differs from b on 2 examples only: +0.5 points is noise
    c = b.copy()
    c[[7, 8]] = right[[7, 8]]
    weak = paired_gain(METRICS["top1"], c, b, labels)
    assert weak.gain == pytest.approx(0.005) and not weak.significant
    assert "within noise" in weak.describe(METRICS["top1"])


def test_paired_test_on_auc_uses_the_bootstrap():
    labels = np.arange(200) % 2
    good = labels + RNG.normal(scale=0.3, size=200)
    poor = labels + RNG.normal(scale=3.0, size=200)
    test = paired_gain(METRICS["auc"], good[:, None], poor[:, None], labels)
    assert test.method.startswith("paired bootstrap") and test.significant
