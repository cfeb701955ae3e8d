"""Quantization-aware training of the book's MNIST CNN vs plain post-training int8 quantization.

Reuses (or trains) the book's model from ``book_mnist.py``, fine-tunes it with tfmot's fake
quantization through ``zenml_quant.qat.quantization_aware_training``, converts it to int8, and
compares it on the 10k test images with the float model and with plain post-training int8
(``convert_model(model, "int8")``). Rewrites its own section of ``BENCHMARKS.md``.
Run from the project root: ``python benchmarks/qat_mnist.py``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent))  # book_mnist.py lives beside us

from _sections import write_section  # beside this script
from book_mnist import OFFSET, SCALE, load_mnist, train_or_reuse  # noqa: E402

from zenml_quant._compat import tf  # noqa: E402  (sets TF_USE_LEGACY_KERAS before TensorFlow)
from zenml_quant.convert import convert_model  # noqa: E402
from zenml_quant.datasets import validate_dataset  # noqa: E402
from zenml_quant.evaluate import evaluate_keras, evaluate_tflite  # noqa: E402
from zenml_quant.interpreter import measure_latency  # noqa: E402
from zenml_quant.qat import QATOptions, quantization_aware_training  # noqa: E402
from zenml_quant.types import LabeledDataset, Preprocessing  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.003  # 0.3 percentage point, as a fraction


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tuning epochs (max)")
    p.add_argument("--lr", type=float, default=1e-4, help="QAT learning rate (Adam)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--patience", type=int, default=2, help="early stopping on val_accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=15, help="float training, if not cached")
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/datasets/mnist.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=500, help="timed invokes per latency figure")
    p.add_argument("--retrain", action="store_true", help="train even if the .keras file exists")
    return p.parse_args()


def mnist_dataset(path: Path, seed: int) -> LabeledDataset:
    """MNIST as the book scales it, with a seeded, stratified 10 % of train as validation."""
    x_train, y_train, x_test, y_test = load_mnist(path)
    x_tr, x_val, y_tr, y_val = train_test_split(
        x_train, y_train, test_size=0.1, random_state=seed, stratify=y_train
    )
    dataset = LabeledDataset(
        x_train=x_tr,
        y_train=y_tr.astype(np.int64),
        x_val=x_val,
        y_val=y_val.astype(np.int64),
        x_test=x_test,
        y_test=y_test.astype(np.int64),
        class_names=tuple(str(i) for i in range(10)),
        preprocessing=Preprocessing(
            scale=SCALE, offset=OFFSET, applied=True, channel_axis_added=True, source=str(path)
        ),
    )
    validate_dataset(dataset)
    return dataset


def latency_us(tflite, sample: np.ndarray, threads: int, runs: int) -> float:
    """Median batch-1 latency in µs (zenml-quant's measure_latency)."""
    return 1e3 * measure_latency(tflite, sample, num_threads=threads, runs=runs).p50_ms


def checks(m: dict) -> list[tuple[str, bool]]:
    """The acceptance checks, computed from the measured numbers."""
    d_float = m["qat_tflite"] - m["float"]
    d_keras = m["qat_tflite"] - m["qat_keras"]
    return [
        (
            f"QAT int8 .tflite is {100 * d_float:+.2f} pts from the float model "
            f"(no more than {100 * TOLERANCE:.2f} below it)",
            d_float >= -TOLERANCE - 1e-9,
        ),
        (
            f"QAT int8 .tflite is {100 * d_keras:+.2f} pts from the Keras QAT model "
            f"(within ±{100 * TOLERANCE:.2f})",
            abs(d_keras) <= TOLERANCE + 1e-9,
        ),
    ]


def render(args, m: dict, ok: list) -> str:
    """The Markdown section (without markers)."""
    cpus = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln]
    v, cmd = importlib.metadata.version, shlex.join(["python", *sys.argv])
    history = ", ".join(f"{100 * a:.2f}" for a in m["history"].get("val_accuracy", []))
    lines = [
        "## QAT of the book's MNIST CNN vs post-training int8\n",
        f"- Date: {time.strftime('%Y-%m-%d')}; machine: {cpus[0] if cpus else '?'}, "
        f"{os.cpu_count()} cores; Python {sys.version.split()[0]}, TensorFlow {tf.__version__}, "
        f"tf-keras {v('tf-keras')}, tensorflow-model-optimization "
        f"{v('tensorflow-model-optimization')}, ai-edge-litert {v('ai-edge-litert')}",
        f"- Command: `{cmd}`",
        f"- Float model: {m['train']}. Data: {m['n_train']:,} train / "
        f"{m['n_val']:,} validation (seeded, stratified 10 % of the 60k train images; the "
        "cached float model saw them in training) / 10,000 test images",
        f"- QAT: whole model (`quantize_model`), Adam lr {args.lr:g}, batch {args.batch_size}, "
        f"up to {args.qat_epochs} epoch(s), early stopping on val_accuracy (patience "
        f"{args.patience}, best weights restored): {m['epochs_run']} epoch(s) run, validation "
        f"accuracy per epoch {history} %; {m['qat_s']:.1f} s for fine-tuning, int8 conversion "
        "and scoring",
        f"- Post-training int8: `convert_model(model, 'int8')` with 500 calibration images, "
        f"{m['ptq_s']:.1f} s",
        "",
        "| model | size bytes | test accuracy % | Δ vs float (pts) | median latency µs | threads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("float Keras", None, m["float"], None),
        ("float32 .tflite", m["f32_size"], m["f32_tflite"], m["f32_lat"]),
        ("post-training int8 .tflite", m["ptq_size"], m["ptq"], m["ptq_lat"]),
        ("QAT Keras (fake-quant)", None, m["qat_keras"], None),
        ("QAT int8 .tflite", m["qat_size"], m["qat_tflite"], m["qat_lat"]),
    ]
    for name, size, acc, lat in rows:
        size_text = f"{size:,}" if size else ""
        lat_text = f"{lat:.1f}" if lat else ""
        lines.append(
            f"| {name} | {size_text} | {100 * acc:.2f} | {100 * (acc - m['float']):+.2f} | "
            f"{lat_text} | {args.threads if lat else ''} |"
        )
    lines += [
        "",
        "Both int8 files have int8 input and output (zenml-quant's default). Accuracy of the "
        "`.tflite` files: ai-edge-litert, batches of 256. Latency: batch 1, 20 warm-up invokes, "
        f"median of {args.runs} timed invokes, in this process (the machine may be shared: "
        "compare within one run).",
        "",
        *(f"- {'PASS' if good else 'FAIL'} {text}" for text, good in ok),
    ]
    return "\n".join(lines)


