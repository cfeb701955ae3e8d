"""A model built with Keras 3 (``import keras``), since users bring Keras 3 ``.keras`` files.

Everything else in the zoo is ``tf_keras`` (Keras 2). The package loads Keras 3 files with
``keras.saving.load_model`` (:func:`zenml_quant.models.load_model` tells the flavours apart by
the version recorded in the file), and rebuilds them as tf_keras for QAT
(:mod:`zenml_quant.keras3_rebuild`), so this model uses only built-in layers that have a
tf_keras twin.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zenml_quant._compat import keras3

__all__ = ["keras3_cnn", "save_keras3_cnn"]


def _require_keras3() -> Any:
    if keras3 is None:
        raise RuntimeError(
            "Keras 3 is not installed (import keras does not give keras 3.x): "
            "pip install 'keras>=3' to build the Keras 3 zoo model"
        )
    return keras3


def keras3_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 3), classes: int = 10, filters: int = 16
) -> Any:
    """An uncompiled Keras 3 functional CNN with a softmax output.

    Conv -> BN -> ReLU -> MaxPool, Conv -> BN -> ReLU, global average pooling, Dense.
    Returns a ``keras.Model`` (Keras 3), not a ``tf_keras`` one.
    """
    keras = _require_keras3()
    layers = keras.layers
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(2 * filters, 3, padding="same", use_bias=False, name="conv2")(x)
    x = layers.BatchNormalization(name="conv2_bn")(x)
    x = layers.ReLU(name="conv2_relu")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="keras3_cnn")


def save_keras3_cnn(path: str | os.PathLike[str], model: Any | None = None, **kwargs: Any) -> Path:
    """Write ``model`` (or a fresh :func:`keras3_cnn` built with ``kwargs``) to a ``.keras`` file.

    The file is written by Keras 3 itself, so it records Keras 3's version the way a user's
    file does. Returns the path.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: Keras 3 writes the native format, whose suffix is .keras")
    model = keras3_cnn(**kwargs) if model is None else model
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path
