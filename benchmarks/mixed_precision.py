"""Per-layer precision side by side in one run: the book's MNIST CNN and zoo models.

For each model, every file is built from the same Keras model and measured in the same loop:

- ``int8``: the plain TFLite converter (the book's path; 500 calibration examples);
- ``w4a8, ai-edge-quantizer as a user runs it``: its all-w4a8 recipe and its own ``calibrate``
  (which averages per-example ranges), the way its README shows;
- ``w4a8``: this project's mode (every example's range, as the converter), with each of the
  three ways of rounding int4 weights: nearest (min-max), ai-edge-quantizer's OCTAV clipping,
  and GPTQ (``zenml_quant.gptq``, the default);
- ``mixed``: the allocator under the budget, for the bytes and the latency objectives;
- ``mixed_qat``: int4-aware training of the int4 layers of a plan chosen within 3x the budget.

The budget (``--budget``, points of a fraction metric or a fraction of the original's value
otherwise) is measured from plain int8 on validation, as the issue's figures are: the allocator
gets ``budget + (Keras - int8 on validation)`` as its allowed drop from the Keras model, the
drop a user who accepts "0.5 points under int8" would set.

Quality is each model's own metric on its test split, which no decision saw (validation is
held out as the CLI does); latency is the median over 5 rounds of each round's median of 200
batch-1 invokes, one thread, the files taking turns within every round (so a slow spell of this
shared machine hits them all). Writes the ``mixed-precision`` section of BENCHMARKS.md.

    python benchmarks/mixed_precision.py [--models book_mnist resnet8 ds_cnn dense_autoencoder]

Models come from ``benchmarks/_work`` when present (``book_mnist.py`` and ``zoo_compress.py``
train them there); the zoo ones are trained here otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import shlex
import sys
import time
from datetime import date
from typing import Any

import numpy as np
from _sections import ROOT, write_section  # beside this script

from zenml_quant._compat import tf_keras
from zenml_quant.allocate import allocate_precisions
from zenml_quant.candidates import failed_model
from zenml_quant.conform import fit_to_model
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.datasets import load_dataset
from zenml_quant.errors import InvalidOptionError
from zenml_quant.interpreter import measure_latency, run_tflite
from zenml_quant.mixed_precision import PrecisionQuantizer, convert_uniform
from zenml_quant.mixed_qat import mixed_qat
from zenml_quant.precision_profile import profile_precisions
from zenml_quant.qat import QATOptions
from zenml_quant.targets import Targets
from zenml_quant.tasks import dataset_metric

sys.path.insert(0, str(ROOT))
WORK = ROOT / "benchmarks/_work"
QAT_EPOCHS = 5
MNIST = ROOT.parent / "shared/datasets/mnist.npz"


def load_case(name: str, seed: int = 0) -> tuple[Any, Any, str]:
    """The trained model, its dataset fitted to it (validation held out from test), a note."""
    if name == "book_mnist":
        if not MNIST.is_file():
            raise SystemExit(f"MNIST not found at {MNIST}")
        path = WORK / "book_mnist.keras"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run benchmarks/book_mnist.py first")
        model = tf_keras.models.load_model(path)
        data = load_dataset(MNIST, scale=2 / 255, offset=-1.0, seed=seed)
        return model, fit_to_model(model, data), "the book's CNN (benchmarks/book_mnist.py)"
    from zoo_compress import EPOCHS, prepare

    from zoo import ZOO, cifar10, write_npz

    entry = ZOO[name]
    if name == "resnet8":
        path = WORK / "resnet8_mlperf/resnet8.keras"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run benchmarks/resnet8_mlperf.py --epochs 24")
        model = tf_keras.models.load_model(path)
        data_path = write_npz(WORK / "zoo/cifar10_subset.npz", cifar10())
        data = load_dataset(data_path, scale=1 / 255, offset=0.0, seed=seed)
        note = "the zoo's ResNet-8 trained 24 epochs on the CIFAR-10 subset (resnet8_mlperf.py)"
        return model, fit_to_model(model, data), note
    work = WORK / "zoo"
    work.mkdir(parents=True, exist_ok=True)
    model_path, data_path = work / f"{name}.keras", work / f"{name}.npz"
    note = f"zoo {name}, reused from {model_path.relative_to(ROOT)}"
    if not model_path.exists():
        started = time.perf_counter()
        model_path, data_path, facts = prepare(name, work, EPOCHS.get(name, 8))
        note = f"zoo {name}, trained here ({time.perf_counter() - started:.0f} s)"
    model = tf_keras.models.load_model(model_path)
    raw = name in ("rescaling_cnn", "normalization_cnn")
    data = load_dataset(data_path, scale=1.0 if raw else 1 / 255, offset=0.0, seed=seed)
    task = "reconstruction" if name == "dense_autoencoder" else None
    return model, fit_to_model(model, data, task=task, metric=entry.metric), note


def aeq_as_a_user(content: bytes, x: np.ndarray) -> bytes:
    """ai-edge-quantizer's all-w4a8, calibrated by its own ``calibrate`` on 500 examples."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    interpreter = Interpreter(model_content=content)
    key = list(interpreter.get_signature_list())[0]
    name = list(interpreter.get_signature_runner(key).get_input_details())[0]
    picks = np.random.default_rng(0).choice(len(x), min(500, len(x)), replace=False)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        q = quantizer.Quantizer(content)
        q.add_static_config(".*", "*", 8, 4)
        calibration = q.calibrate({key: [{name: x[i : i + 1]} for i in np.sort(picks)]})
        return bytes(q.quantize(calibration).quantized_model)


