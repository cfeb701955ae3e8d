"""ResNet-8, the MLPerf Tiny image-classification reference network for 32x32x3 CIFAR-10.

The architecture (He et al.'s residual blocks, as MLPerf Tiny sizes them): a 3x3 stem, three
stages of one residual block each, the second and third halving the map with a strided 3x3
convolution and a strided 1x1 convolution on the shortcut, BatchNorm and ReLU after every
convolution but the block's last (whose ReLU follows the addition), average pooling over the
whole 8x8 map, and a softmax dense layer. At the reference widths (16, 32, 64) it has 78,666
parameters. The reference trains with L2 weight decay 1e-4, He-normal initialisation and
one-hot labels under ``categorical_crossentropy``; :func:`resnet8_reference` compiles it so.
"""

from __future__ import annotations

from collections.abc import Sequence

from zenml_quant._compat import tf_keras

__all__ = ["resnet8", "resnet8_reference"]

L = tf_keras.layers


def resnet8(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    filters: Sequence[int] = (16, 32, 64),
    *,
    weight_decay: float = 1e-4,
) -> tf_keras.Model:
    """An uncompiled ResNet-8 with a softmax output; ``filters`` are the three stage widths.

    The stem has the first stage's width. Stages after the first use stride 2 and a 1x1
    convolution on the shortcut; the first keeps the identity shortcut, so the stem and the
    first stage must have the same width (they do, by construction).
    """
    if len(filters) != 3:
        raise ValueError(f"filters={tuple(filters)}: ResNet-8 has exactly three stage widths")
    regularizer = tf_keras.regularizers.l2(weight_decay) if weight_decay else None

    def conv(x, width: int, kernel: int, stride: int, name: str):
        return L.Conv2D(
            width,
            kernel,
            strides=stride,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=name,
        )(x)

    inputs = L.Input(input_shape, name="input")
    x = conv(inputs, filters[0], 3, 1, "stem_conv")
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    for stage, width in enumerate(filters, start=1):
        stride = 1 if stage == 1 else 2
        prefix = f"stage{stage}_"
        y = conv(x, width, 3, stride, prefix + "conv1")
        y = L.BatchNormalization(name=prefix + "bn1")(y)
        y = L.ReLU(name=prefix + "relu1")(y)
        y = conv(y, width, 3, 1, prefix + "conv2")
        y = L.BatchNormalization(name=prefix + "bn2")(y)
        if stride != 1:
            x = conv(x, width, 1, stride, prefix + "shortcut")
        x = L.Add(name=prefix + "add")([x, y])
        x = L.ReLU(name=prefix + "relu2")(x)
    # Pool over the whole remaining map (8x8 for 32x32 inputs), as the reference does.
    x = L.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]), name="avg_pool")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(
        classes, activation="softmax", kernel_initializer="he_normal", name="predictions"
    )(x)
    return tf_keras.Model(inputs, outputs, name="resnet8")


def resnet8_reference(
    input_shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    filters: Sequence[int] = (16, 32, 64),
    *,
    learning_rate: float = 1e-3,
) -> tf_keras.Model:
    """:func:`resnet8` compiled like the MLPerf Tiny reference: Adam, one-hot labels.

    The loss is ``categorical_crossentropy`` (labels must be one-hot, see
    :func:`zoo.data.one_hot`), so a tool that reuses the model's compiled loss meets the
    one-hot case users bring.
    """
    model = resnet8(input_shape, classes, filters)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
