"""``zenml-quant search --max-size-kb`` on the book's MNIST CNN: nothing below the accuracy floor.

With only a size target, the search used to return and mark "met" models at 8-25 % accuracy.
This runs the real command as a user would (only ``--max-size-kb``, the default floor of 1 point
below the original), then checks every trial the JSON calls met, every Pareto suggestion, the
best trial and every candidate that reached the gate against the floor, and writes its section
of ``BENCHMARKS.md``. Run from the project root: ``python benchmarks/search_floor_mnist.py``.
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

from _sections import write_section  # beside this script
from book_mnist import SCALE, load_mnist, train_or_reuse

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=15, help="training epochs if not cached")
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/datasets/mnist.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--max-kb", type=float, default=5.0, help="the only target")
    p.add_argument("--max-trials", type=int, default=12)
    p.add_argument("--fine-tune-steps", type=int, default=60, help="per trial, batch 64")
    p.add_argument("--retrain", action="store_true")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    x, y, _, _ = load_mnist(args.mnist)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    keras_path = work / "book_mnist.keras"
    _, train_note = train_or_reuse(args, x, y, keras_path)
    config = work / "search_floor.yaml"
    config.write_text(
        "parameters:\n  config:\n    search:\n"
        f"      fine_tune_epochs: 1\n      fine_tune_steps: {args.fine_tune_steps}\n"
        "      batch_size: 2\n"
    )
    summary_path = work / "search_floor.json"
    cli = Path(sys.executable).with_name("zenml-quant")
    cmd = [
        str(cli), "search", "--model", str(keras_path), "--data", str(args.mnist.resolve()),
        "--scale", str(SCALE), "--offset", "-1", "--max-size-kb", str(args.max_kb),
        "--max-trials", str(args.max_trials), "--candidates", "3", "--config", str(config),
        "--output-dir", str(work / "search_floor"), "--json", str(summary_path),
    ]  # fmt: skip
    env = {**os.environ, "ZENML_CONFIG_PATH": str(work / "zenml_search_floor")}
    env["ZENML_ANALYTICS_OPT_IN"] = "false"
    print("Running:", shlex.join(cmd))
    start = time.perf_counter()
    code = subprocess.run(cmd, env=env).returncode
    seconds = time.perf_counter() - start
    summary = json.loads(summary_path.read_text())
    floor = summary["original_accuracy"] - 0.01
    trials = summary["candidates"]
    by_trial = {t["trial"]: t for t in trials}
    returned = list(summary["pareto"]) + (
        [summary["best_trial"]] if summary["best_trial"] is not None else []
    )
    below = [t for t in trials if t["status"] == "ok" and t["accuracy"] < floor - 1e-9]
    bad = [n for n in returned if by_trial[n]["accuracy"] < floor - 1e-9]
    bad += [t["trial"] for t in trials if t["meets_targets"] and t["accuracy"] < floor - 1e-9]
    gated = summary["gated"]
    ok = not bad
    lines = [
        "## Search with only a size target: nothing below the accuracy floor",
        "",
        f"Command: `{shlex.join(['zenml-quant', *cmd[1:]]).replace(str(ROOT) + '/', '')}` "
        f"(exit {code}: the gate's verdict; {seconds / 60:.1f} min on this 2-core box; "
        f"{args.fine_tune_steps} fine-tuning steps per trial; model: the book's CNN, "
        f"{train_note}).",
        "",
        f"Original (Keras, validation): {100 * summary['original_accuracy']:.2f} %; floor "
        f"(default, 1 point below): {100 * floor:.2f} %. Trials: {len(trials)}, of which "
        f"{len(below)} scored below the floor"
        + (
            f" (validation accuracy {100 * min(t['accuracy'] for t in below):.2f}-"
            f"{100 * max(t['accuracy'] for t in below):.2f} %, "
            f"{min(t['size_bytes'] for t in below):,}-{max(t['size_bytes'] for t in below):,} B "
            "int8): before this change the search returned the best of them by reward and "
            "marked those within the size target met."
            if below
            else "."
        ),
        "",
        "| what | trials | below the floor |",
        "|---|---|---|",
        f"| marked met | {sum(t['meets_targets'] for t in trials)} | "
        f"{sum(t['meets_targets'] and t['accuracy'] < floor for t in trials)} |",
        f"| Pareto suggestions | {len(summary['pareto'])} | "
        f"{sum(by_trial[n]['accuracy'] < floor for n in summary['pareto'])} |",
        f"| best trial | {summary['best_trial']} | "
        f"{int(summary['best_trial'] is not None and by_trial[summary['best_trial']]['accuracy'] < floor)} |",
        "",
        "Candidates passed to the gate (test split): "
        + "; ".join(
            f"{g['name']}: {g['status']}"
            + ("" if g["accuracy"] is None else f" {100 * g['accuracy']:.2f} %")
            + (f" ({g['reason']})" if g["status"] == "failed" else "")
            for g in gated
        )
        + f". Gate: {'passed' if summary['gate'] and summary['gate']['passed'] else 'refused'}.",
        "",
        f"Result: {'PASS' if ok else 'FAIL'}: nothing below the floor was returned, suggested "
        "or marked met."
        if ok
        else f"Result: FAIL: trials {bad} are below the floor.",
    ]
    write_section("search-floor-mnist", "\n".join(lines))
    print("\n".join(lines))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
