"""What a model costs: parameters, MACs and weight bytes per layer, and peak activation memory.

The per-layer figures come from the Keras graph (both ``tf_keras`` and Keras 3 models); the
peak memory comes from the converted TFLite graph, because that is what runs on the device
(BatchNorm folded, activations fused, the real dtypes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ._compat import MODEL_TYPES, tf
from .errors import InvalidModelError

__all__ = [
    "LAYER_TABLE_COLUMNS",
    "TFLiteGraph",
    "TFLiteOp",
    "TFLiteTensor",
    "layer_macs",
    "layer_table",
    "parameter_counts",
    "live_activations",
    "peak_activation_bytes",
    "tflite_graph",
    "total_macs",
]

LAYER_TABLE_COLUMNS: tuple[str, ...] = (
    "layer",
    "type",
    "output_shape",
    "params",
    "macs",
    "weight_bytes_float32",
    "weight_bytes_int8",
)

# Matched against the names in a layer's MRO: the two flavours name their base classes
# differently (tf_keras ``Conv``, Keras 3 ``BaseConv``) and in tf_keras DepthwiseConv2D and
# Conv2DTranspose subclass Conv2D, so the specific kinds are tested first.
_KINDS: tuple[tuple[str, frozenset[str]], ...] = (
    ("separable", frozenset({"SeparableConv", "BaseSeparableConv"})),
    ("depthwise", frozenset({"DepthwiseConv", "BaseDepthwiseConv"})),
    (
        "transpose",
        frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "BaseConvTranspose"}),
    ),
    ("conv", frozenset({"Conv", "BaseConv"})),
    ("dense", frozenset({"Dense"})),
)


def _mro_names(obj: object) -> set[str]:
    return {cls.__name__ for cls in type(obj).__mro__}


def _unwrap(layer: Any) -> Any:
    # QuantizeWrapper and TimeDistributed compute what the wrapped layer computes; the time
    # axis of TimeDistributed lands among the "spatial" dims below, which counts it correctly.
    if "Wrapper" in _mro_names(layer) and hasattr(layer, "layer"):
        return _unwrap(layer.layer)
    return layer


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tf.TensorShape(tensor.shape).as_list())


def _graph_nodes(model: Any) -> list[tuple[Any, list[Any], list[Any]]]:
    """(layer, input tensors, output tensors) of every call inside ``model``'s own graph."""
    graph = getattr(model, "_functional", None) or model  # Keras 3 Sequential wraps a Functional
    by_depth = getattr(graph, "_nodes_by_depth", None)
    if not by_depth:
        raise InvalidModelError(
            f"Model {model.name!r} has no layer graph to profile: use a Sequential or Functional "
            "model built on a known input shape (start it with an Input layer)."
        )
    calls = []
    for depth in sorted(by_depth, reverse=True):  # deepest first = input to output
        for node in by_depth[depth]:
            if hasattr(node, "operation"):  # Keras 3 Node
                calls.append((node.operation, list(node.input_tensors), list(node.outputs)))
            else:  # tf_keras Node
                calls.append((node.layer, list(node.keras_inputs), tf.nest.flatten(node.outputs)))
    return calls


