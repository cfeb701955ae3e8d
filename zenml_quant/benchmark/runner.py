"""Benchmark one .tflite file on this machine and print ONE JSON object on stdout.

Self-contained: copied as is to a device (e.g. over SSH to a Raspberry Pi) and run there with
``python3 runner.py --model M.tflite [...]``. It imports only the standard library, numpy and a
TFLite interpreter (``ai_edge_litert``, or ``tflite_runtime`` on old 32-bit boards), never
zenml_quant. Exit codes: 0 ok, 1 failed while running, 2 the model cannot be loaded/allocated,
3 no TFLite runtime. The JSON carries ``error`` in every failure case.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import time
import zipfile
from typing import Any, NoReturn

import numpy as np

KEYS = (
    "load_ms allocate_ms warmup_runs runs seconds mean_ms std_ms p50_ms p90_ms p99_ms "
    "peak_rss_bytes arena_bytes size_bytes threads runtime machine accuracy n_samples error"
).split()


def emit(result: dict, code: int) -> NoReturn:
    """Print the result (every key, null when unknown) as the only line on stdout; exit."""
    print(json.dumps({k: result.get(k) for k in KEYS}))
    sys.exit(code)


def load_runtime() -> tuple[Any, str]:
    """The Interpreter class and "<package> <version>"; raises ImportError if there is none."""
    for package in ("ai_edge_litert", "tflite_runtime"):
        try:
            module = importlib.import_module(f"{package}.interpreter")
        except ImportError:
            continue
        version = getattr(importlib.import_module(package), "__version__", "?")
        return module.Interpreter, f"{package} {version}"
    raise ImportError("no TFLite runtime")


def machine() -> str:
    """CPU architecture and, where known, the CPU model (Linux /proc/cpuinfo) or processor."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model"):
                    cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return " ".join(p for p in (platform.machine(), cpu) if p) or " ".join(platform.uname())


def peak_rss_bytes() -> int:
    """Peak resident set size of this process, in bytes.

    Linux: ``VmHWM`` from /proc/self/status. Not ``ru_maxrss``: Linux carries it over fork and
    exec, so a runner started by a big process (TensorFlow, 1 GB) would report the parent's peak.
    Elsewhere ``ru_maxrss``, which is KiB on Linux-likes and bytes on macOS.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def arena_bytes(it: Any) -> int:
    """Estimate of the tensor arena: bytes of all non-constant tensors.

    Neither ai-edge-litert nor tflite-runtime exposes the arena size (no public or ``_interpreter``
    API reports it), so we add up every tensor an op writes plus the graph inputs: activations
    and outputs, not weights. It is an upper bound: the real arena reuses memory between tensors
    whose lifetimes do not overlap, and kernel scratch buffers are not counted.
    """
    written = {int(d["index"]) for d in it.get_input_details()}
    try:
        for op in it._get_ops_details():  # private but present in both runtimes
            written.update(int(i) for i in op["outputs"] if i >= 0)
    except AttributeError:
        written.update(int(d["index"]) for d in it.get_output_details())
    total = 0
    for d in it.get_tensor_details():
        if int(d["index"]) in written:
            total += int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
    return total


def quantize(x: np.ndarray, d: dict) -> np.ndarray:
    """``x`` (float) in the input's dtype, quantized with its scale / zero point if it has them."""
    dtype, (scale, zero) = np.dtype(d["dtype"]), d["quantization"]
    if scale == 0.0 or not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, d: dict) -> np.ndarray:
    scale, zero = d["quantization"]
    if scale == 0.0 or not np.issubdtype(q.dtype, np.integer):
        return q.astype(np.float32)
    return (q.astype(np.float32) - zero) * scale


