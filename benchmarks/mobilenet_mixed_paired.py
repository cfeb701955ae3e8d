"""MobileNetV2 (alpha 0.35): what keeping its most sensitive layers in float buys over int8,
and whether the paired test lets the mixed candidate keep them.

Takes the zoo's MobileNetV2 as ``benchmarks/zoo_compress.py`` trains it (reused from its work
folder when present), ranks its layers with the package's fast sensitivity profile on the
validation split, then builds int8 models keeping the top 1, 3 and 11 layers in float (11 is
what the mixed candidate kept before the paired test, 23 % larger than int8). For each: bytes,
validation and test top-1, and the one-sided paired test of its validation gain over plain
int8 (:func:`zenml_quant.paired.paired_gain`), which is what lets ``quantize_mixed`` keep float
layers. Writes the ``mobilenet-mixed-paired`` section of BENCHMARKS.md. Run from the project
root: ``python benchmarks/mobilenet_mixed_paired.py``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from _sections import write_section  # beside this script
from zoo_compress import prepare  # beside this script: trains and saves a zoo entry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zenml_quant.conform import fit_to_model  # noqa: E402
from zenml_quant.datasets import load_npz  # noqa: E402
from zenml_quant.interpreter import run_tflite  # noqa: E402
from zenml_quant.models import load_model  # noqa: E402
from zenml_quant.paired import paired_gain  # noqa: E402
from zenml_quant.selective import SelectiveQuantizer  # noqa: E402
from zenml_quant.sensitivity import profile_sensitivity  # noqa: E402
from zenml_quant.tasks import dataset_metric  # noqa: E402

NAME = "mobilenet_v2"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work/zoo"))
    p.add_argument("--epochs", type=int, default=12, help="when the model must be trained")
    p.add_argument("--keep", type=int, nargs="*", default=[1, 3, 11])
    return p.parse_args()


def main() -> None:
    args = parse_args()
    work = Path(args.work_dir)
    model_path, data_path = work / f"{NAME}.keras", work / f"{NAME}.npz"
    if not (model_path.exists() and data_path.exists()):
        work.mkdir(parents=True, exist_ok=True)
        model_path, data_path, _ = prepare(NAME, work, args.epochs)
    model = load_model(model_path)
    data = fit_to_model(model, load_npz(data_path))
    metric = dataset_metric(data)
    (x_val, y_val), (x_test, y_test) = data.split("validation"), data.split("test")

    start = time.perf_counter()
    quantizer = SelectiveQuantizer(model, data.x_train)
    ranking = profile_sensitivity(model, data, split="validation", quantizer=quantizer).ranking
    profile_s = time.perf_counter() - start
    int8 = quantizer.quantize([])
    int8_val, int8_test = run_tflite(int8, x_val), run_tflite(int8, x_test)
    rows = [
        f"| int8 (no float layer) | {int8.size_bytes:,} | 1.00x | "
        f"{100 * metric.score(int8_val, y_val):.2f} % | {100 * metric.score(int8_test, y_test):.2f} %"
        " | | | returned |"
    ]
    for k in args.keep:
        floats = list(ranking[:k])
        mixed = quantizer.quantize(floats)
        val, test = run_tflite(mixed, x_val), run_tflite(mixed, x_test)
        test_result = paired_gain(metric, val, int8_val, y_val)
        verdict = "kept (significant gain)" if test_result.significant else "int8 returned instead"
        rows.append(
            f"| top {k} sensitive in float ({', '.join(floats[:3])}{', ...' if k > 3 else ''}) | "
            f"{mixed.size_bytes:,} | {mixed.size_bytes / int8.size_bytes:.2f}x | "
            f"{100 * metric.score(val, y_val):.2f} % | {100 * metric.score(test, y_test):.2f} % | "
            f"{metric.format_change(test_result.gain)} | {test_result.p_value:.3g} | {verdict} |"
        )
        print(rows[-1], flush=True)

    command = shlex.join(["python", "benchmarks/mobilenet_mixed_paired.py", *sys.argv[1:]])
    lines = [
        "## MobileNetV2: float layers kept only for a gain the paired test can tell from noise",
        "",
        f"The zoo's MobileNetV2 (alpha 0.35, 96x96, {model.count_params():,} parameters, trained "
        "by `benchmarks/zoo_compress.py` on its synthetic 10-class images; BatchNorm statistics "
        f"re-estimated after training). Layers ranked by the fast sensitivity profile on the "
        f"{len(y_val):,}-example validation split ({profile_s:.0f} s); each row keeps the top k "
        "in float and quantizes the rest to int8. The gain and p-value are the one-sided sign "
        "test of the row's validation results against plain int8's, example by example "
        "(`zenml_quant.paired.paired_gain`): `quantize_mixed` keeps float layers only when it "
        f"is significant at 5 %, else returns int8. Test split: {len(y_test):,} examples. "
        f"Command: `{command}`.",
        "",
        "| model | bytes | vs int8 | validation top-1 | test top-1 | validation gain over "
        "int8 (pts) | p | mixed candidate |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    write_section("mobilenet-mixed-paired", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
