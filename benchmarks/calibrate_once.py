"""What calibrating once saves in ``compress``: its three int8 steps with and without sharing.

``compress`` builds three things from the same calibrated float model: the int8 candidate
(``zq_convert_int8``), the sensitivity profile (``zq_profile_sensitivity``) and the int8 model
with float layers under a quality budget (``zq_quantize_mixed``, with ``--precisions
int8,float``). Before ``zq_calibrate`` each calibrated on its own; now they quantize from its
one output. Per model, side by side in interleaved rounds (the order alternating), this runs
the three core calls both ways:

- ``separate``: ``convert_model(int8)``, ``profile_sensitivity``, ``quantize_post_training``
  (budget, ranked by that profile), each calibrating for itself, as before;
- ``shared``: ``calibrate`` once, then the same three calls handed the calibrated model.

It checks that both ways give the same int8 outputs, the same ranking and the same float
layers (sharing must change nothing but the time), and writes medians to the
``calibrate-once`` section of ``BENCHMARKS.md``. Run from the project root:

    python benchmarks/calibrate_once.py [--models resnet8,mobilenet_v2,ds_cnn] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from typing import Any

import numpy as np
from _sections import write_section  # beside this script
from mixed_precision import load_case

from zenml_quant.calibration import calibrate, int8_from_calibrated
from zenml_quant.convert import convert_model
from zenml_quant.interpreter import run_tflite
from zenml_quant.ptq import quantize_post_training
from zenml_quant.sensitivity import profile_sensitivity
from zenml_quant.targets import Targets
from zenml_quant.tasks import dataset_metric

PIECES = ("calibrate", "int8", "sensitivity", "mixed")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet8,mobilenet_v2,ds_cnn")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=float, default=0.01, help="quality drop for the mixed model")
    args = p.parse_args()
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if not 0 <= args.budget < 1:
        p.error("--budget must be in [0, 1)")
    return args


def run_arm(model: Any, data: Any, budget: Targets, shared: bool) -> tuple[dict, dict]:
    """Seconds per piece and what was built, one way."""
    seconds: dict[str, float] = {}

    def timed(piece: str, fn: Any) -> Any:
        start = time.perf_counter()
        out = fn()
        seconds[piece] = time.perf_counter() - start
        return out

    calibrated = timed("calibrate", lambda: calibrate(model, data.x_train)) if shared else None
    if not shared:
        seconds["calibrate"] = 0.0
    int8 = timed(
        "int8",
        lambda: (
            int8_from_calibrated(calibrated)
            if shared
            else convert_model(model, "int8", representative_data=data.x_train)
        ),
    )
    report = timed("sensitivity", lambda: profile_sensitivity(model, data, calibrated=calibrated))
    mixed = timed(
        "mixed",
        lambda: quantize_post_training(
            model, data, budget=budget, ranking=list(report.ranking), calibrated=calibrated
        ),
    )
    built = {
        "int8": run_tflite(int8, data.x_test[:200]),
        "ranking": tuple(report.ranking),
        "float_layers": tuple(mixed.model.float_layers),
    }
    return seconds, built


def measure(name: str, rounds: int, budget_value: float) -> dict[str, Any]:
    model, data, _ = load_case(name)
    budget = Targets(max_quality_drop=budget_value, metric=dataset_metric(data))
    runs = {arm: {p: [] for p in PIECES} for arm in ("separate", "shared")}
    built: dict[str, dict] = {}
    for round_ in range(rounds + 1):  # round 0 warms up: the first conversion pays set-up
        order = ("separate", "shared") if round_ % 2 else ("shared", "separate")
        for arm in order:
            seconds, built[arm] = run_arm(model, data, budget, arm == "shared")
            if round_:
                for piece, value in seconds.items():
                    runs[arm][piece].append(value)
            print(f"{name} round {round_} {arm}: {seconds}", flush=True)
    same = (
        np.array_equal(built["separate"]["int8"], built["shared"]["int8"])
        and built["separate"]["ranking"] == built["shared"]["ranking"]
        and built["separate"]["float_layers"] == built["shared"]["float_layers"]
    )
    medians = {
        arm: {p: statistics.median(v) for p, v in pieces.items()} for arm, pieces in runs.items()
    }
    totals = {
        arm: statistics.median(sum(runs[arm][p][i] for p in PIECES) for i in range(rounds))
        for arm in runs
    }
    return {
        "params": model.count_params(),
        "medians": medians,
        "totals": totals,
        "same": same,
        "float_layers": built["shared"]["float_layers"],
    }


def main() -> None:
    args = parse_args()
    rows = [
        "| model | way | calibrate | int8 conversion | sensitivity (fast) | mixed (budget) | "
        "three steps | saved | same results |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        got = measure(name, args.rounds, args.budget)
        saved = got["totals"]["separate"] - got["totals"]["shared"]
        for arm in ("separate", "shared"):
            m = got["medians"][arm]
            rows.append(
                f"| {name} ({got['params']:,} params) | {arm} | "
                + (f"{m['calibrate']:.2f} s" if arm == "shared" else "-")
                + f" | {m['int8']:.2f} s | {m['sensitivity']:.2f} s | "
                f"{m['mixed']:.2f} s | {got['totals'][arm]:.2f} s | "
                + (
                    f"{saved:.2f} s ({100 * saved / got['totals']['separate']:.0f} %) | "
                    f"{'yes' if got['same'] else 'NO'} |"
                    if arm == "shared"
                    else " | |"
                )
            )
        print("\n".join(rows[-2:]), flush=True)
    command = "python benchmarks/calibrate_once.py " + shlex.join(sys.argv[1:])
    section = "\n".join(
        [
            "## Calibrating once: compress's three int8 steps with and without sharing",
            "",
            f"Command: `{command.strip()}`. Medians of {args.rounds} interleaved rounds (the "
            "order alternating) after a warm-up round; 500 calibration examples from the train "
            f"split, the fast sensitivity profile, the mixed model under a {args.budget} quality "
            "budget ranked by that profile. `separate`: each of the three calibrates for itself "
            "(before `zq_calibrate`); `shared`: one calibration, handed to all three. "
            '"Three steps" is the median of each round\'s sum. "Same results": identical int8 '
            "outputs on 200 test examples, the same sensitivity ranking and the same float "
            "layers both ways.",
            "",
            *rows,
        ]
    )
    write_section("calibrate-once", section)
    print(section)


if __name__ == "__main__":
    main()
