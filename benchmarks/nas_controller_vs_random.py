"""The RNN controller against random search in the same space, on the bundled digits.

For each seed, one search with the controller and one with random search (uniform over the
valid choices at every position), interleaved, each stopping at the first candidate that meets
the fixed target (or at the trial cap, counted as the cap). Reports the median number of trials
to first meet the target and rewrites its section of ``BENCHMARKS.md``. Run from the project
root: ``python benchmarks/nas_controller_vs_random.py``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import logging
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _sections import write_section  # beside this script

from zenml_quant.conform import conform_to_model
from zenml_quant.datasets import load_digits
from zenml_quant.demo import train_demo_model
from zenml_quant.models import load_model
from zenml_quant.search import (
    EvaluationOptions,
    FineTuneOptions,
    RewardOptions,
    SearchOptions,
    Targets,
    search_architecture,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. +seeds-1")
    p.add_argument(
        "--penalty",
        type=float,
        default=None,
        help="the soft reward's exponent for a missed target (RewardOptions.penalty) [1]",
    )
    p.add_argument(
        "--controller-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a ControllerRNN keyword option for the controller arm, e.g. keep_bias=3 (repeatable)",
    )
    p.add_argument(
        "--arms",
        default=None,
        help="comma-separated arms to run (controller, random, prior only) [all]; an exploring "
        "run that leaves out random search writes nothing to BENCHMARKS.md",
    )
    p.add_argument("--cap", type=int, default=40, help="trials before a run counts as not met")
    p.add_argument("--max-drop", type=float, default=0.03, help="accuracy drop target (points/100)")
    p.add_argument("--max-bytes", type=int, default=11000, help="int8 .tflite size target")
    p.add_argument(
        "--no-prior-arm",
        action="store_true",
        help="skip the third arm: the controller's starting policy without learning",
    )
    p.add_argument("--batch", type=int, default=2, help="candidates proposed per batch")
    p.add_argument("--fine-tune-epochs", type=int, default=2)
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="searches run at once in separate processes (what is counted is trials, not time, "
        "so sharing the cores changes no result)",
    )
    p.add_argument(
        "--surrogate",
        type=int,
        default=0,
        metavar="N",
        help="instead of the comparison: the three arms on the synthetic spaces of "
        "tests/test_search_proposers.py (CnnSurrogate), N seeds per space, no Keras; writes its "
        "own section",
    )
    p.add_argument(
        "--probe",
        type=int,
        default=0,
        help="instead of the comparison: evaluate this many random-search candidates and print "
        "how often each (drop, size) target would be met, to choose a target random search "
        "meets rarely but does meet",
    )
    return p.parse_args()


ARMS = {
    "controller": ("controller", {}),
    "random": ("random", {}),
    # The controller's starting policy (it favours "keep") with learning switched off: shows how
    # much of the controller's lead is the prior and how much is learning.
    "prior only": ("controller", {"learning_rate": 1e-12, "bias_learning_rate": 0.0}),
}


def search_options(args, arm: str, seed: int, cap: int, patience: int) -> SearchOptions:
    proposer, controller = ARMS[arm]
    if arm == "controller":
        controller = {**controller, **_controller_options(args.controller_option)}
    return SearchOptions(
        max_trials=cap,
        patience=patience,
        batch_size=args.batch,
        seed=seed,
        proposer=proposer,
        controller=controller,
        reward=RewardOptions() if args.penalty is None else RewardOptions(penalty=args.penalty),
        evaluation=EvaluationOptions(
            fine_tune=FineTuneOptions(epochs=args.fine_tune_epochs, batch_size=32),
            calibration_samples=100,
            measure_latency=False,
            estimate_energy=False,
        ),
    )


def _controller_options(given: list[str]) -> dict[str, float]:
    out = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--controller-option takes NAME=VALUE, got {item!r}")
        out[name.strip()] = float(value)
    return out


def trials_to_target(model, data, targets, arm: str, seed: int, args) -> tuple[int, float, bool]:
    # patience 0: stop at the first candidate that meets the targets
    options = search_options(args, arm, seed, args.cap, patience=0)
    start = time.perf_counter()
    result = search_architecture(model, data, targets=targets, options=options)
    met = result.first_met_trial
    return (met if met is not None else args.cap), time.perf_counter() - start, met is not None


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.surrogate:
        surrogate(args.surrogate)
        return
    data = conform_to_model(load_digits(), input_shape=(8, 8, 1), num_classes=10)
    model = train_demo_model(data, epochs=15, seed=0)
    targets = Targets(max_quality_drop=args.max_drop, max_size_bytes=args.max_bytes)
    if args.probe:
        probe(model, data, args)
        return
    arms = ["controller", "random"] + ([] if args.no_prior_arm else ["prior only"])
    if args.arms:
        arms = [a.strip() for a in args.arms.split(",")]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    jobs = [(seed, arm) for seed in seeds for arm in arms]
    done: dict[tuple[int, str], tuple[int, float, bool]] = {}
    if args.jobs > 1:
        # every process searches from the very same trained model
        saved = Path(tempfile.mkdtemp()) / "digits_cnn.keras"
        model.save(saved)
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = {pool.submit(_job, args, saved, arm, seed): (seed, arm) for seed, arm in jobs}
            for future in cf.as_completed(futures):
                done[futures[future]] = _report(*futures[future], future.result())
    else:
        for seed, arm in jobs:  # interleaved: every arm sees the same machine state
            done[seed, arm] = _report(
                seed, arm, trials_to_target(model, data, targets, arm, seed, args)
            )
    runs = {arm: [done[seed, arm] for seed in seeds] for arm in arms}
    med = {k: statistics.median(t for t, _, _ in v) for k, v in runs.items()}
    if "random" not in med:
        print("median trials: " + ", ".join(f"{a} {m:g}" for a, m in med.items()))
        return
    ratio = med["controller"] / med["random"]
    write_section("nas-controller", render(args, runs, med, ratio))
    print(
        f"median trials: controller {med['controller']}, random {med['random']}, "
        f"ratio {ratio:.2f} ({'PASS' if ratio <= 0.6 else 'FAIL'} at <= 0.6)"
    )


def _report(seed: int, arm: str, got: tuple[int, float, bool]) -> tuple[int, float, bool]:
    print(
        f"seed {seed} {arm}: {got[0]} trials ({'met' if got[2] else 'cap'}), {got[1]:.0f} s",
        flush=True,
    )
    return got


def _job(args, saved: Path, arm: str, seed: int) -> tuple[int, float, bool]:
    """One search in a worker process, from the parent's model."""
    logging.basicConfig(level=logging.WARNING)
    data = conform_to_model(load_digits(), input_shape=(8, 8, 1), num_classes=10)
    model = load_model(saved)
    targets = Targets(max_quality_drop=args.max_drop, max_size_bytes=args.max_bytes)
    return trials_to_target(model, data, targets, arm, seed, args)


