"""DS-CNN, the MLPerf Tiny keyword-spotting reference network (Zhang et al., "Hello Edge").

Input: 49 frames x 10 MFCC coefficients x 1 channel. A 10x4 convolution with stride 2 (the
kernel spans 10 frames of time and 4 coefficients), then four depthwise-separable blocks
(3x3 depthwise, 1x1 pointwise, each followed by BatchNorm and ReLU), average pooling over the
whole remaining map, and a softmax dense layer over the 12 classes (10 words, silence,
unknown). The reference trains with dropout 0.2 after the stem and 0.4 before pooling, and L2
weight decay 1e-4 on the convolutions.
"""

from __future__ import annotations

from zenml_quant._compat import tf_keras

__all__ = ["ds_cnn"]

L = tf_keras.layers


def ds_cnn(
    input_shape: tuple[int, int, int] = (49, 10, 1),
    classes: int = 12,
    filters: int = 64,
    *,
    blocks: int = 4,
    weight_decay: float = 1e-4,
) -> tf_keras.Model:
    """An uncompiled DS-CNN with a softmax output; ``filters`` is every layer's width."""
    regularizer = tf_keras.regularizers.l2(weight_decay) if weight_decay else None
    inputs = L.Input(input_shape, name="mfcc")
    x = L.Conv2D(
        filters,
        (10, 4),
        strides=2,
        padding="same",
        kernel_regularizer=regularizer,
        name="stem_conv",
    )(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    x = L.Dropout(0.2, name="stem_dropout")(x)
    for block in range(1, blocks + 1):
        prefix = f"ds{block}_"
        x = L.DepthwiseConv2D(
            3, padding="same", depthwise_regularizer=regularizer, name=prefix + "depthwise"
        )(x)
        x = L.BatchNormalization(name=prefix + "depthwise_bn")(x)
        x = L.ReLU(name=prefix + "depthwise_relu")(x)
        x = L.Conv2D(filters, 1, kernel_regularizer=regularizer, name=prefix + "pointwise")(x)
        x = L.BatchNormalization(name=prefix + "pointwise_bn")(x)
        x = L.ReLU(name=prefix + "pointwise_relu")(x)
    x = L.Dropout(0.4, name="head_dropout")(x)
    # One average over the whole map (25x5 for the reference input): the net is shift-tolerant
    # in time, which is what lets it find a word anywhere in the one-second window.
    x = L.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]), name="avg_pool")(x)
    x = L.Flatten(name="flatten")(x)
    outputs = L.Dense(classes, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name="ds_cnn")
