"""GPTQ rounding of low-bit weights for convolution and dense operators of a float ``.tflite``.

Rounding every int4 weight to its nearest grid point throws away what the layer's inputs say
about which errors matter. GPTQ (Frantar et al., 2022; the Optimal Brain Surgeon update of
Hassibi and Stork) rounds one input column at a time and moves the not-yet-rounded weights so
that the layer's output on real inputs changes as little as possible, using the Hessian
``H = X^T X`` of the layer's inputs ``X`` seen on calibration data.

ai-edge-quantizer implements GPTQ for fully connected operators only, and its static-int4 path
produced a file at chance here; convolutions are where ResNets keep their weights. So this
module does the rounding itself, on the float file's BatchNorm-folded weights: a convolution
is a dense layer over its input patches (``tf.image.extract_patches`` orders a patch as
``[kh, kw, cin]``, which is TFLite's ``[cout, kh, kw, cin]`` kernel flattened per output).

The rounded weights are written back into the float file *on* ai-edge-quantizer's int4 grid
(per output channel, scale ``max|w| / 7``, codes -7..7): the weight holding each channel's
largest magnitude is kept fixed, so the quantizer recomputes the same scale and stores the
GPTQ codes unchanged. Depthwise kernels are left to plain rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["GPTQ_OPS", "WeightedOp", "gptq_round", "hessians", "replace_weights", "weighted_ops"]

#: Operators whose weights GPTQ rounds here (a Keras Conv1D converts to CONV_2D).
GPTQ_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED"})


@dataclass(frozen=True)
class WeightedOp:
    """A convolution or dense operator of a float ``.tflite``: what GPTQ needs to know."""

    index: int
    op_name: str
    input_tensor: int
    weight_tensor: int
    weight_shape: tuple[int, ...]
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    padding: str = "VALID"

    @property
    def columns(self) -> int:
        """The length of one output channel's weight row (``kh * kw * cin``, or ``in``)."""
        return int(np.prod(self.weight_shape[1:]))


def weighted_ops(content: bytes, indices: Iterable[int] | None = None) -> dict[int, WeightedOp]:
    """The :data:`GPTQ_OPS` operators of ``content``'s main graph (of ``indices`` if given),
    by operator index, with constant float32 weights that only that operator reads."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    codes = {v: k for k, v in vars(flatbuffer_utils.schema_fb.BuiltinOperator).items()}
    float32 = flatbuffer_utils.schema_fb.TensorType.FLOAT32
    padding = {v: k for k, v in vars(flatbuffer_utils.schema_fb.Padding).items()}
    readers: dict[int, int] = {}
    for op in graph.operators:
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    wanted = set(range(len(graph.operators)) if indices is None else indices)
    found = {}
    for i in sorted(wanted):
        op = graph.operators[i]
        code = model.operatorCodes[op.opcodeIndex]
        name = codes.get(max(code.builtinCode, code.deprecatedBuiltinCode))
        if name not in GPTQ_OPS or len(op.inputs) < 2:
            continue
        weight = graph.tensors[op.inputs[1]]
        data = model.buffers[weight.buffer].data if weight.buffer else None
        if weight.type != float32 or data is None or len(data) == 0 or readers[op.inputs[1]] > 1:
            continue
        options = op.builtinOptions
        extra = {}
        if name == "CONV_2D":
            extra = {
                "strides": (int(options.strideH), int(options.strideW)),
                "dilations": (int(options.dilationHFactor), int(options.dilationWFactor)),
                "padding": padding[options.padding],
            }
        found[i] = WeightedOp(
            i,
            name,
            int(op.inputs[0]),
            int(op.inputs[1]),
            tuple(int(d) for d in weight.shape),
            **extra,
        )
    return found


def _rows(op: WeightedOp, x: np.ndarray) -> np.ndarray:
    """The operator's input ``x`` (one batch) as rows of ``op.columns`` values."""
    if op.op_name == "FULLY_CONNECTED":
        return x.reshape(-1, op.columns)
    import tensorflow as tf

    _, kh, kw, _ = op.weight_shape
    patches = tf.image.extract_patches(
        x.astype(np.float32),
        sizes=[1, kh, kw, 1],
        strides=[1, *op.strides, 1],
        rates=[1, *op.dilations, 1],
        padding=op.padding,
    )
    return patches.numpy().reshape(-1, op.columns)