def main() -> None:
    """Reuse the float model, run PTQ and QAT, score and time them, write the table."""
    sys.stdout.reconfigure(line_buffering=True)
    args = parse_args()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    dataset = mnist_dataset(args.mnist, args.seed)
    # train_or_reuse trains on all 60k train images, as book_mnist.py does.
    x_all, y_all, _, _ = load_mnist(args.mnist)
    book_args = argparse.Namespace(epochs=args.epochs, retrain=args.retrain)
    model, train_note = train_or_reuse(book_args, x_all, y_all, work / "book_mnist.keras")
    del x_all, y_all

    m: dict = {"train": train_note, "n_train": len(dataset.y_train), "n_val": len(dataset.y_val)}
    m["float"] = evaluate_keras(model, dataset, split="test").accuracy
    print(f"Float Keras test accuracy: {100 * m['float']:.2f} %")

    f32 = convert_model(model, "float32")
    m["f32_size"], m["f32_tflite"] = f32.size_bytes, evaluate_tflite(f32, dataset).accuracy
    start = time.perf_counter()
    ptq = convert_model(model, "int8", representative_data=dataset.x_train)
    m["ptq_s"] = time.perf_counter() - start
    m["ptq_size"], m["ptq"] = ptq.size_bytes, evaluate_tflite(ptq, dataset).accuracy
    print(f"Post-training int8: {ptq.size_bytes:,} B, {100 * m['ptq']:.2f} %")

    print(f"QAT: up to {args.qat_epochs} epoch(s) at lr {args.lr:g} ...")
    options = QATOptions(
        epochs=args.qat_epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        early_stopping_patience=args.patience,
        seed=args.seed,
    )
    start = time.perf_counter()
    result = quantization_aware_training(model, dataset, options=options, split="test")
    m["qat_s"] = time.perf_counter() - start
    m.update(qat_keras=result.keras_accuracy, qat_tflite=result.tflite_accuracy)
    m.update(qat_size=result.tflite.size_bytes, epochs_run=result.epochs_run)
    m["history"] = result.history
    print(
        f"QAT int8: {result.tflite.size_bytes:,} B, {100 * result.tflite_accuracy:.2f} % "
        f"(Keras QAT {100 * result.keras_accuracy:.2f} %), {result.epochs_run} epoch(s)"
    )

    sample = dataset.x_test[0]
    for key, tflite in (("f32_lat", f32), ("ptq_lat", ptq), ("qat_lat", result.tflite)):
        m[key] = latency_us(tflite, sample, args.threads, args.runs)
    ok = checks(m)
    section = render(args, m, ok)
    print(f"\n{section}\n\nWrote {write_section('qat_mnist', section)}")
    if not all(good for _, good in ok):
        sys.exit("Some checks failed (see above).")


if __name__ == "__main__":
    main()
