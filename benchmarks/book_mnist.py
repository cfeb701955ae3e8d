"""The book's MNIST CNN ("Efficient Deep Learning", ch. 2): zenml-quant vs the plain converter.

Trains (or reuses) the book's model, runs ``zenml-quant compress`` on it as a user would, converts
it again the book's way, compares size, accuracy and batch-1 latency side by side and rewrites
its own section of ``BENCHMARKS.md``. Run from the project root: ``python benchmarks/book_mnist.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _sections import write_section  # beside this script
from ai_edge_litert.interpreter import Interpreter

from zenml_quant._compat import tf, tf_keras  # sets TF_USE_LEGACY_KERAS before TensorFlow
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.evaluate import accuracy_from_outputs
from zenml_quant.interpreter import run_tflite
from zenml_quant.types import ConversionOptions

ROOT = Path(__file__).resolve().parent.parent
SCALE, OFFSET, SEED, PARAMS, ROUNDS = 2 / 255, -1.0, 0, 35_210, 5
MODES = ("float32", "int8")
BOOK = {"float32": (138.71, 98.62), "int8": (39.65, 98.61)}  # KB, % (DESIGN.md section 5)
NOTE = (
    "Book rows: as the book reports them, not measured (KB as printed; ratio vs the book's float). "
    "The plain int8 file keeps float I/O (the book's settings); zenml-quant's int8 has int8 I/O. "
    f"Side-by-side latency: batch 1, 20 warm-up invokes, median of {ROUNDS} interleaved rounds' "
    "medians, in this process. Pipeline's own: the figure in zenml-quant's JSON, from its run. "
    "zenml-quant compacts fused tensor names by default (`compact_names`: `a;b;c` becomes `a`); "
    "the 'full names' rows are the same conversion without that step, in this process."
)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/datasets/mnist.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=500, help="timed invokes per latency round")
    p.add_argument("--retrain", action="store_true", help="train even if the .keras file exists")
    return p.parse_args()


def load_mnist(path: Path) -> tuple[np.ndarray, ...]:
    """x_train, y_train, x_test, y_test; pixels scaled to [-1, 1] with a channel axis (the book)."""
    if not path.is_file():
        sys.exit(f"MNIST not found at {path}: pass --mnist /path/to/mnist.npz (Keras layout).")
    with np.load(path) as d:
        scale, offset = np.float32(SCALE), np.float32(OFFSET)  # what zenml-quant computes too
        x = {k: d[k].astype(np.float32) * scale + offset for k in ("x_train", "x_test")}
        return x["x_train"][..., None], d["y_train"], x["x_test"][..., None], d["y_test"]


def build_model() -> tf_keras.Model:
    """The book's CNN, compiled. Dropout 0.5 is our pick: the rate does not change the params."""
    L = tf_keras.layers
    layers = [L.Input((28, 28, 1))]
    for filters in (32, 64):
        layers += [L.Conv2D(filters, 3), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D(2)]
    model = tf_keras.Sequential(layers + [L.Flatten(), L.Dropout(0.5), L.Dense(10)], "book_mnist")
    assert model.count_params() == PARAMS, f"{model.count_params():,} params, not {PARAMS:,}"
    model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(True), ["accuracy"])
    return model


def train_or_reuse(args, x, y, keras_path: Path) -> tuple[tf_keras.Model, str]:
    """Train on the given images (all 60k for the book figures) or reuse the cached file; the
    saved model and a note."""
    meta_path = keras_path.with_suffix(".train.json")
    if keras_path.exists() and not args.retrain:
        print(f"Reusing {keras_path} (pass --retrain to train again)")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"note": "?"}
        return tf_keras.models.load_model(keras_path), f"reused the cached model ({meta['note']})"
    print(f"Training the book's CNN for {args.epochs} epochs on {len(x):,} images ...")
    tf_keras.utils.set_random_seed(SEED)
    model, start = build_model(), time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2)
    note = f"{time.perf_counter() - start:.1f} s for {args.epochs} epochs"
    model.save(keras_path)
    meta_path.write_text(json.dumps({"note": note}))
    return tf_keras.models.load_model(keras_path), f"{note} (this run)"


def run_ours(args, keras_path: Path, work: Path) -> tuple[dict, float]:
    """``zenml-quant compress`` as a user runs it, with an isolated ZenML store; JSON and seconds."""
    opts = {"--model": keras_path, "--data": args.mnist.resolve(), "--scale": SCALE, "--offset": -1}
    opts.update({"--output-dir": work / "ours", "--json": work / "ours.json"})
    cli = Path(sys.executable).with_name("zenml-quant")
    cmd = [str(cli), "compress", *(str(a) for pair in opts.items() for a in pair)]
    env = {**os.environ, "ZENML_CONFIG_PATH": str(work / "zenml_config")}
    env["ZENML_ANALYTICS_OPT_IN"] = "false"
    print("Running:", shlex.join(cmd))
    start = time.perf_counter()
    if subprocess.run(cmd, env=env).returncode != 0:
        sys.exit("zenml-quant compress failed (see its output above).")
    return json.loads((work / "ours.json").read_text()), time.perf_counter() - start


