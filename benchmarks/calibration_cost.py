"""What would calibrating once save? Calibration against the rest of an int8 conversion.

``compress`` calibrates the same float model several times: the int8 conversion, the
sensitivity profile (the TFLite debugger calibrates on construction) and, with precisions int8
and float, the mixed model (a second debugger). Sharing one calibration between them needs
TensorFlow's private ``mlir_quantize`` on a calibrate-only model. This measures, per model and
side by side in interleaved rounds (medians), what each piece costs:

- ``int8``: the whole int8 conversion as ``convert_model`` does it (graph conversion,
  calibration on 500 train examples, quantization, our finishing);
- ``float32``: the graph conversion alone (no calibration);
- ``calibrate``: a calibrate-only conversion (``_experimental_calibrate_only``);
- ``quantize``: ``mlir_quantize`` of that calibrated model: what each step would pay if the
  calibration were shared;
- ``debugger``: constructing the sensitivity profile's :class:`SelectiveQuantizer`.

Writes the ``calibration-cost`` section of ``BENCHMARKS.md``. Run from the project root:
``python benchmarks/calibration_cost.py [--models resnet8,mobilenet_v2,ds_cnn] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time

from _sections import write_section  # beside this script
from mixed_precision import load_case

from zenml_quant.convert import configure_converter, convert_model, make_converter
from zenml_quant.selective import SelectiveQuantizer
from zenml_quant.types import ConversionOptions

PIECES = ("int8", "float32", "calibrate", "quantize", "debugger")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet8,mobilenet_v2,ds_cnn")
    p.add_argument("--rounds", type=int, default=5)
    return p.parse_args()


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def calibrate_only(model, x) -> bytes:
    converter, _ = make_converter(model, "int8")
    configure_converter(converter, "int8", x, ConversionOptions())
    converter._experimental_calibrate_only = True  # private: what the debugger does inside
    return bytes(converter.convert())


def quantize(calibrated: bytes) -> bytes:
    import tensorflow as tf
    from tensorflow.lite.python import convert

    return bytes(
        convert.mlir_quantize(
            calibrated, input_data_type=tf.int8, output_data_type=tf.int8, fully_quantize=True
        )
    )


def measure(model, x, rounds: int) -> dict[str, float]:
    runs: dict[str, list[float]] = {p: [] for p in PIECES}
    for round_ in range(rounds + 1):  # round 0 warms up: the first conversion pays set-up
        if round_ == 1:
            runs = {p: [] for p in PIECES}
        runs["int8"].append(timed(lambda: convert_model(model, "int8", representative_data=x))[0])
        runs["float32"].append(timed(lambda: convert_model(model, "float32"))[0])
        seconds, calibrated = timed(lambda: calibrate_only(model, x))
        runs["calibrate"].append(seconds)
        runs["quantize"].append(timed(lambda c=calibrated: quantize(c))[0])
        runs["debugger"].append(timed(lambda: SelectiveQuantizer(model, x))[0])
    return {p: statistics.median(v) for p, v in runs.items()}


def main() -> None:
    args = parse_args()
    rows = [
        "| model | int8 conversion | float32 (no calibration) | calibrate only | of which "
        "calibration | quantize a calibrated model | debugger set-up | saved per re-use |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, data, note = load_case(name)
        got = measure(model, data.x_train, args.rounds)
        saved = got["int8"] - got["quantize"]
        rows.append(
            f"| {name} ({model.count_params():,} params) | {got['int8']:.2f} s | "
            f"{got['float32']:.2f} s | {got['calibrate']:.2f} s | "
            f"{got['calibrate'] - got['float32']:.2f} s | {got['quantize']:.3f} s | "
            f"{got['debugger']:.2f} s | {saved:.2f} s ({100 * saved / got['int8']:.0f} %) |"
        )
        print(rows[-1], flush=True)
    command = "python benchmarks/calibration_cost.py " + shlex.join(sys.argv[1:])
    section = "\n".join(
        [
            "## Calibration's cost: what calibrating once would save",
            "",
            f"Command: `{command.strip()}`. Medians of {args.rounds} interleaved rounds after a "
            'warm-up round, 500 calibration examples from the train split. "Of which '
            'calibration" is calibrate-only minus the float32 conversion (the graph '
            'conversion both share). "Saved per re-use" is the int8 conversion minus '
            "quantizing an already calibrated model: what each step that calibrates the same "
            "model again would save if it were handed the calibrated model.",
            "",
            *rows,
        ]
    )
    write_section("calibration-cost", section)
    print(section)


if __name__ == "__main__":
    main()
