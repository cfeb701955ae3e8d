"""A ResNet-8 trained on other images, compressed on the user's: what re-estimating its
BatchNorm statistics wins back, with no training.

A model "brought from elsewhere" is simulated by training the zoo's ResNet-8 on the CIFAR-10
subset's training images after a change a different camera or pipeline would make:

- ``colour``: another white balance and gamma (red x1.15, blue x0.85, gamma 0.8);
- ``jpeg``: the images recompressed at JPEG quality 20 (blockier, softer colour).

The user then compresses it on the unchanged images (validation held out from the test split,
as the CLI does). Each row is measured on the same test images: the Keras model with the
original statistics, the Keras model with statistics re-estimated on the user's training
images, plain int8 of the original, and the ``bn_int8`` candidate. The model trained on the
unchanged images (``benchmarks/resnet8_mlperf.py``) is the control: there is nothing to win
back. Writes the ``batchnorm-shift`` section of BENCHMARKS.md.

    python benchmarks/batchnorm_shift.py [--epochs 12] [--shifts colour jpeg]
"""

from __future__ import annotations

import argparse
import io
import shlex
import sys
import time
from datetime import date

import numpy as np
from _sections import ROOT, write_section  # beside this script

sys.path.insert(0, str(ROOT))

from resnet8_mlperf import augmented  # noqa: E402

from zenml_quant._compat import tf_keras  # noqa: E402
from zenml_quant.batchnorm import recalibrated_int8  # noqa: E402
from zenml_quant.conform import fit_to_model  # noqa: E402
from zenml_quant.convert import convert_model  # noqa: E402
from zenml_quant.datasets import load_dataset  # noqa: E402
from zenml_quant.interpreter import run_tflite  # noqa: E402
from zenml_quant.tasks import dataset_metric  # noqa: E402
from zoo import ZOO, DatasetUnavailable, cifar10, write_npz  # noqa: E402

WORK = ROOT / "benchmarks/_work"
N_VAL = 2_000


def colour(x: np.ndarray) -> np.ndarray:
    """Another camera's white balance and gamma, on float pixels in [0, 1]."""
    return np.clip(np.power(x, 0.8) * np.array([1.15, 1.0, 0.85], np.float32), 0.0, 1.0)


def jpeg(x: np.ndarray, quality: int = 20) -> np.ndarray:
    """Each image recompressed as a JPEG of ``quality``."""
    from PIL import Image

    out = np.empty_like(x)
    for i, image in enumerate(x):
        buffer = io.BytesIO()
        Image.fromarray((image * 255).round().astype(np.uint8)).save(
            buffer, "JPEG", quality=quality
        )
        out[i] = np.asarray(Image.open(buffer), np.float32) / 255.0
    return out


SHIFTS = {"colour": colour, "jpeg": jpeg}


def train_elsewhere(name: str, x: np.ndarray, y: np.ndarray, epochs: int) -> tuple[object, float]:
    """ResNet-8 trained on the shifted images, best epoch on its own (shifted) held-out part."""
    path = WORK / f"batchnorm_shift/resnet8_{name}_{epochs}ep.keras"
    if path.exists():
        return tf_keras.models.load_model(path), 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    shifted = SHIFTS[name](x)
    x_fit, y_fit, x_val, y_val = shifted[:-N_VAL], y[:-N_VAL], shifted[-N_VAL:], y[-N_VAL:]
    model = ZOO["resnet8"].build_benchmark(seed=0)
    steps = -(-len(x_fit) // 64) * epochs
    schedule = tf_keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.02)
    model.compile(
        tf_keras.optimizers.Adam(schedule),
        tf_keras.losses.SparseCategoricalCrossentropy(),
        ["accuracy"],
    )
    best = path.with_suffix(".weights.h5")
    tf_keras.utils.set_random_seed(0)
    started = time.perf_counter()
    model.fit(
        augmented(x_fit, y_fit, 64, seed=0),
        validation_data=(x_val, y_val),
        epochs=epochs,
        callbacks=[
            tf_keras.callbacks.ModelCheckpoint(
                str(best),
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            )
        ],
        verbose=2,
    )
    seconds = time.perf_counter() - started
    model.load_weights(best)
    model.save(path)
    return model, seconds