def random_input(d: dict, rng: np.random.Generator) -> np.ndarray:
    """Random values over the integer dtype's range, or in [-1, 1] for float inputs."""
    dtype, shape = np.dtype(d["dtype"]), tuple(d["shape"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-1, 1, size=shape).astype(dtype)


def first_example(path: str, key: str) -> np.ndarray:
    """Row 0 of array ``key`` in an .npz, without reading the whole array into memory."""
    with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read(f)
        if fortran or dtype.hasobject or not shape:
            with np.load(path, allow_pickle=False) as data:
                return np.asarray(data[key][0])
        count = int(np.prod(shape[1:]))
        return np.frombuffer(f.read(count * dtype.itemsize), dtype, count).reshape(shape[1:])


def accuracy(it: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    """Argmax accuracy of every example; batches when the batch axis is dynamic (zero-padded)."""
    d = it.get_input_details()[0]
    dynamic = len(d.get("shape_signature", ())) > 0 and d["shape_signature"][0] == -1
    batch = min(batch_size, max(len(x), 1)) if dynamic else 1
    if batch != d["shape"][0]:
        it.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
        it.allocate_tensors()
        d = it.get_input_details()[0]
    out, hits = it.get_output_details()[0], 0
    for start in range(0, len(x), batch):
        chunk = x[start : start + batch]
        n = len(chunk)
        if n < batch:
            chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
        if hasattr(it, "reset_all_variables"):  # a fused LSTM keeps state between invokes
            it.reset_all_variables()
        it.set_tensor(d["index"], quantize(chunk, d))
        it.invoke()
        logits = dequantize(it.get_tensor(out["index"]), out)[:n]
        hits += int((logits.reshape(n, -1).argmax(axis=1) == y[start : start + n]).sum())
    return hits / max(len(x), 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-runs", type=int, default=50)
    p.add_argument("--min-seconds", type=float, default=1.0)
    p.add_argument("--data", help=".npz with features and integer labels (optional)")
    p.add_argument("--split-key-x", default="x")
    p.add_argument("--split-key-y", default="y")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    result: dict = {"threads": args.threads, "warmup_runs": args.warmup, "machine": machine()}
    try:
        Interpreter, result["runtime"] = load_runtime()
    except ImportError:
        result["error"] = (
            "no TFLite runtime: install ai-edge-litert (or tflite-runtime on 32-bit ARM)"
        )
        emit(result, 3)
    try:
        result["size_bytes"] = os.path.getsize(args.model)
        start = time.perf_counter_ns()
        it = Interpreter(model_path=args.model, num_threads=args.threads)
        result["load_ms"] = (time.perf_counter_ns() - start) / 1e6
        start = time.perf_counter_ns()
        it.allocate_tensors()
        result["allocate_ms"] = (time.perf_counter_ns() - start) / 1e6
    except Exception as exc:  # a file the runtime cannot read, or an op it cannot allocate
        result["error"] = f"cannot load the model: {type(exc).__name__}: {exc}".strip()
        if result["runtime"].startswith("tflite_runtime"):
            result["error"] += (
                " (tflite-runtime, the last release of which is 2.14, predates int4 weights and "
                "several operator versions ai-edge-quantizer writes: install ai-edge-litert on "
                "this device, or deploy a file without int4 or 16x8 layers)"
            )
        emit(result, 2)
    try:
        rng = np.random.default_rng(0)
        for i, d in enumerate(it.get_input_details()):
            sample = random_input(d, rng)
            if args.data and i == 0:
                sample = quantize(first_example(args.data, args.split_key_x)[None, ...], d)
            it.set_tensor(d["index"], sample)
        for _ in range(args.warmup):
            it.invoke()
        times: list[int] = []
        begin = time.perf_counter_ns()
        while (
            len(times) < args.min_runs or (time.perf_counter_ns() - begin) < args.min_seconds * 1e9
        ):
            start = time.perf_counter_ns()
            it.invoke()
            times.append(time.perf_counter_ns() - start)
        result["seconds"] = (time.perf_counter_ns() - begin) / 1e9
        ms = np.asarray(times, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        result.update(runs=len(ms), mean_ms=float(ms.mean()), std_ms=float(ms.std()))
        result.update(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99))
        result["peak_rss_bytes"] = peak_rss_bytes()  # before the data: the model's own memory
        result["arena_bytes"] = arena_bytes(it)
        if args.data:
            with np.load(args.data, allow_pickle=False) as data:
                x, y = data[args.split_key_x], data[args.split_key_y]
            result["accuracy"] = accuracy(it, x, y.reshape(-1), args.batch_size)
            result["n_samples"] = len(y)
    except Exception as exc:
        result["error"] = f"benchmark failed: {type(exc).__name__}: {exc}"
        emit(result, 1)
    emit(result, 0)


if __name__ == "__main__":
    main()
