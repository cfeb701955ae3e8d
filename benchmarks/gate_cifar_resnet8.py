"""The gate and the run on a real architecture: MLPerf Tiny's ResNet-8 on the CIFAR-10 subset.

Builds ResNet-8 as the MLPerf Tiny image-classification reference describes it (16-32-64
residual stages, BatchNorm, global pooling; 78,666 parameters), trains it on 18,000 of the
subset's training images, and keeps the other 2,000 as the validation split (``x_val`` in the
``.npz``: data the model never saw, on which every decision is made). Then, as a user would:

1. ``zenml-quant compress --qat --stage production`` with every mode: each candidate is written
   or fails alone with its reason, and the best passing one is promoted;
2. the same command on a weaker model (the same net after 1 epoch): the gate must keep the
   champion, and the promoted version's deployment artifact must still be the first run's file.

Writes its section of ``BENCHMARKS.md``. Run from the project root:
``python benchmarks/gate_cifar_resnet8.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _sections import write_section  # beside this script

from zenml_quant._compat import tf_keras

ROOT = Path(__file__).resolve().parent.parent
N_VAL = 2_000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cifar", type=Path, default=ROOT.parent / "shared/datasets/cifar10.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--epochs", type=int, default=8)
    return p.parse_args()


def resnet8() -> tf_keras.Model:
    """MLPerf Tiny's ResNet-8 for 32x32x3 CIFAR-10 (stem 16, stages 16/32/64, 1x1 shortcuts)."""
    L = tf_keras.layers
    reg = tf_keras.regularizers.l2(1e-4)

    def conv(x, filters, strides=1, kernel=3):
        return L.Conv2D(filters, kernel, strides, "same", kernel_regularizer=reg)(x)

    inputs = L.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(conv(inputs, 16)))
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = L.ReLU()(L.BatchNormalization()(conv(x, filters, strides)))
        y = L.BatchNormalization()(conv(y, filters))
        if strides != 1:
            x = conv(x, filters, strides, kernel=1)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(8)(x))
    model = tf_keras.Model(inputs, L.Dense(10)(x), name="resnet8")
    model.compile(
        tf_keras.optimizers.Adam(1e-3),
        tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ["accuracy"],
    )
    return model


def compress(cli: Path, model: Path, data: Path, out: Path, env: dict, *extra: str) -> dict:
    cmd = [
        str(cli), "compress", "--model", str(model), "--data", str(data),
        "--mode", "float32", "--mode", "int8", "--mode", "int16x8", "--qat",
        "--stage", "production", "--model-name", "resnet8-cifar",
        "--output-dir", str(out), "--json", str(out.with_suffix(".json")), *extra,
    ]  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    print("Running:", shlex.join(cmd))
    start = time.perf_counter()
    code = subprocess.run(cmd, env=env).returncode
    summary = json.loads(out.with_suffix(".json").read_text())
    summary["_exit"], summary["_seconds"], summary["_command"] = (
        code,
        time.perf_counter() - start,
        cmd,
    )
    return summary


def table(summary: dict) -> list[str]:
    rows = ["| candidate | status | accuracy (test) | bytes | p50 latency, 1 thread | reason / notes |",
            "|---|---|---:|---:|---:|---|"]  # fmt: skip
    for c in summary["candidates"]:
        acc = "" if c["accuracy"] is None else f"{100 * c['accuracy']:.2f} %"
        size = "" if c["size_bytes"] is None else f"{c['size_bytes']:,}"
        lat = "" if c["latency_ms_p50"] is None else f"{1000 * c['latency_ms_p50']:.0f} µs"
        why = "; ".join([c["reason"], *c["notes"]]).replace("|", "/")
        rows.append(f"| {c['name']} | {c['status']} | {acc} | {size} | {lat} | {why[:300]} |")
    return rows


