"""Does the controller's learning pay on a real model? Four proposers on ResNet-8, same budget.

The arms, each run with the same trial budget and seeds:

- ``controller``: the LSTM policy, learning from the rewards (the default proposer);
- ``prior``: the same policy with learning switched off, so the difference is what learning adds;
- ``pqt``: the controller with priority-queue training (its 4 best proposals so far trained on
  at a fixed advantage of 0.3 after every new reward; Abolafia et al., 2018);
- ``random``: uniform among the valid choices at every position;
- ``local``: hill climbing from the best so far, one or two changes at a time (NetAdapt's way).

The model is the project's ResNet-8 (``resnet8_mlperf.py``), searched on the CIFAR-10 subset
(fine-tuning on its training images, validation on 5,000 test images). Every search runs its whole
budget (no early stop), so two figures are read per run: the trial that first met the targets
(the budget when none did) and the best reward reached. Runs are interleaved seed by seed, so
every arm sees the same machine state. Writes the ``search-proposers-resnet8`` section of
``BENCHMARKS.md``. Run from the project root:
``python benchmarks/search_proposers_resnet8.py [--seeds 3] [--trials 16]``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import statistics
import sys
import time

from _sections import write_section  # beside this script
from mixed_precision import load_case

from zenml_quant.convert import convert_model
from zenml_quant.search.finetune import FineTuneOptions
from zenml_quant.search.loop import SearchOptions, search_architecture
from zenml_quant.search.trial import EvaluationOptions
from zenml_quant.targets import Targets
from zenml_quant.tasks import dataset_metric

ARMS = {
    "controller": ("controller", {}),
    "prior": ("controller", {"learning_rate": 1e-12, "bias_learning_rate": 0.0}),
    "pqt": ("controller", {"elite": 4, "elite_weight": 0.3}),
    "random": ("random", {}),
    "local": ("local", {}),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    p.add_argument("--trials", type=int, default=16, help="the budget of every run")
    p.add_argument("--arms", default="controller,prior,random,local")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per candidate")
    p.add_argument("--max-drop", type=float, default=0.02, help="points/100 below the original")
    p.add_argument("--size-ratio", type=float, default=0.6, help="of the plain int8 bytes")
    return p.parse_args()


def run(model, data, targets, arm: str, seed: int, args) -> dict:
    proposer, controller = ARMS[arm]
    options = SearchOptions(
        max_trials=args.trials,
        patience=10**6,
        batch_size=2,
        seed=seed,
        proposer=proposer,
        controller=controller,
        evaluation=EvaluationOptions(
            fine_tune=FineTuneOptions(epochs=args.epochs, batch_size=64, learning_rate=5e-4),
            calibration_samples=100,
            measure_latency=False,
        ),
    )
    started = time.perf_counter()
    result = search_architecture(model, data, targets=targets, options=options)
    rewards = [r.reward for r in result.trials if r.ok and r.reward is not None]
    met = result.first_met_trial
    out = {
        "first_met": met if met is not None else args.trials,
        "met": met is not None,
        "best_reward": max(rewards, default=float("nan")),
        "edits": statistics.median(len(r.plan) for r in result.trials),
        "failed": sum(not r.ok for r in result.trials),
        "minutes": (time.perf_counter() - started) / 60,
    }
    print(f"seed {seed} {arm}: {out}", flush=True)
    return out


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    arms = [a.strip() for a in args.arms.split(",")]
    model, data, note = load_case("resnet8")
    int8 = convert_model(model, "int8", representative_data=data.x_train)
    budget = int(args.size_ratio * int8.size_bytes)
    metric = dataset_metric(data)
    targets = Targets(max_quality_drop=args.max_drop, max_size_bytes=budget, metric=metric)
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        for arm in arms:
            runs[arm].append(run(model, data, targets, arm, seed, args))
    rows = [
        "| arm | trials to target, per seed | median | best reward, per seed | median | "
        "median edits | failed | minutes |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for arm, got in runs.items():
        trials = ", ".join(f"{g['first_met']}{'' if g['met'] else ' (none)'}" for g in got)
        rewards = ", ".join(f"{g['best_reward']:.4f}" for g in got)
        rows.append(
            f"| {arm} | {trials} | {statistics.median(g['first_met'] for g in got):g} | "
            f"{rewards} | {statistics.median(g['best_reward'] for g in got):.4f} | "
            f"{statistics.median(g['edits'] for g in got):g} | "
            f"{sum(g['failed'] for g in got)} | {sum(g['minutes'] for g in got):.0f} |"
        )
    command = "python benchmarks/search_proposers_resnet8.py " + shlex.join(sys.argv[1:])
    section = "\n".join(
        [
            "## Proposers compared on ResNet-8: controller, its prior, random, local",
            "",
            f"Command: `{command.strip()}`. Model: {note}. Targets: at most "
            f"{100 * args.max_drop:g} points below the original on validation and at most "
            f"{budget:,} B ({args.size_ratio:g}x its plain int8 file of {int8.size_bytes:,} B). "
            f"Every run: {args.trials} trials, batches of 2, each candidate fine-tuned "
            f"{args.epochs} epoch(s) (distilled, BatchNorm re-estimated); seeds {seeds[0]}-"
            f"{seeds[-1]}, interleaved. A run that never meets the targets counts its "
            "whole budget.",
            "",
            *rows,
        ]
    )
    write_section("search-proposers-resnet8", section)
    print(section)


if __name__ == "__main__":
    main()
