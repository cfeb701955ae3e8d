"""Fully connected networks: the MLPerf Tiny anomaly-detection autoencoder and a regression head."""

from __future__ import annotations

from collections.abc import Sequence

from zenml_quant._compat import tf_keras

__all__ = ["dense_autoencoder", "regression_net"]

L = tf_keras.layers


def _dense_bn_relu(x, units: int, name: str):
    x = L.Dense(units, name=name)(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def dense_autoencoder(
    input_dim: int = 640, hidden: int = 128, bottleneck: int = 8, *, depth: int = 4
) -> tf_keras.Model:
    """The MLPerf Tiny anomaly-detection autoencoder, uncompiled; output shape = input shape.

    ``depth`` Dense(hidden) -> BN -> ReLU layers, a Dense(bottleneck) -> BN -> ReLU code,
    ``depth`` more Dense(hidden) -> BN -> ReLU layers, and a linear Dense(input_dim) output.
    The reference input is 5 frames x 128 log-mel bands flattened to 640 features; an
    example is anomalous when its reconstruction error is high.
    """
    inputs = L.Input((input_dim,), name="features")
    x = inputs
    for i in range(1, depth + 1):
        x = _dense_bn_relu(x, hidden, f"encoder{i}")
    x = _dense_bn_relu(x, bottleneck, "bottleneck")
    for i in range(1, depth + 1):
        x = _dense_bn_relu(x, hidden, f"decoder{i}")
    outputs = L.Dense(input_dim, name="reconstruction")(x)
    return tf_keras.Model(inputs, outputs, name="dense_autoencoder")


def regression_net(
    input_dim: int = 13, outputs: int = 1, hidden: Sequence[int] = (64, 32)
) -> tf_keras.Model:
    """An uncompiled MLP with ReLU hidden layers and ``outputs`` linear outputs.

    The default input has the 13 features of the Boston housing table, the classic small
    regression problem.
    """
    inputs = L.Input((input_dim,), name="features")
    x = inputs
    for i, units in enumerate(hidden, start=1):
        x = L.Dense(units, activation="relu", name=f"dense{i}")(x)
    prediction = L.Dense(outputs, name="prediction")(x)
    return tf_keras.Model(inputs, prediction, name="regression_net")
