"""Small image networks, each holding one structure a compression tool must handle.

- :func:`bn_after_pooling`: BatchNormalization after MaxPooling, which no convolution can absorb
  (tfmot's QAT refuses it; the converter keeps it as a separate multiply-add).
- :func:`rescaling_cnn` / :func:`normalization_cnn`: preprocessing inside the model, so the model
  takes raw 0-255 pixels (tfmot's QAT refuses these layers too).
- :func:`two_input_net`: two named inputs, an image and a feature vector, merged by concatenation.
"""

from __future__ import annotations

import numpy as np

from zenml_quant._compat import tf_keras

__all__ = ["bn_after_pooling", "normalization_cnn", "rescaling_cnn", "two_input_net"]

L = tf_keras.layers


def _conv_bn_relu(x, filters: int, name: str):
    x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def bn_after_pooling(
    input_shape: tuple[int, int, int] = (28, 28, 1), classes: int = 10, filters: int = 16
) -> tf_keras.Model:
    """An uncompiled CNN whose BatchNormalization layers follow MaxPooling, not a convolution.

    Conv -> ReLU -> MaxPool -> BN, twice, then a dense logits layer (no softmax).
    """
    inputs = L.Input(input_shape, name="input")
    x = inputs
    for stage, width in enumerate((filters, 2 * filters), start=1):
        x = L.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{stage}")(x)
        x = L.MaxPooling2D(2, name=f"pool{stage}")(x)
        x = L.BatchNormalization(name=f"pool{stage}_bn")(x)
    x = L.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = L.Dense(classes, name="logits")(x)
    return tf_keras.Model(inputs, outputs, name="bn_after_pooling")


def _raw_pixel_cnn(preprocess, input_shape, classes: int, filters: int, name: str):
    inputs = L.Input(input_shape, name="pixels")
    x = preprocess(inputs)
    x = _conv_bn_relu(x, filters, "block1")
    x = L.MaxPooling2D(2, name="block1_pool")(x)
    x = _conv_bn_relu(x, 2 * filters, "block2")
    x = L.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = L.Dense(classes, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name=name)


def rescaling_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 3), classes: int = 10, filters: int = 16
) -> tf_keras.Model:
    """An uncompiled softmax CNN that takes raw 0-255 pixels and scales them to [-1, 1] inside."""
    rescale = L.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")
    return _raw_pixel_cnn(rescale, input_shape, classes, filters, "rescaling_cnn")


def normalization_cnn(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    filters: int = 16,
    *,
    adapt_data: np.ndarray | None = None,
) -> tf_keras.Model:
    """An uncompiled softmax CNN with a per-channel Normalization layer adapted to raw pixels.

    Args:
        adapt_data: raw 0-255 images the Normalization layer learns its per-channel mean and
            variance from. ``None`` adapts it on 256 synthetic images from
            :func:`zoo.data.image_data` (seed 0), so the builder needs no arguments.
    """
    if adapt_data is None:
        from .data import image_data  # local: the builders otherwise need no data code

        adapt_data = image_data(256, 0, shape=input_shape, classes=classes, raw=True)["x_train"]
    normalize = L.Normalization(axis=-1, name="normalization")
    normalize.adapt(np.asarray(adapt_data, dtype=np.float32))
    return _raw_pixel_cnn(normalize, input_shape, classes, filters, "normalization_cnn")


def two_input_net(
    image_shape: tuple[int, int, int] = (16, 16, 1),
    meta_dim: int = 4,
    classes: int = 4,
    filters: int = 8,
    *,
    names: tuple[str, str] = ("image", "meta"),
) -> tf_keras.Model:
    """An uncompiled two-input classifier (logits): a conv branch and a dense branch, concatenated.

    The inputs are named ``names`` (``image`` and ``meta``), so data for it is keyed
    ``x_train_image`` and ``x_train_meta`` (see :func:`zoo.data.two_input_data`).
    """
    image_name, meta_name = names
    image = L.Input(image_shape, name=image_name)
    meta = L.Input((meta_dim,), name=meta_name)
    x = L.Conv2D(filters, 3, padding="same", activation="relu", name="image_conv1")(image)
    x = L.MaxPooling2D(2, name="image_pool")(x)
    x = L.Conv2D(2 * filters, 3, padding="same", activation="relu", name="image_conv2")(x)
    x = L.GlobalAveragePooling2D(name="image_features")(x)
    m = L.Dense(filters, activation="relu", name="meta_dense")(meta)
    merged = L.Concatenate(name="concat")([x, m])
    merged = L.Dense(2 * filters, activation="relu", name="head_dense")(merged)
    outputs = L.Dense(classes, name="logits")(merged)
    return tf_keras.Model([image, meta], outputs, name="two_input_net")
