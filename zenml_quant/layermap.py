"""Which Keras layer each TFLite operator came from.

The converter names an operator's output tensor after the TensorFlow ops it fused, each a
``model/layer/Op`` path joined with ``;`` (a Conv2D with its BatchNorm and ReLU becomes one
``CONV_2D`` whose name mentions all three layers). Users think in Keras layers, and the TFLite
quantization debugger thinks in those tensor names, so every per-layer feature (sensitivity,
keeping layers in float) goes through this map.

An operator belongs to the earliest layer, in the model's own order, that its name mentions,
preferring layers with weights: for ``conv -> bn -> relu`` that is the convolution, and for
MobileNet's ``ZeroPadding2D -> DepthwiseConv2D(strides=2)``, which the converter fuses into one
``DEPTHWISE_CONV_2D`` whose name mentions the padding first, it is the depthwise convolution.
Some operators name no layer:

- a fused recurrent op (``UNIDIRECTIONAL_SEQUENCE_LSTM``, or the ``WHILE`` loop of a GRU) is
  called ``tfl.unidirectional_sequence_lstm`` or ``while``; such ops go, in order, to the
  recurrent layers no operator names (two each for a Bidirectional wrapper);
- the one that produces a model output (``StatefulPartitionedCall:0``) belongs to the model's
  output layer;
- one that reads only what a single layer's operators wrote (the slice that picks an LSTM's
  last step) belongs to that layer.

Anything else is labelled by its operator, so it can still be profiled and kept in float.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ._compat import is_keras3_model
from .convert import fuses_to_lstm_op
from .profile import TFLiteGraph

__all__ = ["PASS_THROUGH_OPS", "RECURRENT_OPS", "LayerOps", "keras_layers", "map_layers"]

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
        "REVERSE_V2",
    }
)

#: Operators a recurrent Keras layer becomes; the converter names none of them after the layer.
RECURRENT_OPS = frozenset(
    {
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        "WHILE",
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
    return [(layer.name, type(layer).__name__) for layer in _leaf_layers(model)]


def _leaf_layers(model: Any) -> list[Any]:
    found: list[Any] = []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "InputLayer":
            continue
        if hasattr(layer, "layers") and getattr(layer, "layers", None):
            found.extend(_leaf_layers(layer))
        else:
            found.append(layer)
    return found


def _output_layers(graph: TFLiteGraph, model: Any) -> dict[int, str]:
    """The Keras layer behind each output tensor of ``graph`` (the converter renames output
    tensors ``StatefulPartitionedCall:<i>``, so only the signature tells them apart)."""
    names = list(getattr(model, "output_names", None) or [])
    if not names:
        layers = keras_layers(model)
        names = [layers[-1][0]] if layers else []
    if len(graph.outputs) == 1 or not graph.output_names:
        return {t: names[0] for t in graph.outputs} if names else {}
    owners = {}
    for tensor, key in graph.output_names.items():
        if key in names:
            owners[tensor] = key
        elif key.startswith("output_") and key[7:].isdigit() and int(key[7:]) < len(names):
            owners[tensor] = names[int(key[7:])]  # a traced function's outputs, in Keras order
    return owners


def _recurrent_kind(layer: Any) -> str | None:
    """``"lstm"`` for a layer the converter fuses into LSTM ops, ``"loop"`` for another
    recurrent layer, None for the rest (and for layers built unrolled, which leave plain ops)."""
    directions = [getattr(layer, "forward_layer", layer), getattr(layer, "backward_layer", layer)]
    classes = {cls.__name__ for rnn in directions for cls in type(rnn).__mro__}
    if "RNN" not in classes or all(getattr(rnn, "unroll", False) for rnn in directions):
        return None
    return "lstm" if fuses_to_lstm_op(layer) else "loop"


def map_layers(graph: TFLiteGraph, model: Any) -> tuple[LayerOps, ...]:
    """Group the operators of ``graph`` (converted from ``model``) by Keras layer.

    Layers come back in the order of their first operator; layers that left no operator (e.g.
    BatchNorm folded into a convolution, Dropout) are absent.
    """
    leaves = _leaf_layers(model)
    order = {layer.name: i for i, layer in enumerate(leaves)}
    types = {layer.name: type(layer).__name__ for layer in leaves}
    weighted = {layer.name for layer in leaves if layer.weights}
    # Keras 3's SavedModel export re-enters every name scope once, so `conv` appears as
    # `conv_1`; prefer the stripped name there, the exact one for tf_keras.
    strip_suffix = is_keras3_model(model)
    names = {t.tensor_index: t.name for t in graph.tensors}
    owners: list[str | None] = [
        _owner(op.outputs, names, order, weighted, strip_suffix) for op in graph.operators
    ]
    _assign_recurrent(graph, owners, leaves)
    output_layers = _output_layers(graph, model)
    producer: dict[int, str] = {}
    for index, op in enumerate(graph.operators):
        if owners[index] is None:
            owners[index] = next((output_layers[t] for t in op.outputs if t in output_layers), None)
        if owners[index] is None:
            sources = {producer[t] for t in op.inputs if t in producer}
            if len(sources) == 1:
                owners[index] = sources.pop()
        owner = owners[index]
        if owner is not None:
            producer.update(dict.fromkeys(op.outputs, owner))
    grouped: dict[str, list[int]] = {}
    for index, op in enumerate(graph.operators):
        grouped.setdefault(owners[index] or f"op{index}:{op.op_name}", []).append(index)
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


def _assign_recurrent(graph: TFLiteGraph, owners: list[str | None], leaves: list[Any]) -> None:
    """Give unnamed recurrent ops, in graph order, to the recurrent layers no op names.

    Fused LSTM ops go to LSTM layers; loops then go to the recurrent layers still without
    one (a GRU or SimpleRNN, or an LSTM that did not fuse). A layer unrolled for int8 leaves
    neither, and its plain ops carry its name.
    """
    lstm_ops = {"UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM"}
    # Some loops keep the layer's name (a SimpleRNN's `model/rnn/while`): those are placed.
    placed = Counter(
        owner
        for owner, op in zip(owners, graph.operators)
        if owner is not None and op.op_name in RECURRENT_OPS
    )
    wanted: dict[str, int] = {}
    for layer in leaves:
        if _recurrent_kind(layer) is not None:
            # A Bidirectional wrapper becomes one op per direction.
            count = 2 if hasattr(layer, "forward_layer") else 1
            wanted[layer.name] = max(count - placed[layer.name], 0)
    for fused in (True, False):
        queue = iter(
            [
                layer.name
                for layer in leaves
                if layer.name in wanted and (not fused or _recurrent_kind(layer) == "lstm")
                for _ in range(wanted[layer.name])
            ]
        )
        for index, op in enumerate(graph.operators):
            is_lstm = op.op_name in lstm_ops
            if owners[index] is None and op.op_name in RECURRENT_OPS and is_lstm == fused:
                owner = next(queue, None)
                owners[index] = owner
                if owner is not None:
                    wanted[owner] -= 1


def _owner(
    outputs: tuple[int, ...],
    names: dict[int, str],
    order: dict[str, int],
    weighted: set[str],
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
    if not mentioned:
        return None
    # The layer that computes (has weights) owns a fused op, not a padding or reshape fused
    # in front of it.
    computing = mentioned & weighted or mentioned
    return min(computing, key=order.__getitem__)
