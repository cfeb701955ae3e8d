"""BatchNorm statistics re-estimated on the user's data: exact, sequential, non-destructive."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zenml_quant._compat import tf_keras
from zenml_quant.batchnorm import batchnorm_layers, recalibrated_int8, reestimate_batchnorm
from zenml_quant.demo import fit_classifier
from zenml_quant.errors import InvalidOptionError
from zenml_quant.metrics import METRICS

layers = tf_keras.layers


@pytest.fixture(scope="module")
def bn_model(digits):
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, use_bias=False, name="conv1"),
            layers.BatchNormalization(momentum=0.9, name="bn1"),
            layers.ReLU(),
            layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv2"),
            layers.BatchNormalization(momentum=0.9, name="bn2"),
            layers.ReLU(),
            layers.GlobalAveragePooling2D(name="pool"),
            layers.Dense(10, name="logits"),
        ],
        name="bn_cnn",
    )
    return fit_classifier(model, digits, epochs=6, batch_size=32)


def _shifted(data):
    """The same digits as another camera would give them: lower contrast, brighter. conv1 has
    no padding, so its outputs shift by an affine map per channel, which new statistics undo."""
    return dataclasses.replace(
        data,
        x_train=0.4 * data.x_train + 0.5,
        x_val=0.4 * data.x_val + 0.5,
        x_test=0.4 * data.x_test + 0.5,
    )


def _accuracy(model, x, y):
    return METRICS["top1"].score(model.predict(x, verbose=0), y, x)


def test_statistics_are_the_moments_of_each_layers_inputs_in_one_training_mode_pass(
    bn_model, digits
):
    x = digits.x_train[:950]  # 10 batches of 95: equal batches, none left short
    result = reestimate_batchnorm(bn_model, x, max_examples=len(x), batch_size=100)
    assert result.layers == batchnorm_layers(bn_model) == ("bn1", "bn2")
    assert result.examples == len(x)
    # The same pass written out: bn1 normalises each batch with the batch's own moments.
    bn1 = bn_model.get_layer("bn1")
    first, second = [], []
    for batch in np.array_split(x, 10):
        h = bn_model.get_layer("conv1")(batch).numpy().astype(np.float64)
        first.append(h.reshape(-1, 16))
        mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
        normed = (h - mean) / np.sqrt(var + bn1.epsilon) * bn1.gamma.numpy() + bn1.beta.numpy()
        relu = np.maximum(normed, 0.0).astype(np.float32)
        second.append(bn_model.get_layer("conv2")(relu).numpy().reshape(-1, 16))
    for name, inputs in (("bn1", first), ("bn2", second)):
        a = np.concatenate(inputs).astype(np.float64)
        layer = result.model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), a.mean(axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), a.var(axis=0), rtol=1e-3, atol=1e-5
        )


def test_dropout_stays_off_and_a_frozen_batchnorm_normalises_like_the_others():
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            layers.Input((6, 6, 1)),
            layers.Conv2D(4, 3, name="conv"),
            layers.Dropout(0.5, name="drop"),
            layers.BatchNormalization(name="bn1"),
            layers.Conv2D(4, 3, name="conv2"),
            layers.BatchNormalization(name="bn2"),
        ]
    )
    model.get_layer("bn1").trainable = False
    x = np.random.default_rng(0).normal(2.0, 1.0, (64, 6, 6, 1)).astype(np.float32)
    result = reestimate_batchnorm(model, x, max_examples=64, batch_size=64)  # one batch
    h = model.get_layer("conv")(x).numpy().astype(np.float64)  # no dropout
    bn1 = model.get_layer("bn1")
    normed = (h - h.mean(axis=(0, 1, 2))) / np.sqrt(h.var(axis=(0, 1, 2)) + bn1.epsilon)
    g = model.get_layer("conv2")(normed.astype(np.float32)).numpy().astype(np.float64)
    for name, a in (("bn1", h), ("bn2", g)):
        a = a.reshape(-1, 4)
        layer = result.model.get_layer(name)
        np.testing.assert_allclose(layer.moving_mean.numpy(), a.mean(axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            layer.moving_variance.numpy(), a.var(axis=0), rtol=1e-3, atol=1e-5
        )
    assert not result.model.get_layer("bn1").trainable  # the copy keeps the user's setting


def test_the_original_model_is_left_as_it_was(bn_model, digits):
    before = [w.copy() for w in bn_model.get_weights()]
    result = reestimate_batchnorm(bn_model, _shifted(digits).x_train)
    assert all(np.array_equal(a, b) for a, b in zip(before, bn_model.get_weights()))
    assert not np.allclose(
        result.model.get_layer("bn1").moving_mean.numpy(),
        bn_model.get_layer("bn1").moving_mean.numpy(),
    )


def test_statistics_from_the_users_data_win_back_a_camera_shift(bn_model, digits):
    shifted = _shifted(digits)
    original = _accuracy(bn_model, digits.x_test, digits.y_test)
    broken = _accuracy(bn_model, shifted.x_test, shifted.y_test)
    result = reestimate_batchnorm(bn_model, shifted.x_train)
    repaired = _accuracy(result.model, shifted.x_test, shifted.y_test)
    assert broken < original - 0.15  # the shift really hurts the pre-trained statistics
    assert repaired > broken + 0.10
    assert repaired > original - 0.05
    # How far off the old means were: far for the shifted images, not for the original ones.
    same = reestimate_batchnorm(bn_model, digits.x_train)
    assert result.shift[0] > 3 * same.shift[0]


def test_the_candidate_is_an_int8_file_that_says_what_changed(bn_model, digits):
    shifted = _shifted(digits)
    candidate = recalibrated_int8(bn_model, shifted, max_examples=500)
    assert candidate.tflite.ok and candidate.tflite.mode == "bn_int8"
    assert candidate.improved and candidate.quality_after > candidate.quality_before
    (note,) = [n for n in candidate.tflite.notes if "re-estimated" in n]
    assert "2 layer(s)" in note and "500 train examples" in note and "(better)" in note


def test_a_model_without_batchnorm_is_refused_with_the_reason(tiny_dense):
    with pytest.raises(InvalidOptionError, match="no BatchNormalization layer"):
        reestimate_batchnorm(tiny_dense, np.zeros((4, 16), np.float32))


def test_bad_sizes_are_refused_with_the_rule(bn_model, digits):
    with pytest.raises(InvalidOptionError, match="max_examples and batch_size must be at least 1"):
        reestimate_batchnorm(bn_model, digits.x_train, max_examples=0)
