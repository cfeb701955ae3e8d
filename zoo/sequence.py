"""Sequence classifiers: one recurrent layer (LSTM or GRU), or a stack of 1-D convolutions.

The recurrent ones matter because the TFLite converter's default path fails on Keras LSTM/GRU
(TensorListReserve); a tool must convert them through the fused RNN ops or say why not.
``classes=1`` gives a single sigmoid unit (a binary detector); otherwise the output is logits.
"""

from __future__ import annotations

from collections.abc import Sequence

from zenml_quant._compat import tf_keras

__all__ = ["conv1d_classifier", "gru_classifier", "lstm_classifier"]

L = tf_keras.layers


def _head(x, classes: int):
    if classes < 1:
        raise ValueError(f"classes={classes}: a classifier needs at least one output")
    activation = "sigmoid" if classes == 1 else None
    return L.Dense(classes, activation=activation, name="predictions")(x)


def _rnn_classifier(cell, timesteps: int, features: int, units: int, classes: int, kind: str):
    inputs = L.Input((timesteps, features), name="sequence")
    x = cell(units, name=kind)(inputs)  # the last step's output summarises the whole sequence
    return tf_keras.Model(inputs, _head(x, classes), name=f"{kind}_classifier")


def lstm_classifier(
    timesteps: int = 20, features: int = 8, classes: int = 4, units: int = 32
) -> tf_keras.Model:
    """An uncompiled ``Input(timesteps, features) -> LSTM(units) -> Dense(classes)`` model."""
    return _rnn_classifier(L.LSTM, timesteps, features, units, classes, "lstm")


def gru_classifier(
    timesteps: int = 20, features: int = 8, classes: int = 4, units: int = 32
) -> tf_keras.Model:
    """An uncompiled ``Input(timesteps, features) -> GRU(units) -> Dense(classes)`` model."""
    return _rnn_classifier(L.GRU, timesteps, features, units, classes, "gru")


def conv1d_classifier(
    timesteps: int = 64,
    features: int = 3,
    classes: int = 4,
    filters: Sequence[int] = (16, 32),
    *,
    kernel_size: int = 5,
) -> tf_keras.Model:
    """An uncompiled 1-D CNN: per width, Conv1D -> BN -> ReLU -> MaxPool; then GAP -> Dense.

    The shape of the accelerometer-style models of human-activity recognition: a few channels
    (``features``) over time, pooled over time at the end.
    """
    inputs = L.Input((timesteps, features), name="sequence")
    x = inputs
    for block, width in enumerate(filters, start=1):
        x = L.Conv1D(width, kernel_size, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = L.BatchNormalization(name=f"conv{block}_bn")(x)
        x = L.ReLU(name=f"conv{block}_relu")(x)
        x = L.MaxPooling1D(2, name=f"conv{block}_pool")(x)
    x = L.GlobalAveragePooling1D(name="global_pool")(x)
    return tf_keras.Model(inputs, _head(x, classes), name="conv1d_classifier")