def two_bit(quantizer: PrecisionQuantizer, plan: dict[str, str], layer: str) -> Any:
    """``plan`` with ``layer``'s weights at 2 bits: ai-edge-quantizer offers 2-bit weights only
    with dynamic quantization (float activations quantized on the fly)."""
    from ai_edge_quantizer import quantizer as aeq

    rule = {
        "regex": quantizer.scope_regex(layer),
        "operation": "*",
        "algorithm_key": "min_max_uniform_quantize",
        "op_config": {
            "weight_tensor_config": {
                "num_bits": 2,
                "symmetric": True,
                "granularity": "CHANNELWISE",
                "dtype": "INT",
            },
            "compute_precision": "INTEGER",
            "explicit_dequantize": False,
        },
    }
    q = aeq.Quantizer(quantizer.float_content)
    q.load_quantization_recipe([*quantizer.recipe(plan), rule])
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = q.quantize(quantizer.calibration, enable_progress_report=False)
    return inspect_tflite(bytes(result.quantized_model), mode="mixed")


def interleaved_latency_us(files: dict[str, Any], sample: np.ndarray, rounds: int = 5) -> dict:
    """Median over ``rounds`` of each file's median batch-1 latency (µs), files taking turns."""
    per_round: dict[str, list[float]] = {label: [] for label, t in files.items() if t.ok}
    for _ in range(rounds):
        for label in per_round:
            latency = measure_latency(files[label], sample, warmup=50, runs=200)
            per_round[label].append(latency.p50_ms * 1000)
    return {label: float(np.median(values)) for label, values in per_round.items()}


