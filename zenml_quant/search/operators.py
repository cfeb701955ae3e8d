"""The operators an edit turns a layer into, built as fresh tf_keras layers.

A replaced layer keeps its original name, so edit plans, the float-layer list of the int8
conversion and weight transfer all refer to the same names before and after an edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import tf, tf_keras
from .graph import Node

__all__ = [
    "ACTIVATION_TYPES",
    "CONV_TYPES",
    "POOL_TYPES",
    "WEIGHTED_TYPES",
    "current_activation",
    "edited_layer",
    "hard_swish",
]

CONV_TYPES = frozenset({"Conv2D", "SeparableConv2D", "DepthwiseConv2D"})
POOL_TYPES = frozenset({"MaxPooling2D", "AveragePooling2D"})
WEIGHTED_TYPES = CONV_TYPES | {"Dense"}
ACTIVATION_TYPES = frozenset({"ReLU", "Activation"})
#: Activations the search may swap for one another; others (softmax, linear, ...) stay.
_SWAPPABLE = frozenset({"relu", "relu6", "hard_swish", "tanh", "swish", "elu", "selu", "gelu"})
_KEEP = (
    "name",
    "trainable",
    "dtype",
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
)


@tf_keras.saving.register_keras_serializable(package="zenml_quant", name="hard_swish")
def hard_swish(x: Any) -> Any:
    """``x * relu6(x + 3) / 6`` (MobileNetV3); TFLite lowers it to its HARD_SWISH kernel."""
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def _activation_name(value: Any) -> str:
    if callable(value):
        value = getattr(value, "__name__", str(value))
    if isinstance(value, dict):  # a serialised registered function
        value = value.get("config", "")
    return str(value).split(">")[-1]


def current_activation(node: Node) -> str | None:
    """The swappable activation ``node`` applies (``relu``, ``relu6``, ...), else None."""
    config = node.layer.get_config()
    if node.class_name == "ReLU":
        if config.get("negative_slope") or config.get("threshold"):
            return None
        max_value = config.get("max_value")
        if max_value is None:
            return "relu"
        return "relu6" if float(max_value) == 6.0 else None
    if node.class_name == "Activation" or node.class_name in WEIGHTED_TYPES:
        name = _activation_name(config.get("activation", "linear"))
        return name if name in _SWAPPABLE else None
    return None


def _activation_value(name: str) -> Any:
    return hard_swish if name == "hard_swish" else name


def _activation_layer(name: str, layer_name: str) -> Any:
    if name == "relu":
        return tf_keras.layers.ReLU(name=layer_name)
    if name == "relu6":
        return tf_keras.layers.ReLU(max_value=6.0, name=layer_name)
    return tf_keras.layers.Activation(_activation_value(name), name=layer_name)


def _conv_base(node: Node, in_channels: int | None) -> dict[str, Any]:
    config = node.layer.get_config()
    base = {k: config[k] for k in _KEEP if k in config}
    if node.class_name == "DepthwiseConv2D":
        base.pop("kernel_initializer", None)
        base.pop("kernel_regularizer", None)
        filters = int(node.output_shape[-1] or (in_channels or 1))
    else:
        filters = int(config["filters"])
    base.update(
        filters=filters,
        kernel_size=tuple(config["kernel_size"]),
        strides=tuple(config["strides"]),
        padding=config["padding"],
        activation=config.get("activation", "linear"),
        use_bias=config.get("use_bias", True),
    )
    return base


def _scaled(count: int, factor: float | None) -> int:
    return count if factor is None else max(1, int(round(count * factor)))


def edited_layer(node: Node, edits: Mapping[str, Any], in_channels: int | None = None) -> Any:
    """A new layer for ``node`` with ``edits`` (``{op: value}``) applied, or None for identity.

    With no structural edit (only ``precision``, or nothing) the layer is a fresh copy of the
    original from its config. ``in_channels`` is the layer's (possibly edited) input channel
    count, needed when a depthwise convolution is replaced.
    """
    if "remove" in edits:
        return None
    layer = node.layer
    replace, scale = edits.get("replace"), edits.get("scale")
    activation, head = edits.get("activation"), edits.get("head")
    if head == "gap":
        return tf_keras.layers.GlobalAveragePooling2D(name=node.name)
    if node.class_name in ACTIVATION_TYPES and activation is not None:
        return _activation_layer(activation, node.name)
    if node.class_name in POOL_TYPES and replace in ("maxpool", "avgpool"):
        config = layer.get_config()
        cls = (
            tf_keras.layers.MaxPooling2D
            if replace == "maxpool"
            else tf_keras.layers.AveragePooling2D
        )
        return cls(
            pool_size=config["pool_size"],
            strides=config["strides"],
            padding=config["padding"],
            name=node.name,
        )
    if node.class_name in CONV_TYPES and (replace or scale or activation):
        return _edited_conv(node, replace, scale, activation, in_channels)
    if node.class_name == "Dense" and (scale or activation):
        config = layer.get_config()
        config["units"] = _scaled(int(config["units"]), scale)
        if activation is not None:
            config["activation"] = _activation_value(activation)
        return tf_keras.layers.Dense.from_config(config)
    return type(layer).from_config(layer.get_config())


def _edited_conv(
    node: Node,
    replace: str | None,
    scale: float | None,
    activation: str | None,
    in_channels: int | None,
) -> Any:
    if replace is None and node.class_name in ("Conv2D", "SeparableConv2D"):
        config = node.layer.get_config()  # keeps dilation, groups and the rest as they were
        config["filters"] = _scaled(int(config["filters"]), scale)
        if activation is not None:
            config["activation"] = _activation_value(activation)
        return type(node.layer).from_config(config)
    base = _conv_base(node, in_channels)
    base["filters"] = _scaled(base["filters"], scale)
    if activation is not None:
        base["activation"] = _activation_value(activation)
    kind = replace
    if kind in ("avgpool", "maxpool"):
        window = tuple(max(k, 1) for k in base["kernel_size"])
        cls = (
            tf_keras.layers.MaxPooling2D if kind == "maxpool" else tf_keras.layers.AveragePooling2D
        )
        return cls(
            pool_size=window, strides=base["strides"], padding=base["padding"], name=node.name
        )
    if kind is None:  # a depthwise convolution, only scaled or re-activated
        config = node.layer.get_config()
        if activation is not None:
            config["activation"] = base["activation"]
        return tf_keras.layers.DepthwiseConv2D.from_config(config)
    if kind.startswith("conv") or kind == "dilconv3":
        k = 3 if kind == "dilconv3" else int(kind[4:])
        base["kernel_size"] = (k, k)
        if kind == "dilconv3":
            base["dilation_rate"] = (2, 2)
        return tf_keras.layers.Conv2D(**base)
    if kind.startswith("sepconv"):
        k = int(kind[7:])
        base["kernel_size"] = (k, k)
        base.pop("kernel_initializer", None)
        base.pop("kernel_regularizer", None)
        return tf_keras.layers.SeparableConv2D(**base)
    raise ValueError(f"unknown replacement {replace!r}")