def convert_plain(model, x_train: np.ndarray) -> dict[str, bytes]:
    """The book's path: float, and int8 with Optimize.DEFAULT + 500 train images (float I/O)."""
    picks = np.random.default_rng(SEED).choice(len(x_train), size=500, replace=False)

    def representative():
        for i in picks:
            yield [x_train[i : i + 1].astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations, conv.representative_dataset = [tf.lite.Optimize.DEFAULT], representative
    plain_float = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    return {"float32": bytes(plain_float), "int8": bytes(conv.convert())}


def plain_accuracy(content: bytes, x: np.ndarray, y: np.ndarray, threads: int) -> float:
    """Test accuracy with the book's per-image loop (float-I/O models)."""
    it = Interpreter(model_content=content, num_threads=threads)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    hits = 0
    for i in range(len(x)):
        it.set_tensor(inp, x[i : i + 1])
        it.invoke()
        hits += int(np.argmax(it.get_tensor(out)[0]) == y[i])
    return hits / len(x)


def ready_interpreter(content: bytes, image: np.ndarray, threads: int) -> Interpreter:
    """An allocated interpreter with ``image`` set as its input (quantized if the input is)."""
    it = Interpreter(model_content=content, num_threads=threads)
    it.allocate_tensors()
    d, x = it.get_input_details()[0], image[None, ...]
    if np.issubdtype(d["dtype"], np.integer):
        (s, z), info = d["quantization"], np.iinfo(d["dtype"])
        x = np.clip(np.round(x / s + z), info.min, info.max)
    it.set_tensor(d["index"], x.astype(d["dtype"]))
    return it


def median_latency_us(it: Interpreter, runs: int) -> float:
    """20 warm-up invokes, then ``runs`` timed ones (perf_counter_ns); their median in µs."""
    for _ in range(20):
        it.invoke()
    times = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        times[i] = time.perf_counter_ns() - t
    return float(np.median(times)) / 1e3


def side_by_side(models: dict[str, bytes], image: np.ndarray, threads: int, runs: int) -> dict:
    """Interleaved rounds over all models (the machine is shared); median of per-round medians."""
    its = {k: ready_interpreter(v, image, threads) for k, v in models.items()}
    rounds = [{k: median_latency_us(it, runs) for k, it in its.items()} for _ in range(ROUNDS)]
    return {k: float(np.median([r[k] for r in rounds])) for k in its}


def evaluation_seconds(models: dict[str, bytes], x: np.ndarray, threads: int) -> dict[str, float]:
    """Wall time of zenml-quant's TFLite evaluation (batches of 256) over all of ``x``."""
    seconds = {}
    for name, content in models.items():
        tfl = inspect_tflite(content, mode=name.split()[-1])
        start = time.perf_counter()
        run_tflite(tfl, x, num_threads=threads)
        seconds[name] = time.perf_counter() - start
    return seconds


def full_names(model, x_train: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[dict, dict]:
    """Our conversion with ``compact_names=False``: the like-for-like twin of the plain path."""
    models, acc = {}, {}
    for mode in MODES:
        options = ConversionOptions(compact_names=False, seed=SEED)
        tfl = convert_model(model, mode, representative_data=x_train, options=options)
        name = f"zenml-quant {mode}, full names"
        models[name], acc[name] = tfl.content, accuracy_from_outputs(run_tflite(tfl, x), y)
    return models, acc


def checks(m: dict) -> list[tuple[str, bool]]:
    """The issue's acceptance checks, computed from the measured numbers."""
    size, d8 = m["size"], m["acc"]["zenml-quant int8"] - m["keras"]
    o8 = size["zenml-quant int8"]

    def rel(suffix: str) -> dict[str, float]:
        return {
            k: size[f"zenml-quant {k}{suffix}"] / size[f"plain converter {k}"] - 1 for k in MODES
        }

    def show(r: dict[str, float]) -> str:
        return ", ".join(f"{k} {100 * v:+.2f} %" for k, v in r.items())

    like, default = rel(", full names"), rel("")
    return [
        (f"(a) zenml-quant int8 is {o8:,} B (≤ 41,000 B)", o8 <= 41_000),
        (f"(b) zenml-quant int8 is {100 * d8:+.2f} pts from Keras (≤ ±0.10)", abs(d8) <= 1.0001e-3),
        (
            f"(c) like for like (names not compacted), zenml-quant vs plain sizes: {show(like)} "
            "(≤ ±1 %)",
            max(map(abs, like.values())) <= 0.01,
        ),
        (
            f"(c, default) with compacted names zenml-quant's files are {show(default)} against "
            "the plain converter's: smaller, never more than 1 % larger",
            max(default.values()) <= 0.01,
        ),
    ]


def render(args, m: dict, base: dict, ok: list) -> str:
    """The Markdown section (without markers); ``m`` holds the measures (per row: {name: value})."""
    cpus = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln]
    v, cmd = importlib.metadata.version, shlex.join(["python", *sys.argv])
    lines = [
        "## The book's MNIST CNN: zenml-quant vs the plain TFLite converter\n",
        f"- Date: {time.strftime('%Y-%m-%d')}; machine: {cpus[0] if cpus else '?'}, "
        f"{os.cpu_count()} cores; Python {sys.version.split()[0]}, TensorFlow "
        f"{tf.__version__}, tf-keras {v('tf-keras')}, ai-edge-litert {v('ai-edge-litert')}",
        f"- Command: `{cmd}` (epochs {args.epochs}, {args.threads} thread(s), "
        f"{ROUNDS} rounds of {args.runs} timed invokes)",
        f"- Training: {m['train']}; `zenml-quant compress` wall time: {m['ours_s']:.1f} s",
        f"- Keras test accuracy: {100 * m['keras']:.2f} % (zenml-quant's baseline: "
        f"{100 * base['accuracy']:.2f} % on {base['n_samples']:,} {base['split']} images)",
        "- zenml-quant's TFLite evaluation of the 10,000 test images (ai-edge-litert, batches of "
        f"256, {args.threads} thread(s)): "
        + ", ".join(f"{k.split()[-1]} {v:.2f} s" for k, v in m["eval_s"].items()),
        "",
        "| model | size bytes | size vs plain float32 | test accuracy % | Δ vs Keras (pts) "
        "| median latency µs (side-by-side) | pipeline's own µs | threads |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, (kb, acc) in BOOK.items():
        ratio = kb / BOOK["float32"][0]
        lines.append(f"| book (reported) {mode} | {kb} KB | {ratio:.3f}x | {acc:.2f} | | | | |")
    for name in m["size"]:
        size, acc = m["size"][name], m["acc"][name]
        lines.append(
            f"| {name} | {size:,} | {size / m['size']['plain converter float32']:.3f}x | "
            f"{100 * acc:.2f} | {100 * (acc - m['keras']):+.2f} | {m['lat'][name]:.1f} | "
            f"{m['own'].get(name, '')} | {args.threads} |"
        )
    plain8 = m["size"]["plain converter int8"]
    reach = (
        f"The plain int8 file is {plain8:,} B: a file of at most 41,000 B can be within 1 % of it "
        f"only if it is at least {0.99 * plain8:,.0f} B."
    )
    lines += ["", NOTE, reach, "", *(f"- {'PASS' if good else 'FAIL'} {text}" for text, good in ok)]
    return "\n".join(lines)


def main() -> None:
    """Train, compress both ways, measure side by side, write the table."""
    sys.stdout.reconfigure(line_buffering=True)  # per-epoch progress shows up in logs too
    args = parse_args()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = load_mnist(args.mnist)
    keras_path = work / "book_mnist.keras"
    model, train_note = train_or_reuse(args, x_train, y_train, keras_path)
    keras_acc = float(model.evaluate(x_test, y_test, batch_size=512, verbose=0)[1])
    print(f"Keras test accuracy: {100 * keras_acc:.2f} %")
    ours, ours_s = run_ours(args, keras_path, work)
    print("Converting with the plain converter; scoring and timing side by side ...")
    plain = convert_plain(model, x_train)
    models, acc, own = {}, {}, {}
    for mode, content in plain.items():
        models[f"plain converter {mode}"] = content
        acc[f"plain converter {mode}"] = plain_accuracy(content, x_test, y_test, args.threads)
    for c in ours["candidates"]:  # the CLI's default modes: float32 and int8
        if c["error"]:
            sys.exit(f"zenml-quant's {c['mode']} candidate failed: {c['error']}")
        o = f"zenml-quant {c['mode']}"
        models[o], acc[o] = Path(c["path"]).read_bytes(), c["accuracy"]
        own[o] = f"{1e3 * c['latency_ms_p50']:.1f} ({c['threads']} thr.)"
    twins, twin_acc = full_names(model, x_train, x_test, y_test)
    models.update(twins)
    acc.update(twin_acc)
    m = {"size": {k: len(v) for k, v in models.items()}, "acc": acc, "own": own, "keras": keras_acc}
    m.update(lat=side_by_side(models, x_test[0], args.threads, args.runs))
    ours_files = {k: v for k, v in models.items() if k in own}
    m.update(
        train=train_note, ours_s=ours_s, eval_s=evaluation_seconds(ours_files, x_test, args.threads)
    )
    section = render(args, m, ours["baseline"], checks(m))
    print(f"\n{section}\n\nWrote {write_section('book_mnist', section)}")


if __name__ == "__main__":
    main()
