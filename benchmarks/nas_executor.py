"""A batch of 8 search candidates: evaluated in process vs by the 2-worker process pool.

The candidates are real: 8 seeded random edit plans of the book's MNIST CNN, each rebuilt,
fine-tuned (``--steps`` batches of 128), converted to int8 and measured, exactly as the search
does (``evaluate_trial``), latency timing off, in the order the search sends a batch (longest
estimated evaluation first; ``--order sampled`` keeps the sampled order). In process, TensorFlow uses its default thread
pools (both cores); the pool runs 2 workers with one TF thread each. Rounds alternate the two;
"cold" includes starting the pool's workers (importing TensorFlow), "warm" reuses a started
pool. Rewrites its section of ``BENCHMARKS.md``. Run from the project root:
``python benchmarks/nas_executor.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _sections import write_section  # beside this script
from book_mnist import load_mnist, train_or_reuse

from zenml_quant.search import (
    EvaluationOptions,
    FineTuneOptions,
    InProcessExecutor,
    ProcessPoolExecutor,
    SearchSpace,
    TrialTask,
    evaluate_trial,
)
from zenml_quant.search.loop import longest_first
from zenml_quant.search.trial import SearchContext, failed_outcome, keras_bytes

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/datasets/mnist.npz")
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=60, help="fine-tuning batches per candidate")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--order",
        choices=("longest-first", "sampled"),
        default="longest-first",
        help="the batch's order: as the search sends it (longest estimated evaluation first), "
        "or as sampled",
    )
    p.add_argument(
        "--threads",
        default="1,2",
        help="TF threads per pool worker to compare (comma-separated); 2 workers x 2 threads "
        "oversubscribe the 2 cores, letting one worker's training use both while the other "
        "converts or evaluates on one",
    )
    return p.parse_args()


def main() -> None:
    args = parse_args()
    x, y, _, _ = load_mnist(args.mnist)
    model, _ = train_or_reuse(args, x, y, Path(args.work_dir) / "book_mnist.keras")
    options = EvaluationOptions(
        fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=args.steps, batch_size=128),
        calibration_samples=200,
        measure_latency=False,
    )
    space = SearchSpace(model)
    context = SearchContext(
        model_bytes=keras_bytes(model),
        x_train=x[:50_000],
        y_train=y[:50_000],
        x_val=x[-2000:],
        y_val=y[-2000:],
        options=options,
        space_options=space.options,
    )
    rng = np.random.default_rng(0)
    sampled = [TrialTask(i + 1, space.plan(space.sample(rng)), i) for i in range(args.batch)]
    # The batch as the search sends it: longest estimated evaluation first.
    tasks = longest_first(sampled, space) if args.order == "longest-first" else sampled

    def on_error(task, message):
        return failed_outcome(task, message)

    def run(executor, warm: bool) -> tuple[float, int]:
        if warm:
            executor.start(evaluate_trial, context, on_error=on_error)
            executor.warm_up()
            # First use in each process pays TF's one-off set-up (tracing, converter start-up):
            # one task per worker, run together, so every worker has paid it.
            executor.map(tasks[:2])
            start = time.perf_counter()
        else:
            start = time.perf_counter()
            executor.start(evaluate_trial, context, on_error=on_error)
        outcomes = executor.map(tasks)
        seconds = time.perf_counter() - start
        return seconds, sum(o.record.ok for o in outcomes)

    threads = [int(t) for t in args.threads.split(",")]
    times: dict[str, list[float]] = {"inprocess": []}
    for t in threads:
        times[f"pool warm {t}"], times[f"pool cold {t}"] = [], []
    for r in range(args.rounds):
        with InProcessExecutor() as ex:
            seconds, ok = run(ex, warm=True)
        times["inprocess"].append(seconds)
        line = [f"round {r}: in-process {seconds:.1f} s ({ok} ok)"]
        for t in threads:
            for warm in (False, True):
                key = f"pool {'warm' if warm else 'cold'} {t}"
                with ProcessPoolExecutor(workers=2, threads_per_worker=t) as ex:
                    seconds, ok = run(ex, warm=warm)
                times[key].append(seconds)
                line.append(f"{key} {seconds:.1f} s ({ok} ok)")
        print(", ".join(line), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    write_section("nas-executor", render(args, times, med))
    print(", ".join(f"{k} {med['inprocess'] / v:.2f}x" for k, v in med.items()))


def render(args, times, med) -> str:
    cmd = "python " + " ".join(
        shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]]
    )
    order = (
        "the search's (longest estimated evaluation first)"
        if args.order == "longest-first"
        else "sampled"
    )
    lines = [
        "## Architecture search: process pool vs in-process, a batch of 8 candidates",
        "",
        f"- Command: `{cmd}` ({platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}).",
        f"- Batch: {args.batch} seeded random edit plans of the book's MNIST CNN, each rebuilt, "
        f"fine-tuned {args.steps} batches of 128, converted to int8 and evaluated on 2,000 "
        f"images (`evaluate_trial`, as the search runs it), sent in {order} order. In-process: TensorFlow's default "
        "thread pools (both cores); pool: 2 workers with 1 or 2 TF threads each. Medians of "
        f"{args.rounds} interleaved rounds.",
        "",
        "| executor | batch time (median) | rounds | speed-up vs in-process |",
        "|---|---:|---|---:|",
    ]
    labels = {"inprocess": "in-process (warm)"}
    for key in med:
        if key != "inprocess":
            _, state, t = key.split()
            start = "started" if state == "warm" else "incl. start-up"
            labels[key] = f"process pool, 2 workers x {t} thread{'s' if t != '1' else ''}, {start}"
    for name, label in labels.items():
        rounds = ", ".join(f"{t:.1f}" for t in times[name])
        lines.append(
            f"| {label} | {med[name]:.1f} s | {rounds} | {med['inprocess'] / med[name]:.2f}x |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