def main() -> None:
    args = parse_args()
    if not args.cifar.is_file():
        sys.exit(f"CIFAR-10 subset not found at {args.cifar}: pass --cifar.")
    work = Path(args.work_dir) / "gate_cifar"
    work.mkdir(parents=True, exist_ok=True)
    with np.load(args.cifar) as d:
        x, y, x_test, y_test = d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    data = work / "cifar_heldout_val.npz"
    np.savez(data, x_train=x[:-N_VAL], y_train=y[:-N_VAL], x_val=x[-N_VAL:], y_val=y[-N_VAL:],
             x_test=x_test, y_test=y_test)  # fmt: skip
    xs = x[:-N_VAL].astype(np.float32) / 255
    tf_keras.utils.set_random_seed(0)
    model, start = resnet8(), time.perf_counter()
    model.fit(xs, y[:-N_VAL], batch_size=64, epochs=args.epochs, verbose=2)
    train_s = time.perf_counter() - start
    strong = work / "resnet8.keras"
    model.save(strong)
    tf_keras.utils.set_random_seed(1)
    weak_model = resnet8()
    weak_model.fit(xs[:4000], y[:4000], batch_size=64, epochs=1, verbose=2)
    weak = work / "resnet8_weak.keras"
    weak_model.save(weak)

    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(work / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    cli = Path(sys.executable).with_name("zenml-quant")
    first = compress(cli, strong, data, work / "first", env)
    second = compress(cli, weak, data, work / "second", env, "--min-accuracy", "0")
    # A script file, not `python -c` (ZenML needs a main file for its source root), writing the
    # file itself (ZenML logs to stdout).
    fetched = work / "deployed.tflite"
    (work / "fetch.py").write_text(
        "from zenml import Model\n"
        "t = Model(name='resnet8-cifar', version='production')"
        ".get_deployment_artifact('zq_deployment_tflite').load()\n"
        f"open({str(fetched)!r}, 'wb').write(t.content)\n"
    )
    subprocess.run([sys.executable, str(work / "fetch.py")], env=env, capture_output=True)
    deployed = fetched.read_bytes() if fetched.exists() else b""
    chosen = first["gate"]["selected"]
    chosen_path = next((c["path"] for c in first["candidates"] if c["name"] == chosen), None)
    same = chosen_path is not None and Path(chosen_path).read_bytes() == deployed
    params = model.count_params()
    lines = [
        "## The gate on a real architecture: ResNet-8 (MLPerf Tiny) on the CIFAR-10 subset",
        "",
        f"ResNet-8 built by `benchmarks/gate_cifar_resnet8.py` ({params:,} parameters), trained "
        f"{args.epochs} epochs on 18,000 images of `../shared/datasets/cifar10.npz` (a JPEG copy "
        f"of CIFAR-10: not the original pixels) in {train_s:.0f} s; the other 2,000 training "
        "images are the `x_val` split every decision is made on; figures on the 10,000 test "
        "images. Not comparable to MLPerf Tiny's 85 % target (different pixels, short training).",
        "",
        f"Run 1: `{shlex.join(['zenml-quant', *first['_command'][1:]]).replace(str(ROOT) + '/', '')}`"
        f" (exit {first['_exit']}, {first['_seconds']:.0f} s). Keras baseline "
        f"{100 * first['baseline']['accuracy']:.2f} %.",
        "",
        *table(first),
        "",
        f"Gate: {'passed' if first['gate']['passed'] else 'refused'}; {first['gate']['promotion']}.",
        "",
        f"Run 2, a weaker model (1 epoch on 4,000 images) with `--min-accuracy 0`, same model "
        f"name and stage (exit {second['_exit']}, {second['_seconds']:.0f} s): keras "
        f"{100 * second['baseline']['accuracy']:.2f} %; gate "
        f"{'passed' if second['gate']['passed'] else 'refused'}; {second['gate']['promotion']}. "
        + "; ".join(second["gate"]["reasons"][:3]).replace("|", "/"),
        "",
        f"The production version's deployment artifact after both runs is run 1's `{chosen}` "
        f"file, byte for byte: {'yes' if same else 'NO'} ({len(deployed):,} B).",
    ]
    write_section("gate-cifar-resnet8", "\n".join(lines))
    print("\n".join(lines))
    ok = first["_exit"] == 0 and first["gate"]["passed"] and not second["gate"]["passed"] and same
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