def surrogate(seeds: int) -> None:
    """Trials to target of each arm on the learning test's synthetic spaces (budget 80)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_search_proposers import CnnSurrogate

    from zenml_quant.search.proposers import ControllerRNN, RandomSearch

    arms = {
        "controller": lambda space, seed: ControllerRNN(space, seed=seed),
        "random": lambda space, seed: RandomSearch(space, seed=seed),
        "prior only": lambda space, seed: ControllerRNN(space, seed=seed, **ARMS["prior only"][1]),
    }
    rows = []
    for space_seed in CnnSurrogate.SIZE_TARGETS:
        space = CnnSurrogate(space_seed)
        runs = {
            arm: [space.trials_to_target(make(space, s)) for s in range(seeds)]
            for arm, make in arms.items()
        }
        rows.append((space_seed, runs))
    lines = [
        "## Architecture search: controller, random search and prior only on the surrogate",
        "",
        f"- Command: `python benchmarks/nas_controller_vs_random.py --surrogate {seeds}` "
        f"({time.strftime('%Y-%m-%d')}; no Keras training; it takes seconds).",
        "- Spaces: `CnnSurrogate` of `tests/test_search_proposers.py` (16 positions, 2-8 choices; "
        "about 2 % of uniform candidates meet its targets, and meeting them takes several "
        "scale-downs at once). Budget 80 trials; a run that never meets the targets counts as 81.",
        "",
        "| space | " + " | ".join(f"{arm}: median trials" for arm in arms) + " |",
        "|---:|" + "---:|" * len(arms),
    ]
    for space_seed, runs in rows:
        lines.append(
            f"| {space_seed} | "
            + " | ".join(f"{statistics.median(runs[a]):g}" for a in arms)
            + " |"
        )
    every = {a: [t for _, runs in rows for t in runs[a]] for a in arms}
    lines.append(
        "| **all** | " + " | ".join(f"**{statistics.median(every[a]):g}**" for a in arms) + " |"
    )
    lines += [
        "",
        f"{seeds} seeds per space and arm. Not met within the budget: "
        + ", ".join(f"{a} {sum(t > 80 for t in every[a])}/{len(every[a])}" for a in arms)
        + ".",
    ]
    write_section("nas-surrogate", "\n".join(lines))
    print("\n".join(lines))


def probe(model, data, args) -> None:
    """Print the share of random candidates meeting each (drop, size) target."""
    options = search_options(args, "random", 1000, args.probe, patience=10**6)
    result = search_architecture(model, data, targets=Targets(), options=options)
    frame = result.history()
    frame = frame[(frame["trial"] > 0) & (frame["status"] == "ok")]
    drop = result.original_accuracy - frame["accuracy"]
    print(f"original: {result.original_accuracy:.4f}, {result.original.size_bytes} B")
    print(frame[["trial", "accuracy", "size_bytes", "edits"]].to_string())
    for max_drop in (0.01, 0.02, 0.03, 0.05):
        for max_bytes in (6000, 7000, 8000, 9000, 10000, 11000):
            hits = int(((drop <= max_drop) & (frame["size_bytes"] <= max_bytes)).sum())
            print(f"drop <= {max_drop:.2f}, <= {max_bytes} B: {hits}/{len(frame)}")


def render(args, runs, med, ratio) -> str:
    cmd = "python " + " ".join(
        shlex.quote(a) for a in [Path(sys.argv[0]).as_posix(), *sys.argv[1:]]
    )
    lines = [
        "## Architecture search: controller vs random search (digits)",
        "",
        f"- Command: `{cmd}` ({platform.machine()}, {os.cpu_count()} cores, "
        f"{time.strftime('%Y-%m-%d')}).",
        f"- Model: the demo CNN trained 15 epochs on the bundled digits. Target: int8 .tflite "
        f"<= {args.max_bytes:,} B and at most {100 * args.max_drop:g} points below the original's "
        f"validation accuracy. Each candidate fine-tuned {args.fine_tune_epochs} epochs; batches "
        f"of {args.batch}; a run that does not meet the target in {args.cap} trials counts as "
        f"{args.cap}.",
        "",
        "| seed | " + " | ".join(f"{arm}: trials to target" for arm in runs) + " |",
        "|---:|" + "---:|" * len(runs),
    ]

    def show(x):
        return f"{x[0]}{'' if x[2] else ' (cap)'}"

    for i in range(args.seeds):
        seed = args.first_seed + i
        lines.append(f"| {seed} | " + " | ".join(show(runs[a][i]) for a in runs) + " |")
    lines += [
        "| **median** | " + " | ".join(f"**{med[a]:g}**" for a in runs) + " |",
        "",
        f"Ratio of medians, controller / random: **{ratio:.2f}** (target <= 0.6).",
    ]
    if med["random"] >= args.cap:
        lines.append(
            f"Random search's median is at the cap: its true median is at least {args.cap} "
            "trials, so the true ratio is at most the one shown."
        )
    if "prior only" in runs:
        lines.append(
            'The controller starts favouring "keep" at every position (`keep_bias`, the search '
            "edits a pre-trained model: by default a first proposal changes about 2.6 of the 11 "
            'positions); the "prior only" arm is that starting policy with learning switched '
            "off, so the gap between it and the controller is what learning adds."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
