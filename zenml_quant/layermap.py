"""Which Keras layer each TFLite operator came from.

The converter names an operator's output tensor after the TensorFlow ops it fused, each a
``model/layer/Op`` path joined with ``;`` (a Conv2D with its BatchNorm and ReLU becomes one
``CONV_2D`` whose name mentions all three layers). Users think in Keras layers, and the TFLite
quantization debugger thinks in those tensor names, so every per-layer feature (sensitivity,
keeping layers in float) goes through this map.

An operator belongs to the earliest layer, in the model's own order, that its name mentions:
for ``conv -> bn -> relu`` that is the convolution, which owns the weights. An operator whose
name mentions no layer (the converter calls the last one ``StatefulPartitionedCall:0``) and that
produces a model output belongs to the model's output layer; anything else is labelled by
its operator, so it can still be profiled and kept in float.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._compat import is_keras3_model
from .profile import TFLiteGraph

__all__ = ["PASS_THROUGH_OPS", "LayerOps", "keras_layers", "map_layers"]

#: Operators whose int8 kernels reuse their input's scale and zero point: they move or select
#: values without rounding them, so keeping them alone in float cannot change a result.
PASS_THROUGH_OPS = frozenset(
    {
        "RESHAPE",
        "MAX_POOL_2D",
        "SQUEEZE",
        "EXPAND_DIMS",
        "TRANSPOSE",
        "GATHER",
        "SLICE",
        "STRIDED_SLICE",
        "PAD",
        "PADV2",
        "SPACE_TO_DEPTH",
        "DEPTH_TO_SPACE",
        "SPLIT",
        "SPLIT_V",
        "QUANTIZE",
        "DEQUANTIZE",
        "SHAPE",  # shape arithmetic is int32 and never quantized
        "PACK",
    }
)


@dataclass(frozen=True)
class LayerOps:
    """The TFLite operators that implement one Keras layer.

    ``nodes`` are the operators' output tensor names: the keys the TFLite quantization debugger
    uses to keep operators in float. ``quantizable`` is False when every operator is a pure data
    move (:data:`PASS_THROUGH_OPS`).
    """

    layer: str
    layer_type: str
    ops: tuple[int, ...]
    op_names: tuple[str, ...]
    nodes: tuple[str, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    @property
    def quantizable(self) -> bool:
        return any(name not in PASS_THROUGH_OPS for name in self.op_names)


def keras_layers(model: Any) -> list[tuple[str, str]]:
    """``(name, class name)`` of every layer in model order, nested models flattened."""
    found: list[tuple[str, str]] = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and getattr(layer, "layers", None):
            found.extend(keras_layers(layer))
        else:
            found.append((layer.name, type(layer).__name__))
    return found


def _output_layer(model: Any) -> str | None:
    names = list(getattr(model, "output_names", None) or [])
    if names:
        return str(names[0])
    layers = keras_layers(model)
    return layers[-1][0] if layers else None


def map_layers(graph: TFLiteGraph, model: Any) -> tuple[LayerOps, ...]:
    """Group the operators of ``graph`` (converted from ``model``) by Keras layer.

    Layers come back in the order of their first operator; layers that left no operator (e.g.
    BatchNorm folded into a convolution, Dropout) are absent.
    """
    layers = keras_layers(model)
    order = {name: i for i, (name, _) in enumerate(layers)}
    # Keras 3's SavedModel export re-enters every name scope once, so `conv` appears as
    # `conv_1`; prefer the stripped name there, the exact one for tf_keras.
    strip_suffix = is_keras3_model(model)
    types = dict(layers)
    output_layer = _output_layer(model)
    names = {t.tensor_index: t.name for t in graph.tensors}
    grouped: dict[str, list[int]] = {}
    for index, op in enumerate(graph.operators):
        owner = _owner(op.outputs, names, order, set(graph.outputs), output_layer, strip_suffix)
        grouped.setdefault(owner or f"op{index}:{op.op_name}", []).append(index)
    result = []
    for layer, op_indices in grouped.items():
        ops = [graph.operators[i] for i in op_indices]
        produced = {t for op in ops for t in op.outputs}
        result.append(
            LayerOps(
                layer=layer,
                layer_type=types.get(layer, "TFLite op"),
                ops=tuple(op_indices),
                op_names=tuple(op.op_name for op in ops),
                nodes=tuple(names.get(t, "") for op in ops for t in op.outputs),
                inputs=tuple(
                    dict.fromkeys(t for op in ops for t in op.inputs if t not in produced)
                ),
                outputs=tuple(t for op in ops for t in op.outputs),  # aligned with nodes
            )
        )
    return tuple(result)


def _owner(
    outputs: tuple[int, ...],
    names: dict[int, str],
    order: dict[str, int],
    graph_outputs: set[int],
    output_layer: str | None,
    strip_suffix: bool,
) -> str | None:
    mentioned = set()
    for t in outputs:
        for fused in names.get(t, "").split(";"):
            for part in re.split(r"[/:]", fused):
                stripped = re.sub(r"_\d+$", "", part)
                if strip_suffix and stripped in order:
                    mentioned.add(stripped)
                elif part in order:
                    mentioned.add(part)
    if mentioned:
        return min(mentioned, key=order.__getitem__)
    if output_layer is not None and graph_outputs.intersection(outputs):
        return output_layer
    return None
