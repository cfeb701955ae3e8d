"""MobileNetV2 (Sandler et al., 2018), built layer by layer with Keras' own layer names.

Built here rather than through ``tf_keras.applications.MobileNetV2`` so that the last
convolution's width is a knob (tests need a tiny head; Keras fixes it at 1280) and nothing
depends on the applications module. The layer names follow Keras' application model
(``Conv1``, ``expanded_conv_*``, ``block_N_expand``, ``block_N_pad``, ``block_N_depthwise``,
``block_N_project``, ``block_N_add``, ``Conv_1``, ``out_relu``, ``predictions``), because tools
and users key per-layer decisions on those names; at the same settings the layers, their
order and their weight shapes equal the applications model's (a test checks this).
"""

from __future__ import annotations

from collections.abc import Sequence

from zenml_quant._compat import tf_keras

__all__ = ["INVERTED_RESIDUAL_SETTINGS", "mobilenet_v2"]

L = tf_keras.layers

#: The paper's stages: (expansion t, output channels c at alpha 1, repeats n, first stride s).
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)

# Batch statistics as the paper trains them: a slow moving average and epsilon 1e-3.
_BN = {"epsilon": 1e-3, "momentum": 0.999}


def _make_divisible(value: float, divisor: int = 8) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10 % below it.

    The paper's width rule: channel counts stay multiples of 8 (what vector units like), and
    rounding down may not shrink a layer by more than 10 %.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _same_padding_for_stride_2(
    size: Sequence[int | None], kernel: int
) -> tuple[tuple[int, int], ...]:
    """Explicit zero padding that makes a stride-2 ``valid`` convolution match ``same``.

    TensorFlow's ``same`` puts the extra row and column at the bottom/right when the input size
    is even; padding by hand keeps that geometry while the convolution itself is ``valid``,
    which is how the reference model (and the TFLite files made from it) are laid out.
    """
    half = kernel // 2
    pads = []
    for dim in size:
        even = dim is None or dim % 2 == 0  # unknown sizes: assume the common even case
        pads.append((half - 1, half) if even else (half, half))
    return tuple(pads)


def _inverted_residual(x, *, expansion: int, filters: int, stride: int, block: int):
    """One inverted residual block: 1x1 expand, 3x3 depthwise, linear 1x1 project, skip."""
    in_channels = int(x.shape[-1])
    prefix = f"block_{block}_" if block else "expanded_conv_"
    inputs = x
    if block:  # the first block has expansion 1 and no expand convolution
        x = L.Conv2D(
            expansion * in_channels, 1, padding="same", use_bias=False, name=prefix + "expand"
        )(x)
        x = L.BatchNormalization(**_BN, name=prefix + "expand_BN")(x)
        x = L.ReLU(6.0, name=prefix + "expand_relu")(x)
    if stride == 2:
        x = L.ZeroPadding2D(_same_padding_for_stride_2(x.shape[1:3], 3), name=prefix + "pad")(x)
    x = L.DepthwiseConv2D(
        3,
        strides=stride,
        padding="same" if stride == 1 else "valid",
        use_bias=False,
        name=prefix + "depthwise",
    )(x)
    x = L.BatchNormalization(**_BN, name=prefix + "depthwise_BN")(x)
    x = L.ReLU(6.0, name=prefix + "depthwise_relu")(x)
    # The projection is linear: a ReLU on the narrow bottleneck destroys information (paper §3.2).
    x = L.Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + "project")(x)
    x = L.BatchNormalization(**_BN, name=prefix + "project_BN")(x)
    if stride == 1 and in_channels == filters:
        x = L.Add(name=prefix + "add")([inputs, x])
    return x


def mobilenet_v2(
    alpha: float = 0.35,
    input_shape: tuple[int, int, int] = (96, 96, 3),
    classes: int = 10,
    *,
    last_block_filters: int | None = None,
    max_repeats: int | None = None,
    dropout: float = 0.0,
) -> tf_keras.Model:
    """An uncompiled MobileNetV2 classifier with a softmax output.

    Args:
        alpha: width multiplier applied to every stage (0.35 is the smallest published one).
        input_shape: ``(height, width, channels)``; at least 32x32 so the four stride-2 stages
            and the stem leave at least a 1x1 map.
        classes: softmax outputs.
        last_block_filters: channels of the final 1x1 convolution. ``None`` is the paper's rule
            (1280, or 1280 * alpha above alpha 1); tests pass a few dozen to stay tiny.
        max_repeats: at most this many blocks per stage (``None``: the paper's 1-4). Blocks
            are numbered in order, so a shallower net still has ``block_N_pad`` before each
            stride-2 depthwise and ``block_N_add`` from the second block of a stage on; 2 keeps
            every kind of block in 12 instead of 17, which halves the time to trace for tests.
        dropout: dropout rate before the classifier (0 means no Dropout layer).

    Returns:
        A ``tf_keras`` functional model named ``mobilenetv2_<alpha>_<size>``.
    """
    if max_repeats is not None and max_repeats < 1:
        raise ValueError(f"max_repeats={max_repeats}: every stage needs at least one block")
    if alpha <= 0:
        raise ValueError(f"alpha={alpha}: the width multiplier must be positive")
    if min(input_shape[:2]) < 32:
        raise ValueError(f"input_shape={input_shape}: MobileNetV2 needs at least 32x32 inputs")
    inputs = L.Input(input_shape, name="input_1")
    x = L.Conv2D(
        _make_divisible(32 * alpha), 3, strides=2, padding="same", use_bias=False, name="Conv1"
    )(inputs)
    x = L.BatchNormalization(**_BN, name="bn_Conv1")(x)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    block = 0
    for expansion, channels, repeats, first_stride in INVERTED_RESIDUAL_SETTINGS:
        filters = _make_divisible(int(channels * alpha))
        for repeat in range(repeats if max_repeats is None else min(repeats, max_repeats)):
            stride = first_stride if repeat == 0 else 1
            x = _inverted_residual(
                x, expansion=expansion, filters=filters, stride=stride, block=block
            )
            block += 1
    if last_block_filters is None:
        last_block_filters = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = L.Conv2D(last_block_filters, 1, use_bias=False, name="Conv_1")(x)
    x = L.BatchNormalization(**_BN, name="Conv_1_bn")(x)
    x = L.ReLU(6.0, name="out_relu")(x)
    x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    if dropout:
        x = L.Dropout(dropout, name="dropout")(x)
    outputs = L.Dense(classes, activation="softmax", name="predictions")(x)
    return tf_keras.Model(inputs, outputs, name=f"mobilenetv2_{alpha:g}_{input_shape[0]}")