def measure_case(
    name: str, budget_value: float, profile_mode: str = "fast", sweep: tuple[float, ...] = ()
) -> list[str]:
    model, data, note = load_case(name)
    metric = dataset_metric(data)
    started = time.perf_counter()
    int8 = convert_model(model, "int8", representative_data=data.x_train)
    x_val, y_val = data.split("validation")
    keras_val = metric.score(model.predict(x_val, verbose=0), y_val, x_val)
    int8_val = metric.score(run_tflite(int8, x_val), y_val, x_val)
    # The allowed drop from the Keras model that leaves ``budget_value`` under plain int8.
    int8_cost = max(0.0, metric.worse_by(keras_val, int8_val))
    if not metric.fraction:
        int8_cost /= abs(keras_val)

    def under_int8(value: float) -> Targets:
        return Targets(
            max_quality_drop=value + int8_cost, relative_drop=not metric.fraction, metric=metric
        )

    budget = under_int8(budget_value)
    quantizer = PrecisionQuantizer(model, data.x_train)
    files: dict[str, Any] = {
        "int8 (TFLite converter)": int8,
        "w4a8, ai-edge-quantizer as a user runs it": inspect_tflite(
            aeq_as_a_user(quantizer.float_content, data.x_train), mode="w4a8"
        ),
    }
    for algorithm, label in (("min_max", "nearest"), ("octav", "OCTAV"), ("gptq", "GPTQ")):
        files[f"w4a8, {label} rounding"] = convert_uniform(
            model, "int4", representative_data=data.x_train, weight_algorithm=algorithm
        )
    profile = profile_precisions(
        model,
        data,
        precisions="int4,int8,float",
        mode=profile_mode,
        quantizer=quantizer,
        latency_runs=200,
    )
    reasons = {}
    for objective in ("bytes", "latency", "peak_memory"):
        result = allocate_precisions(
            model, data, budget=budget, objective=objective, profile=profile, quantizer=quantizer
        )
        files[f"mixed, {objective} objective"] = result.model
        reasons[f"mixed, {objective} objective"] = f"{result.status}: {result.reason}"
    for value in sweep:  # the bytes objective at other budgets, on the same profile
        result = allocate_precisions(
            model, data, budget=under_int8(value), profile=profile, quantizer=quantizer
        )
        label = f"mixed, bytes objective, budget {value:g} under int8"
        files[label] = result.model
        reasons[label] = f"{result.status}: {result.reason}"
    if name == "book_mnist":  # what 2-bit weights add on top of the bytes plan, layer by layer
        plan = dict(files["mixed, bytes objective"].precisions)
        for layer in [n for n, p in plan.items() if p == "int4"]:
            files[f"mixed + 2-bit weights (dynamic) on {layer}"] = two_bit(quantizer, plan, layer)
    label = "mixed_qat (int4 layers trained on the int4 grid)"
    try:
        trained = mixed_qat(
            model,
            data,
            budget=budget,
            options=QATOptions(epochs=QAT_EPOCHS, learning_rate=2e-4, early_stopping_patience=2),
        )
        files[label] = trained.tflite
        reasons["mixed_qat"] = "; ".join(trained.tflite.notes)
    except InvalidOptionError as exc:  # a candidate that cannot be built is a row, not a crash
        files[label] = failed_model("mixed_qat", str(exc))
        reasons["mixed_qat"] = str(exc)
    seconds = time.perf_counter() - started
    x_test, y_test = data.x_test, data.y_test
    keras_quality = metric.score(model.predict(x_test, verbose=0), y_test, x_test)
    int8_quality = metric.score(run_tflite(int8, x_test), y_test, x_test)
    lines = [
        f"### {name}: {note}",
        "",
        f"{metric.label} on {len(y_test):,} test examples; Keras {metric.format(keras_quality)}; "
        f"budget {budget_value:g} under plain int8 on validation ({data.validation_source}): "
        f"Keras {metric.format(keras_val)}, int8 {metric.format(int8_val)}, so "
        f"{budget.describe_quality()} from Keras. Quantizers, profile "
        f"({profile.evaluations} evaluations, {profile.mode}), allocations and mixed_qat: "
        f"{seconds:.0f} s.",
        "",
        "| file | bytes | vs int8 | test | vs int8 | latency (µs) | vs int8 | peak act. (B) "
        "| layers not int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    sample = np.asarray(x_test[:1])[0]
    latencies = interleaved_latency_us(files, sample)
    latency_int8 = latencies["int8 (TFLite converter)"]
    for label, tflite in files.items():
        if not tflite.ok:
            lines.append(f"| {label} | failed: {tflite.error} | | | | | | | |")
            continue
        quality = metric.score(run_tflite(tflite, x_test), y_test, x_test)
        latency = latencies[label]
        change = metric.format_change(-metric.worse_by(int8_quality, quality))
        moved = ", ".join(f"{layer} {p}" for layer, p in tflite.precisions if p != "int8")
        if not tflite.precisions:
            moved = "(converter: every layer int8)" if tflite is int8 else ""
        if len(moved) > 160:
            moved = moved[:157] + "..."
        lines.append(
            f"| {label} | {tflite.size_bytes:,} | {tflite.size_bytes / int8.size_bytes:.2f}x | "
            f"{metric.format(quality)} | {change} | {latency:.0f} | "
            f"{latency / latency_int8:.2f}x | {tflite.peak_activation_bytes or 0:,} | {moved} |"
        )
    lines += ["", *(f"- {o}: {r[:600]}" for o, r in reasons.items()), ""]
    return lines


def split_seeds_table(
    name: str, budget_value: float, seeds: list[int], profile_mode: str
) -> list[str]:
    """The bytes objective on several validation/test splits of the same model: where one split
    is a lucky or unlucky draw, the median over splits says what the method delivers."""
    model, data, _ = load_case(name)
    metric = dataset_metric(data)
    quantizer = PrecisionQuantizer(model, data.x_train)  # calibrated on train: every split
    int8 = convert_model(model, "int8", representative_data=data.x_train)
    lines = [
        f"#### {name}: the bytes objective, {budget_value:g} under plain int8, on "
        f"{len(seeds)} validation/test splits ({profile_mode} profile)",
        "",
        "| split seed | bytes | vs int8 | validation vs int8 | test vs int8 | layers not int8 |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    ratios, val_changes, test_changes = [], [], []
    for seed in seeds:
        _, data, _ = load_case(name, seed)
        scores = {}
        for split in ("validation", "test"):
            x, y = data.split(split)
            scores[split] = (
                metric.score(model.predict(x, verbose=0), y, x),
                metric.score(run_tflite(int8, x), y, x),
            )
        int8_cost = max(0.0, metric.worse_by(*scores["validation"]))
        if not metric.fraction:
            int8_cost /= abs(scores["validation"][0])
        budget = Targets(
            max_quality_drop=budget_value + int8_cost,
            relative_drop=not metric.fraction,
            metric=metric,
        )
        result = allocate_precisions(
            model, data, budget=budget, quantizer=quantizer, profile_mode=profile_mode
        )
        changes = []
        for split in ("validation", "test"):
            x, y = data.split(split)
            quality = metric.score(run_tflite(result.model, x), y, x)
            changes.append(-metric.worse_by(scores[split][1], quality))
        ratio = result.model.size_bytes / int8.size_bytes
        ratios.append(ratio)
        val_changes.append(changes[0])
        test_changes.append(changes[1])
        moved = ", ".join(f"{layer} {p}" for layer, p in result.model.precisions if p != "int8")
        lines.append(
            f"| {seed} | {result.model.size_bytes:,} | {ratio:.2f}x | "
            f"{metric.format_change(changes[0])} | {metric.format_change(changes[1])} | "
            f"{moved[:120] + ('...' if len(moved) > 120 else '')} |"
        )
        print(lines[-1], flush=True)
    lines += [
        f"| median | | {np.median(ratios):.2f}x | {metric.format_change(np.median(val_changes))} "
        f"| {metric.format_change(np.median(test_changes))} | |",
        "",
    ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--models", nargs="+", default=["book_mnist", "resnet8", "ds_cnn", "dense_autoencoder"]
    )
    p.add_argument("--budget", type=float, default=0.005)
    p.add_argument("--section", default="mixed-precision", help="BENCHMARKS.md section to write")
    p.add_argument("--profile-mode", choices=("fast", "exhaustive"), default="fast")
    p.add_argument(
        "--split-seeds",
        nargs="*",
        type=int,
        default=[],
        help="also run the bytes objective on these validation/test split seeds (a table each)",
    )
    p.add_argument(
        "--sweep", nargs="*", type=float, default=[], help="more budgets for the bytes objective"
    )
    args = p.parse_args()
    started = time.perf_counter()
    body = []
    for name in args.models:
        print(f"== {name}", flush=True)
        lines = measure_case(name, args.budget, args.profile_mode, tuple(args.sweep))
        if args.split_seeds:
            lines += split_seeds_table(name, args.budget, args.split_seeds, args.profile_mode)
        print("\n".join(lines), flush=True)
        body += lines
    command = shlex.join(["python", "benchmarks/mixed_precision.py", *sys.argv[1:]])
    section = "\n".join(
        [
            f"## Per-layer precision: int4, int8 and float chosen per layer (`{args.section}`)",
            "",
            f"`{command}`, {date.today()}, {platform.machine()}, 2 cores, ai-edge-litert, one "
            f"thread; {time.perf_counter() - started:.0f} s in all. Each model's files are "
            "measured side by side in one loop; `vs int8` is against the converter's int8.",
            "",
            *body,
        ]
    )
    write_section(args.section, section)


if __name__ == "__main__":
    main()