def layer_macs(
    layer: Any, in_shape: tuple[int | None, ...], out_shape: tuple[int | None, ...]
) -> int:
    """Multiply-accumulates of one call of ``layer`` on one example (0 for layers without)."""
    inner = _unwrap(layer)
    names = _mro_names(inner)
    kind = next((kind for kind, bases in _KINDS if names & bases), None)
    if kind is None:
        return 0
    if None in in_shape[1:] or None in out_shape[1:]:
        raise InvalidModelError(
            f"Layer {layer.name!r} has an unknown dimension (input {in_shape}, output "
            f"{out_shape}): give the model a fixed input shape to count its MACs."
        )
    # Past the check only the batch axis may be None: count one example.
    ins = tuple(1 if d is None else int(d) for d in in_shape)
    outs = tuple(1 if d is None else int(d) for d in out_shape)
    if kind == "dense":
        return math.prod(ins[1:-1]) * ins[-1] * int(inner.units)
    if getattr(inner, "data_format", "channels_last") == "channels_first":
        in_ch, in_sp, out_ch, out_sp = ins[1], ins[2:], outs[1], outs[2:]
    else:
        in_ch, in_sp, out_ch, out_sp = ins[-1], ins[1:-1], outs[-1], outs[1:-1]
    kernel = math.prod(inner.kernel_size)
    if kind == "transpose":  # each input pixel scatters a kernel-sized patch to every out channel
        return math.prod(in_sp) * in_ch * kernel * out_ch
    if kind == "depthwise":
        return math.prod(out_sp) * in_ch * int(inner.depth_multiplier) * kernel
    if kind == "separable":
        mid = in_ch * int(inner.depth_multiplier)
        return math.prod(out_sp) * (mid * kernel + mid * out_ch)
    groups = int(getattr(inner, "groups", 1) or 1)
    return math.prod(out_sp) * out_ch * kernel * (in_ch // groups)


def _weight_bytes(layer: Any) -> tuple[int, int, int]:
    """(params, float32 bytes, int8 bytes) of every weight of ``layer``, trainable or not."""
    params = int8 = 0
    for w in layer.weights:
        n = math.prod(int(d) for d in tuple(w.shape))
        name = (getattr(w, "path", None) or w.name).split("/")[-1].split(":")[0]
        params += n
        # TFLite keeps biases in int32 so they can be added to the int32 accumulator exactly.
        int8 += n * (4 if "bias" in name else 1)
    return params, 4 * params, int8


def _rows(model: Any, prefix: str, calls_of_model: int) -> list[dict[str, Any]]:
    calls: dict[int, list[tuple[list[Any], list[Any]]]] = {}
    for layer, ins, outs in _graph_nodes(model):
        calls.setdefault(id(layer), []).append((ins, outs))
    rows = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        own = calls.get(id(layer), [])
        if not own:
            raise InvalidModelError(
                f"Layer {layer.name!r} of model {model.name!r} is not connected to its graph; "
                "profile a model whose every layer is called on the model's inputs."
            )
        if isinstance(layer, MODEL_TYPES) and hasattr(layer, "layers"):
            # A nested model (e.g. a pretrained backbone): list its layers, not one opaque row.
            rows += _rows(layer, f"{prefix}{layer.name}/", calls_of_model * len(own))
            continue
        shapes = [[_shape(t) for t in outs] for _, outs in own]
        texts = {str(s[0]) if len(s) == 1 else str(s) for s in shapes}  # several outputs: a list
        # A shared layer runs once per call, so its MACs add up over its calls.
        macs = sum(
            layer_macs(layer, _shape(ins[0]), _shape(outs[0])) if ins and outs else 0
            for ins, outs in own
        )
        params, f32, i8 = _weight_bytes(layer)
        shape = texts.pop() if len(texts) == 1 else "multiple"
        name, kind = prefix + layer.name, type(layer).__name__
        values = (name, kind, shape, params, macs * calls_of_model, f32, i8)
        rows.append(dict(zip(LAYER_TABLE_COLUMNS, values)))
    return rows


def layer_table(model: Any) -> pd.DataFrame:
    """One row per layer of a Sequential or Functional model (``tf_keras`` or Keras 3).

    Columns: ``layer``, ``type``, ``output_shape`` (e.g. ``"(None, 26, 26, 32)"``, or
    ``"multiple"`` for a shared layer called on different shapes), ``params`` (trainable and
    not, e.g. BatchNorm moving statistics), ``macs``, ``weight_bytes_float32`` (4 bytes a
    weight) and ``weight_bytes_int8`` (1 byte a weight, 4 for biases, which TFLite keeps in
    int32). InputLayer rows are left out; a nested model is expanded into its layers, named
    ``outer/inner``.

    ``macs`` are multiply-accumulates for one example (batch 1), counted for Dense (applied to
    every position of an N-D input), Conv1D/2D/3D (with ``groups``), DepthwiseConv1D/2D,
    SeparableConv1D/2D and Conv1D/2D/3DTranspose, also inside a wrapper (TimeDistributed,
    QuantizeWrapper). Every other layer counts 0: BatchNorm is folded into the preceding
    conv/dense by the TFLite converter, pooling and activations are comparisons or element-wise
    ops rather than MACs, and recurrent and attention layers are not modelled.

    Raises:
        InvalidModelError: the model has no layer graph (subclassed, or a Sequential without an
            input shape), or a counted layer has an unknown non-batch dimension.
    """
    if not isinstance(model, MODEL_TYPES):
        raise InvalidModelError(
            f"layer_table needs a tf_keras or Keras 3 model, got {type(model).__name__}."
        )
    frame = pd.DataFrame(_rows(model, "", 1), columns=list(LAYER_TABLE_COLUMNS))
    numeric = list(LAYER_TABLE_COLUMNS[3:])
    frame[numeric] = frame[numeric].astype("int64")
    return frame


def total_macs(model: Any) -> int:
    """Multiply-accumulates of one forward pass at batch 1: the sum of :func:`layer_table`."""
    return int(layer_table(model)["macs"].sum())


def parameter_counts(model: Any) -> tuple[int, int]:
    """``(total, trainable)`` parameters; total includes non-trainable ones (BatchNorm stats)."""

    def count(weights: list[Any]) -> int:
        unique = {id(w): w for w in weights}.values()  # a shared weight is stored once
        return sum(math.prod(int(d) for d in tuple(w.shape)) for w in unique)

    return count(model.weights), count(model.trainable_weights)


class TFLiteOp(NamedTuple):
    """One operator: its name (``"CONV_2D"``) and the indices of its input and output tensors."""

    op_name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class TFLiteTensor(NamedTuple):
    """One tensor of the main subgraph; ``nbytes`` is at batch 1 with the tensor's own dtype."""

    tensor_index: int  # not `index`: that would shadow tuple.index
    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    is_constant: bool


@dataclass(frozen=True)
class TFLiteGraph:
    """The main subgraph of a TFLite model.

    ``operators`` are in execution order; optional inputs that are absent (index -1 in the
    flatbuffer) are left out of their ``inputs``. ``tensors`` are in index order. Constants
    (weights, biases, shape operands) are op inputs that are neither model inputs nor produced
    by an op; activations are model inputs and op outputs; a tensor that is neither is a
    kernel's scratch buffer (e.g. a convolution's im2col). ``inputs`` and ``outputs`` are the
    model's input and output tensor indices; ``output_names`` the signature's name of each
    output tensor (the Keras output layer's, or ``output_<i>`` from a traced function), read
    only when there are several.
    """

    operators: tuple[TFLiteOp, ...]
    tensors: tuple[TFLiteTensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    output_names: dict[int, str] = field(default_factory=dict)


def _interpreter(content: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # Without default delegates: XNNPACK would append a DELEGATE node that re-lists the ops
        # it took over, and every tensor would then be counted twice.
        interpreter = Interpreter(
            model_content=content,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()  # fixes dynamic dims (batch) to 1
    except (ValueError, RuntimeError) as exc:
        raise InvalidModelError(
            f"The TFLite interpreter cannot load this model ({exc}); check that the bytes are a "
            "complete .tflite flatbuffer with built-in ops only."
        ) from exc
    return interpreter


def tflite_graph(content: bytes) -> TFLiteGraph:
    """Operators and tensors of a TFLite flatbuffer, read through the LiteRT interpreter.

    Raises:
        InvalidModelError: the interpreter cannot load or allocate the model.
    """
    interpreter = _interpreter(content)
    ops = tuple(
        TFLiteOp(
            str(op["op_name"]),
            tuple(int(i) for i in op["inputs"] if i >= 0),
            tuple(int(i) for i in op["outputs"] if i >= 0),
        )
        for op in interpreter._get_ops_details()
    )
    inputs = tuple(int(d["index"]) for d in interpreter.get_input_details())
    outputs = tuple(int(d["index"]) for d in interpreter.get_output_details())
    output_names = {}
    for key in interpreter.get_signature_list() if len(outputs) > 1 else ():
        runner_outputs = interpreter.get_signature_runner(key).get_output_details()
        output_names.update({int(d["index"]): str(name) for name, d in runner_outputs.items()})
    produced = {t for op in ops for t in op.outputs}
    read = {t for op in ops for t in op.inputs}
    details = {int(d["index"]): d for d in interpreter.get_tensor_details()}
    # get_tensor_details silently skips tensors it cannot describe; ask for the ones ops use.
    for index in (read | produced) - details.keys():
        try:
            details[index] = interpreter._get_tensor_details(index, 0)
        except ValueError:
            continue
    tensors = []
    for index in sorted(details):
        d = details[index]
        shape = tuple(int(s) for s in d["shape"])
        dtype = np.dtype(d["dtype"])
        tensors.append(
            TFLiteTensor(
                index,
                str(d["name"]),
                shape,
                dtype.name,
                math.prod(shape) * dtype.itemsize,
                index in read and index not in produced and index not in inputs,
            )
        )
    return TFLiteGraph(ops, tuple(tensors), inputs, outputs, output_names)


def peak_activation_bytes(content: bytes | TFLiteGraph) -> int:
    """Estimated peak activation memory, in bytes, of one batch-1 inference of a TFLite model.

    Walks the operators in execution order. An activation (a model input or an op's output)
    lives from the op that produces it (from the start, for model inputs) through the last op
    that reads it; model outputs live to the end. At each op the live activations, this op's
    outputs included, are summed at their own dtype's size (so an int8 model needs about a
    quarter of its float32 twin); the peak is the largest sum.

    This is the lower bound that a memory planner reaches without in-place reuse (the TFLite
    arena can do slightly better by aliasing e.g. a RESHAPE's output to its input, and needs
    a little more for alignment and kernel scratch buffers). It excludes the weights, which
    stay in the flatbuffer, and the interpreter's own overhead. Only the main subgraph is
    walked: the bodies of control-flow ops (WHILE, IF) are not.

    Raises:
        InvalidModelError: the interpreter cannot load or allocate the model.
    """
    graph = content if isinstance(content, TFLiteGraph) else tflite_graph(content)
    nbytes = {t.tensor_index: t.nbytes for t in graph.tensors}
    return max(sum(nbytes.get(t, 0) for t in live) for live in live_activations(graph))


def live_activations(graph: TFLiteGraph) -> list[set[int]]:
    """The activations (tensor indices) held in memory at each operator, in execution order.

    An activation (a model input or an op's output) lives from the op that produces it (from
    the start, for model inputs) through the last op that reads it; model outputs live to the
    end. Constants are not activations.
    """
    start = dict.fromkeys(graph.inputs, 0)  # activation -> first op it occupies memory at
    end: dict[int, int] = {}  # activation -> last op that reads it
    for i, op in enumerate(graph.operators):
        end.update((t, i) for t in op.inputs if t in start)  # constants never enter start
        for t in op.outputs:
            start.setdefault(t, i)
    last = max(len(graph.operators) - 1, 0)
    end.update(dict.fromkeys(graph.outputs, last))
    return [
        {t for t, first in start.items() if first <= i <= end.get(t, first)}
        for i in range(last + 1)
    ]