def hessians(
    content: bytes, ops: Mapping[int, WeightedOp], samples: Iterable[Mapping[str, np.ndarray]]
) -> dict[int, np.ndarray]:
    """``X^T X / rows`` of each operator's inputs over ``samples`` (signature inputs by name),
    run through the float model ``content``."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # its "for debugging" notice: intermediate inputs are the point
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    (key,) = list(interpreter.get_signature_list())[:1]
    runner = interpreter.get_signature_runner(key)
    sums = {i: np.zeros((op.columns, op.columns)) for i, op in ops.items()}
    rows = dict.fromkeys(ops, 0)
    for sample in samples:
        runner(**sample)
        for i, op in ops.items():
            x = _rows(op, interpreter.get_tensor(op.input_tensor)).astype(np.float64)
            sums[i] += x.T @ x
            rows[i] += len(x)
    return {i: sums[i] / max(rows[i], 1) for i in ops}


def gptq_round(
    weights: np.ndarray, hessian: np.ndarray, *, bits: int = 4, damp: float = 0.01
) -> np.ndarray:
    """The integer codes GPTQ gives ``weights`` (``[out, columns]``) on the symmetric
    per-row grid ``k * max|w| / (2**(bits-1) - 1)``, ``|k|`` at most that maximum.

    Columns are rounded in order of decreasing Hessian diagonal (GPTQ's "act order"), each
    rounding error spread over the columns not yet rounded. The weight holding each row's
    largest magnitude is never moved, so it keeps code ``±qmax`` and the row's scale holds.
    """
    w0 = np.asarray(weights, dtype=np.float64)
    qmax = 2 ** (bits - 1) - 1
    scale = np.maximum(np.abs(w0).max(axis=1), 1e-9) / qmax
    h = np.array(hessian, dtype=np.float64)
    dead = np.diag(h) == 0  # inputs that are always zero: nothing to compensate through them
    h[dead, dead] = 1.0
    h[np.diag_indices_from(h)] += damp * np.mean(np.diag(h))
    order = np.argsort(-np.diag(h), kind="stable")
    h = h[np.ix_(order, order)]
    w = w0[:, order].copy()
    original = w.copy()
    pin_col = np.argmax(np.abs(w), axis=1)
    rows = np.arange(len(w))
    # Upper Cholesky factor of H^-1: row i holds how column i's error moves the later columns.
    u = np.linalg.cholesky(np.linalg.inv(h)).T
    codes = np.zeros_like(w)
    for i in range(w.shape[1]):
        q = np.clip(np.round(w[:, i] / scale), -qmax, qmax)
        codes[:, i] = q
        err = (w[:, i] - q * scale) / u[i, i]
        w[:, i + 1 :] -= np.outer(err, u[i, i + 1 :])
        later = pin_col > i
        w[rows[later], pin_col[later]] = original[rows[later], pin_col[later]]
    result = np.empty_like(codes)
    result[:, order] = codes
    return result.astype(np.int8)


def replace_weights(content: bytes, weights: Mapping[int, np.ndarray]) -> bytes:
    """``content`` with the float32 constant tensors ``weights`` (tensor index -> values of the
    tensor's shape) replaced."""
    if not weights:
        return content
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    tensors = model.subgraphs[0].tensors
    for index, values in weights.items():
        tensor = tensors[index]
        values = np.asarray(values, dtype="<f4").reshape(tuple(tensor.shape))
        model.buffers[tensor.buffer].data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
