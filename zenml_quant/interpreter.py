"""Running TFLite flatbuffers with the ai-edge-litert interpreter.

Inputs are quantized with the model's own input scale and zero point, and outputs dequantized
with the output's, so one code path serves every mode.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from .inputs import input_names, is_multi, tflite_input_order
from .types import Latency, TensorDetails, TFLiteModel

__all__ = ["make_interpreter", "measure_latency", "run_tflite", "tensor_details"]


def make_interpreter(content: bytes, *, num_threads: int = 1) -> Interpreter:
    """An allocated interpreter over ``content`` using ``num_threads`` CPU threads."""
    interpreter = Interpreter(model_content=content, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


def tensor_details(detail: dict[str, Any]) -> TensorDetails:
    """Our record of one entry of ``get_input_details()`` / ``get_output_details()``."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorDetails(
        name=str(detail["name"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail["quantization"]
    if scale == 0.0 or not np.issubdtype(dtype, np.integer):
        return x.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def _dequantize(q: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if scale == 0.0 or not np.issubdtype(q.dtype, np.integer):
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - zero_point) * scale


def _slots(interpreter: Interpreter, x: np.ndarray) -> list[tuple[dict[str, Any], str]]:
    """Each input tensor's details with the field of ``x`` it takes (``""``: all of ``x``)."""
    details = interpreter.get_input_details()
    if not is_multi(x):
        return [(details[0], "")]
    return list(zip(details, tflite_input_order(details, input_names(x))))


def _column(x: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(x[name]) if name else x


def _allocate(
    interpreter: Interpreter, x: np.ndarray, batch: int
) -> list[tuple[dict[str, Any], str]]:
    """Resize every input to ``batch`` examples of ``x``'s shape; the refreshed slots."""
    resized = False
    for detail, name in _slots(interpreter, x):
        column = _column(x, name)
        # The examples' own shape: a model with a dynamic non-batch axis (a recurrent model built
        # on Input((None, features))) is allocated with 1 there until told otherwise.
        own = column.shape[1:] if column.ndim == len(detail["shape"]) else detail["shape"][1:]
        shape = [batch, *own]
        if list(detail["shape"]) != shape:
            interpreter.resize_tensor_input(detail["index"], shape)
            resized = True
    if resized:
        interpreter.allocate_tensors()
    return _slots(interpreter, x)


def run_tflite(
    model: TFLiteModel, x: np.ndarray, *, batch_size: int = 256, num_threads: int = 1
) -> np.ndarray:
    """Float outputs of ``model`` for every example of ``x`` (first axis = examples; for a
    model with several inputs, a structured array with a field per input, matched by name).

    Batches of ``batch_size`` when the model has a dynamic batch axis (the converter's default
    for Keras models), one example at a time otherwise (recurrent models are converted at a
    fixed batch size of 1). The last batch is zero-padded rather than resized, so the
    interpreter allocates once. Variable tensors (a fused LSTM's state) are reset before every
    batch, so each example starts from the initial state, as in Keras.
    """
    interpreter = make_interpreter(model.content, num_threads=num_threads)
    detail = interpreter.get_input_details()[0]
    dynamic_batch = (
        len(detail.get("shape_signature", ())) > 0 and detail["shape_signature"][0] == -1
    )
    batch = min(batch_size, max(len(x), 1)) if dynamic_batch else 1
    slots = _allocate(interpreter, x, batch)
    out_detail = interpreter.get_output_details()[0]
    outputs = []
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        if len(chunk) < batch:
            pad = np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        for detail, name in slots:
            interpreter.set_tensor(detail["index"], _quantize(_column(chunk, name), detail))
        # A fused LSTM writes its final state back into its variable tensors; without a reset
        # the next example would start from the previous one's state.
        interpreter.reset_all_variables()
        interpreter.invoke()
        result = _dequantize(interpreter.get_tensor(out_detail["index"]), out_detail)
        outputs.append(result[: min(batch, len(x) - start)])
    if not outputs:
        return np.zeros((0,), np.float32)
    return np.concatenate(outputs)


def measure_latency(
    model: TFLiteModel,
    sample: np.ndarray,
    *,
    num_threads: int = 1,
    warmup: int = 20,
    runs: int = 200,
) -> Latency:
    """Median, mean and p95 time of one batch-1 ``invoke()`` on this machine's CPU.

    ``sample`` is one example without the batch axis (for several inputs, one row of their
    structured array). The input is set once: this times the model, not numpy's quantization.
    The Python interpreter uses ``num_threads`` threads (the C++ benchmark tool defaults to all
    cores), which is why the figure always carries it.
    """
    interpreter = make_interpreter(model.content, num_threads=num_threads)
    one = np.asarray(sample)[None, ...]
    for detail, name in _allocate(interpreter, one, 1):
        interpreter.set_tensor(detail["index"], _quantize(_column(one, name), detail))
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times[i] = time.perf_counter_ns() - start
    times_ms = times / 1e6
    return Latency(
        p50_ms=float(np.median(times_ms)),
        mean_ms=float(times_ms.mean()),
        p95_ms=float(np.percentile(times_ms, 95)),
        threads=num_threads,
        runs=runs,
    )