def measure(label: str, model: object, data: object) -> str:
    """One table row: the four test figures and what re-estimation cost."""
    metric = dataset_metric(data)
    x, y = data.x_test, data.y_test

    def score(outputs: np.ndarray) -> float:
        return metric.score(outputs, y, x)

    int8 = convert_model(model, "int8", representative_data=data.x_train)
    started = time.perf_counter()
    candidate = recalibrated_int8(model, data)
    seconds = time.perf_counter() - started
    keras_before = score(model.predict(x, batch_size=256, verbose=0))
    keras_after = score(candidate.keras_model.predict(x, batch_size=256, verbose=0))
    int8_before, int8_after = score(run_tflite(int8, x)), score(run_tflite(candidate.tflite, x))
    row = (
        f"| {label} | {metric.format(keras_before)} | {metric.format(keras_after)} | "
        f"{metric.format(int8_before)} | {metric.format(int8_after)} | "
        f"{metric.format_change(int8_after - int8_before)} | "
        f"{metric.format(candidate.quality_before)} -> {metric.format(candidate.quality_after)} | "
        f"{candidate.tflite.size_bytes:,} | {seconds:.0f} s |"
    )
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--shifts", nargs="+", choices=list(SHIFTS), default=list(SHIFTS))
    args = p.parse_args()
    try:
        arrays = cifar10(scale=True)
    except DatasetUnavailable as exc:
        print(f"Skipped: {exc}")
        return
    started = time.perf_counter()
    data_path = write_npz(WORK / "zoo/cifar10_subset.npz", cifar10())
    rows, trained = [], []
    control = WORK / "resnet8_mlperf/resnet8.keras"
    for name in ["control", *args.shifts]:
        if name == "control":
            if not control.exists():
                print(f"{control} is missing (benchmarks/resnet8_mlperf.py): no control row")
                continue
            model, label = tf_keras.models.load_model(control), "unchanged images (control)"
        else:
            model, seconds = train_elsewhere(
                name, arrays["x_train"], arrays["y_train"], args.epochs
            )
            label = f"{name} shift, {args.epochs} epochs"
            trained.append(f"{name}: {seconds / 60:.1f} min" if seconds else f"{name}: reused")
        data = fit_to_model(model, load_dataset(data_path, scale=1 / 255, offset=0.0))
        rows.append(measure(label, model, data))
    command = shlex.join(["python", "benchmarks/batchnorm_shift.py", *sys.argv[1:]])
    section = "\n".join(
        [
            "## BatchNorm statistics re-estimated: a model trained on other images (`batchnorm-shift`)",
            "",
            f"`{command}`, {date.today()}, 2 cores; {time.perf_counter() - started:.0f} s in all "
            f"(training: {', '.join(trained) or 'none'}). The zoo's ResNet-8 trained on the "
            "CIFAR-10 subset's training images after a colour change (white balance and gamma) "
            "or a JPEG recompression at quality 20, then compressed on the unchanged images. "
            "Test top-1 on the subset's 5,000 test images not held out for validation; "
            "re-estimation uses 4,096 of the unchanged training images, no training; "
            "`bn_int8` is plain int8 of the re-estimated model.",
            "",
            "| model | Keras, original statistics | Keras, re-estimated | int8 | bn_int8 | "
            "bn_int8 vs int8 | Keras on validation, before -> after | bn_int8 bytes | "
            "re-estimation + int8 |",
            "|---|---:|---:|---:|---:|---:|---|---:|---:|",
            *rows,
            "",
        ]
    )
    write_section("batchnorm-shift", section)


if __name__ == "__main__":
    main()
