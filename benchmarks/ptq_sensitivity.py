"""Sensitivity profiling cost on a 20+ layer CNN, and the outlier hard case, on real MNIST.

Part 1 trains (or reuses) a 30-layer residual CNN and times, side by side in this process and
interleaved over ``--rounds`` rounds, one full-int8 conversion plus one TFLite evaluation of
the validation split (the unit) against ``profile_sensitivity`` in fast and exhaustive mode,
each with its own calibration. Part 2 trains (or reuses) the outlier hard case and compares
float32, plain int8 and accuracy-controlled int8 on the test split. Rewrites its own section of
``BENCHMARKS.md``. Run from the project root: ``python benchmarks/ptq_sensitivity.py``.
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
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _sections import write_section  # beside this script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's zoo
from zenml_quant import evaluate, selective, sensitivity
from zenml_quant._compat import tf, tf_keras  # sets TF_USE_LEGACY_KERAS before TensorFlow
from zenml_quant.conform import conform_to_model
from zenml_quant.convert import convert_model
from zenml_quant.datasets import load_npz
from zenml_quant.evaluate import evaluate_keras
from zenml_quant.layermap import keras_layers
from zenml_quant.models import load_model, save_model
from zenml_quant.ptq import quantize_with_accuracy_budget
from zenml_quant.report.compress import attempts_table
from zenml_quant.selective import SelectiveQuantizer
from zenml_quant.sensitivity import profile_sensitivity, tflite_accuracy
from zenml_quant.targets import Targets
from zenml_quant.types import LabeledDataset
from zoo.hard_case import build_hard_case_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCALE, OFFSET, SEED = 2 / 255, -1.0, 0
MIN_KERAS_LAYERS, FAST_TARGET, MAX_DROP = 20, 3.0, 0.005
RANKING_ROWS = 6


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1, help="epochs of the 30-layer CNN")
    p.add_argument("--hard-case-epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--top-k", type=int, default=3, help="layers fast mode measures exactly")
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/datasets/mnist.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--retrain", action="store_true", help="train even if the .keras files exist")
    return p.parse_args()


def load_mnist(path: Path) -> LabeledDataset:
    """MNIST as zenml-quant loads it: pixels to [-1, 1], a seeded 10 % of train as validation."""
    if not path.is_file():
        sys.exit(f"MNIST not found at {path}: pass --mnist /path/to/mnist.npz (Keras layout).")
    data = load_npz(path, scale=SCALE, offset=OFFSET, seed=SEED)
    return conform_to_model(data, input_shape=(28, 28, 1), num_classes=10)


def build_deep_cnn() -> tf_keras.Model:
    """30 Keras layers: 8 Conv-BN-ReLU blocks, 2 max-pools, 2 residual Adds, GAP, Dense."""
    L = tf_keras.layers

    def block(x, filters: int, name: str):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        # momentum 0.9: with the default 0.99 one epoch leaves the moving statistics so far
        # behind the weights that validation accuracy is ~79 % (95 % with 0.9).
        x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x)

    inputs = L.Input((28, 28, 1))
    x = block(block(inputs, 16, "b1"), 16, "b2")
    x = L.MaxPooling2D(2, name="pool1")(x)  # 14x14
    x = block(x, 32, "b3")
    x = L.Add(name="add1")([x, block(block(x, 32, "b4"), 32, "b5")])
    x = L.MaxPooling2D(2, name="pool2")(x)  # 7x7
    x = block(x, 64, "b6")
    x = L.Add(name="add2")([x, block(block(x, 64, "b7"), 64, "b8")])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    model = tf_keras.Model(inputs, L.Dense(10, name="logits")(x), name="deep_cnn")
    model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(True), ["accuracy"])
    return model


def cached(path: Path, retrain: bool, train: Callable[[], Any], what: str) -> tuple[Any, str]:
    """Load ``path`` (zenml_quant.models.load_model) or train, save and reload; and a note."""
    meta_path = path.with_suffix(".train.json")
    if path.exists() and not retrain:
        print(f"Reusing {path} (pass --retrain to train again)")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"note": "?"}
        return load_model(path), f"reused the cached model ({meta['note']})"
    print(f"Training {what} ...")
    start = time.perf_counter()
    model = train()
    note = f"{time.perf_counter() - start:.1f} s to train"
    save_model(model, path)
    meta_path.write_text(json.dumps({"note": note}))
    return load_model(path), f"{note} (this run)"


def train_deep(data: LabeledDataset, epochs: int) -> tf_keras.Model:
    """The 30-layer CNN trained on the train split (validation held out for scoring)."""
    tf_keras.utils.set_random_seed(SEED)
    model = build_deep_cnn()
    model.fit(data.x_train, data.y_train, batch_size=128, epochs=epochs, verbose=2)
    return model


def unit(model, data: LabeledDataset) -> tuple[float, float, float]:
    """One full-int8 conversion + one evaluation of validation: (convert s, evaluate s, acc)."""
    t0 = time.perf_counter()
    tfl = convert_model(model, "int8", representative_data=data.x_train)
    t1 = time.perf_counter()
    acc = tflite_accuracy(tfl, data.x_val, data.y_val)
    return t1 - t0, time.perf_counter() - t1, acc


def time_rounds(model, data: LabeledDataset, rounds: int, top_k: int) -> dict:
    """Interleave the unit, fast and exhaustive (rotating their order); per-round seconds."""
    jobs = {
        "unit": lambda: unit(model, data),
        "fast": lambda: profile_sensitivity(model, data, mode="fast", top_k=top_k),
        "exhaustive": lambda: profile_sensitivity(model, data, mode="exhaustive"),
    }
    names, seconds, results, units = list(jobs), defaultdict(list), {}, []
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:
            start = time.perf_counter()
            results[name] = jobs[name]()
            seconds[name].append(time.perf_counter() - start)
            print(f"round {r + 1}/{rounds}: {name} {seconds[name][-1]:.1f} s")
            if name == "unit":
                units.append(results[name])
    return {"seconds": dict(seconds), "results": results, "units": units}


@contextmanager
def timed_calls(targets: list[tuple[Any, str, Any]]) -> Iterator[dict[str, list[float]]]:
    """Wrap ``owner.attr`` for each target with a timer; yields {label: [seconds, calls]}.

    A label may be a function of the call's arguments, returning the label to charge.
    """
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    saved = [(owner, attr, owner.__dict__[attr]) for owner, attr, _ in targets]

    def timer(fn: Callable, label: Any) -> Callable:
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                charged = label(*a, **k) if callable(label) else label
                totals[charged][0] += time.perf_counter() - start
                totals[charged][1] += 1

        return wrapper

    for owner, attr, label in targets:
        setattr(owner, attr, timer(getattr(owner, attr), label))
    try:
        yield totals
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def breakdown(model, data: LabeledDataset, top_k: int) -> tuple[float, dict]:
    """One instrumented fast profile: its seconds and where they went ("of which" rows nest)."""
    kinds = {0: "full int8", 1: "1 layer kept in float (all but it)"}

    def evaluated(tfl, *_a, **_k) -> str:
        kind = kinds.get(len(tfl.float_layers), "only 1 layer in int8 (drop alone)")
        return f"  of which {kind}"

    targets: list[tuple[Any, str, Any]] = [
        (SelectiveQuantizer, "__init__", "calibrate: SelectiveQuantizer(...) (debugger set-up)"),
        (SelectiveQuantizer, "layer_errors", "debugger statistics: layer_errors()"),
        (sensitivity, "evaluate_keras", "Keras float accuracy: evaluate_keras()"),
        (evaluate, "_compiled_metrics", "  of which Keras model.evaluate (compiled metrics)"),
        (SelectiveQuantizer, "quantize", "re-quantize: quantize()"),
        (selective, "inspect_tflite", "  of which inspect_tflite()"),
        (selective, "compact_tensor_names", "  of which compact_tensor_names()"),
        (sensitivity, "run_tflite", evaluated),
    ]
    with timed_calls(targets) as totals:
        start = time.perf_counter()
        profile_sensitivity(model, data, mode="fast", top_k=top_k)
        total = time.perf_counter() - start
    parts = {label: totals.get(label, [0.0, 0]) for *_, label in targets if isinstance(label, str)}
    evals = {k: v for k, v in totals.items() if k not in parts}
    parts["TFLite evaluations: run_tflite()"] = [
        sum(v[0] for v in evals.values()),
        sum(v[1] for v in evals.values()),
    ]
    parts.update(sorted(evals.items()))
    parts["unaccounted"] = [total - sum(v[0] for k, v in parts.items() if k[0] != " "), 0]
    return total, parts


def ranking_rows(report) -> list[str]:
    """Markdown rows of the top of a sensitivity ranking."""
    rows = []
    for r in report.table.head(RANKING_ROWS).itertuples():
        f = [f"{v:+.2f}" if np.isfinite(v) else "n/a" for v in (r.sensitivity_pts,)]
        f += [f"{v:+.2f}" if np.isfinite(v) else "n/a" for v in (r.drop_alone_pts, r.recovery_pts)]
        rows.append(
            f"| {r.rank} | `{r.layer}` | {r.type} | {'yes' if r.measured else 'no'} | "
            f"{' | '.join(f)} | {r.suspicion:.3f} |"
        )
    return rows


def part1(args, work: Path, data: LabeledDataset) -> dict:
    """The cost of sensitivity profiling against one conversion plus evaluation."""
    model, note = cached(
        work / "ptq_sensitivity_deep_cnn.keras",
        args.retrain,
        lambda: train_deep(data, args.epochs),
        f"the 30-layer CNN for {args.epochs} epoch(s)",
    )
    n_keras = len(keras_layers(model))
    assert n_keras >= MIN_KERAS_LAYERS, f"{n_keras} Keras layers, not >= {MIN_KERAS_LAYERS}"
    keras_val = evaluate_keras(model, data, split="validation").accuracy
    print(f"{n_keras} Keras layers, {model.count_params():,} params, val {100 * keras_val:.2f} %")
    timing = time_rounds(model, data, args.rounds, args.top_k)
    print("One instrumented fast profile (where the time goes) ...")
    instrumented_s, parts = breakdown(model, data, args.top_k)
    return {
        "model": model,
        "train": note,
        "n_keras": n_keras,
        "params": model.count_params(),
        "keras_val": keras_val,
        "n_quantizable": len(timing["results"]["exhaustive"].table),
        "instrumented_s": instrumented_s,
        "parts": parts,
        **timing,
    }


def part2(args, work: Path, data: LabeledDataset) -> dict:
    """The hard case: float32, plain int8 and accuracy-controlled int8 on the test split."""
    model, note = cached(
        work / "ptq_sensitivity_hard_case.keras",
        args.retrain,
        lambda: build_hard_case_model(data, epochs=args.hard_case_epochs, seed=SEED),
        f"the hard case for {args.hard_case_epochs} epoch(s)",
    )
    x, y = data.x_test, data.y_test
    keras_test = evaluate_keras(model, data, split="test").accuracy
    f32 = convert_model(model, "float32")
    i8 = convert_model(model, "int8", representative_data=data.x_train)
    print("Accuracy control ...")
    start = time.perf_counter()
    result = quantize_with_accuracy_budget(model, data, budget=Targets(max_quality_drop=MAX_DROP))
    controlled_s = time.perf_counter() - start
    return {
        "train": note,
        "keras": keras_test,
        "size": {
            "float32": f32.size_bytes,
            "int8": i8.size_bytes,
            "mixed": result.model.size_bytes,
        },
        "acc": {
            "float32": tflite_accuracy(f32, x, y),
            "int8": tflite_accuracy(i8, x, y),
            "mixed": tflite_accuracy(result.model, x, y),
        },
        "result": result,
        "seconds": controlled_s,
    }


def markdown(frame: pd.DataFrame) -> str:
    """The attempts table in Markdown (pandas' to_markdown needs tabulate, not installed)."""
    formats = {"accuracy": lambda v: f"{100 * v:.2f} %", "drop_pts": lambda v: f"{v:+.2f}"}
    formats["size_bytes"] = lambda v: f"{int(v):,}"

    def cell(column: str, v: Any) -> str:
        return formats[column](v) if column in formats else str(v)

    rows = [" | ".join(map(str, frame.columns)), " | ".join("---" for _ in frame.columns)]
    for row in frame.itertuples(index=False):
        rows.append(" | ".join(cell(c, v) for c, v in zip(frame.columns, row)))
    return "\n".join(f"| {r} |" for r in rows)


def checks(p1: dict, p2: dict) -> list[tuple[str, bool]]:
    """The issue's done-when checks, from the measured numbers."""
    med = {k: float(np.median(v)) for k, v in p1["seconds"].items()}
    fast_ratio = med["fast"] / med["unit"]
    size, acc, keras = p2["size"], p2["acc"], p2["keras"]
    drop8, dmix = 100 * (keras - acc["int8"]), 100 * (acc["mixed"] - keras)
    n_float, share = len(p2["result"].float_layers), size["mixed"] / size["float32"]
    return [
        (
            f"(1) fast sensitivity profile costs {fast_ratio:.2f}x one int8 conversion + "
            f"evaluation (≤ {FAST_TARGET:g}x)",
            fast_ratio <= FAST_TARGET,
        ),
        (f"(2a) plain int8 drops {drop8:.2f} pts on test (> 1 pt)", drop8 > 1),
        (
            f"(2b) accuracy-controlled int8 is {dmix:+.2f} pts from Keras float on test "
            "(within ±0.50)",
            abs(dmix) <= 0.5 + 1e-9,
        ),
        (f"(2c) {n_float} float layer(s) (≤ 2)", n_float <= 2),
        (f"(2d) mixed file is {100 * share:.1f} % of the float32 file (≤ 40 %)", share <= 0.40),
    ]


def code_version() -> str:
    """The commit, and the package files changed since it (benchmarks run on the work tree)."""

    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "?"
    changed = [ln[3:] for ln in git("status", "--porcelain", "--", "zenml_quant").splitlines()]
    if not changed:
        return f"commit {commit}"
    return f"commit {commit} + uncommitted changes to {', '.join(f'`{c}`' for c in changed)}"


def render(args, data: LabeledDataset, p1: dict, p2: dict, ok: list, total_s: float) -> str:
    """The Markdown section (without markers)."""
    cpus = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln]
    v, cmd = importlib.metadata.version, shlex.join(["python", *sys.argv])
    secs = p1["seconds"]
    med = {k: float(np.median(s)) for k, s in secs.items()}
    fast, exh = p1["results"]["fast"], p1["results"]["exhaustive"]
    conv_s, eval_s = (float(np.median([u[i] for u in p1["units"]])) for i in (0, 1))
    unit_acc = p1["results"]["unit"][2]
    per_round = "; ".join(f"{k}: " + ", ".join(f"{s:.1f}" for s in secs[k]) for k in secs)
    lines = [
        "## Sensitivity profiling cost (30-layer CNN) and the outlier hard case, on MNIST\n",
        f"- Date: {time.strftime('%Y-%m-%d')}; machine: {cpus[0] if cpus else '?'}, "
        f"{os.cpu_count()} cores; Python {sys.version.split()[0]}, TensorFlow "
        f"{tf.__version__}, tf-keras {v('tf-keras')}, ai-edge-litert {v('ai-edge-litert')}",
        f"- Command: `{cmd}` (CNN epochs {args.epochs}, hard-case epochs "
        f"{args.hard_case_epochs}, {args.rounds} interleaved rounds, top_k {args.top_k}); "
        f"total wall time {total_s:.0f} s; code: {code_version()}",
        "- Data: `../shared/datasets/mnist.npz` via `load_npz` (pixels × 2/255 − 1, channel "
        f"axis), validation = a seeded 10 % of train: {len(data.y_train):,} train, "
        f"{len(data.y_val):,} validation, {len(data.y_test):,} test images",
        "",
        "### 1. Cost of sensitivity profiling, 30-layer CNN",
        "",
        f"- Model: `deep_cnn`, {p1['n_keras']} Keras layers (8 Conv2D+BatchNorm+ReLU blocks, 2 "
        f"MaxPooling2D, 2 residual Add, GlobalAveragePooling2D, Dense), {p1['params']:,} params, "
        f"{p1['n_quantizable']} quantizable layers after conversion (BatchNorm and ReLU fold "
        "into the convolutions; max-pools only move values); training: "
        f"{p1['train']}",
        f"- Validation ({len(data.y_val):,} images): Keras "
        f"{100 * p1['keras_val']:.2f} %, full int8 {100 * unit_acc:.2f} %",
        "- Unit = `convert_model(model, 'int8', representative_data=x_train)` + "
        "`tflite_accuracy` on validation (medians: conversion "
        f"{conv_s:.1f} s, evaluation {eval_s:.1f} s). Each profile builds its own "
        "`SelectiveQuantizer` (calibration included). Interleaved rounds, order rotated each "
        "round; seconds per round: " + per_round,
        "",
        "| job | median s | × unit | TFLite evaluations | quantizable layers | Keras layers |",
        "|---|---:|---:|---:|---:|---:|",
        f"| unit: int8 conversion + 1 evaluation | {med['unit']:.1f} | 1.00 | 1 | "
        f"{p1['n_quantizable']} | {p1['n_keras']} |",
        f"| `profile_sensitivity(mode='fast', top_k={args.top_k})` | {med['fast']:.1f} | "
        f"{med['fast'] / med['unit']:.2f} | {fast.evaluations} (+1 Keras) | "
        f"{p1['n_quantizable']} | {p1['n_keras']} |",
        f"| `profile_sensitivity(mode='exhaustive')` | {med['exhaustive']:.1f} | "
        f"{med['exhaustive'] / med['unit']:.2f} | {exh.evaluations} (+1 Keras) | "
        f"{p1['n_quantizable']} | {p1['n_keras']} |",
        "",
        f"Where one fast profile's {p1['instrumented_s']:.1f} s go (a separate, instrumented "
        "run; 'of which' rows are inside the row above them):",
        "",
        "| part | s | calls |",
        "|---|---:|---:|",
    ]
    for label, (s, n) in p1["parts"].items():
        lines.append(f"| {label} | {s:.1f} | {n} |")
    exh_top = list(exh.ranking[:3])
    measured = list(fast.table.loc[fast.table["measured"], "layer"])
    agree = set(measured) & set(exh_top)
    head = "| rank | layer | type | measured | sensitivity_pts | drop_alone_pts | recovery_pts "
    head += "| suspicion |\n|---:|---|---|---|---:|---:|---:|---:|"
    lines += [
        "",
        f"Rankings (validation, {fast.n_samples:,} images; float {100 * fast.float_accuracy:.2f} "
        f"%, full int8 {100 * fast.int8_accuracy:.2f} %), top {RANKING_ROWS}. Fast:",
        "",
        head,
        *ranking_rows(fast),
        "",
        "Exhaustive:",
        "",
        head,
        *ranking_rows(exh),
        "",
        f"One validation image is {100 / fast.n_samples:.3f} pts; the largest exhaustive "
        f"sensitivity is {exh.table['sensitivity_pts'].max():.2f} pts "
        f"({exh.table['sensitivity_pts'].max() * fast.n_samples / 100:.0f} images). "
        f"Fast mode measured {', '.join(f'`{n}`' for n in measured)}; the exhaustive top 3 is "
        f"{', '.join(f'`{n}`' for n in exh_top)}: {len(agree)} of 3 in common"
        + (" (same set)." if set(measured) == set(exh_top) else "."),
        "",
        "### 2. The hard case (one outlier activation channel) on MNIST",
        "",
        f"- `build_hard_case_model(mnist, epochs={args.hard_case_epochs}, seed=0)`, cached as "
        f"`.keras` and reloaded with `zenml_quant.models.load_model`; training: {p2['train']}",
        f"- Accuracy control: `quantize_with_accuracy_budget(model, data, "
        f"budget=Targets(max_quality_drop={MAX_DROP}))`, budget checked on validation "
        f"(Keras {100 * p2['result'].reference_accuracy:.2f} %, chosen model "
        f"{100 * p2['result'].accuracy:.2f} %): {p2['result'].status}; "
        f"{len(p2['result'].attempts)} attempts in {p2['seconds']:.1f} s",
        "",
        "| model (test split, 10,000 images) | size bytes | % of float32 | accuracy % "
        "| Δ vs Keras (pts) | float layers |",
        "|---|---:|---:|---:|---:|---|",
        f"| Keras float | | | {100 * p2['keras']:.2f} | | |",
    ]
    names = {
        "float32": "float32 .tflite",
        "int8": "plain full int8",
        "mixed": "accuracy-controlled",
    }
    for key, name in names.items():
        size, acc = p2["size"][key], p2["acc"][key]
        floats = ", ".join(f"`{n}`" for n in p2["result"].float_layers) if key == "mixed" else ""
        lines.append(
            f"| {name} | {size:,} | {100 * size / p2['size']['float32']:.1f} % | "
            f"{100 * acc:.2f} | {100 * (acc - p2['keras']):+.2f} | {floats} |"
        )
    lines += ["", "Attempts (validation):", "", markdown(attempts_table(p2["result"]))]
    lines += ["", *(f"- {'PASS' if good else 'FAIL'} {text}" for text, good in ok)]
    return "\n".join(lines)


def main() -> None:
    """Train or reuse both models, time profiling, run accuracy control, write the tables."""
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up in logs too
    started = time.perf_counter()
    args = parse_args()
    work = Path(args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = load_mnist(args.mnist)
    p1 = part1(args, work, data)
    p2 = part2(args, work, data)
    section = render(args, data, p1, p2, checks(p1, p2), time.perf_counter() - started)
    print(f"\n{section}\n\nWrote {write_section('ptq_sensitivity', section)}")


if __name__ == "__main__":
    main()
