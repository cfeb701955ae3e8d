"""One ``compress`` run, two source trees: wall time and each step's time, side by side.

Runs ``zenml-quant compress <args>`` from the ``--before`` and the ``--after`` source tree (a
git worktree of an older commit, say, and this one), in interleaved rounds with the order
alternating, each tree on its own ZenML store with caching off, and reads every step's
duration from the store. Writes a table of medians to the ``--section`` section of
``BENCHMARKS.md``. Run from the project root, for example:

    git worktree add /tmp/before <commit>
    python benchmarks/compress_steps.py --before /tmp/before --after . --rounds 2 \\
        --section compress-steps-resnet8 -- --model M.keras --data D.npz --mode int8

Everything after ``--`` is passed to ``compress``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _sections import write_section  # beside this script

#: Prints the status of the store's latest run and ``{step name: seconds}`` of its steps.
_READ_STEPS = """
import json
from zenml.client import Client
run = Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0]
print(json.dumps([str(run.status.value), {
    name: (step.end_time - step.start_time).total_seconds()
    for name, step in run.steps.items() if step.start_time and step.end_time
}]))
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, help="source tree of the first arm")
    p.add_argument("--after", required=True, help="source tree of the second arm")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--section", required=True, help="BENCHMARKS.md section to write")
    p.add_argument("--steps", default="", help="steps to list (comma-separated; default all)")
    p.add_argument("compress_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    args.compress_args = [a for a in args.compress_args if a != "--"]
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


def run_once(tree: Path, home: Path, compress_args: list[str]) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "ZENML_CONFIG_PATH": str(home / "zenml")}
    config = home / "no_cache.yaml"
    config.write_text("enable_cache: false\n")
    command = [
        # The console script, not ``python -c``: ZenML needs a main module file as source root.
        str(Path(sys.executable).with_name("zenml-quant")),
        "compress",
        *compress_args,
        "--config",
        str(config),
        "--output-dir",
        str(home / "out"),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    read = subprocess.run(
        [sys.executable, "-c", _READ_STEPS], env=env, capture_output=True, text=True
    )
    if read.returncode != 0 or json.loads(read.stdout.strip().splitlines()[-1])[0] != "completed":
        # A gate that says no still completes the run; anything else is not a run to time.
        raise SystemExit(
            f"compress did not complete a run in {tree} (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}{read.stderr[-2000:]}"
        )
    return seconds, json.loads(read.stdout.strip().splitlines()[-1])[1]


def main() -> None:
    args = parse_args()
    trees = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    walls: dict[str, list[float]] = {arm: [] for arm in trees}
    steps: dict[str, dict[str, list[float]]] = {arm: {} for arm in trees}
    with tempfile.TemporaryDirectory(prefix="zq-compress-steps-") as tmp:
        for round_ in range(args.rounds):
            for arm in ("before", "after") if round_ % 2 == 0 else ("after", "before"):
                home = Path(tmp) / arm
                home.mkdir(exist_ok=True)
                wall, durations = run_once(trees[arm], home, args.compress_args)
                walls[arm].append(wall)
                for name, value in durations.items():
                    steps[arm].setdefault(name, []).append(value)
                print(f"round {round_} {arm}: {wall:.1f} s", flush=True)
    names = [s for s in args.steps.split(",") if s] or sorted(
        set(steps["before"]) | set(steps["after"])
    )

    def median(arm: str, name: str) -> str:
        values = steps[arm].get(name)
        return f"{statistics.median(values):.1f} s" if values else "-"

    rows = ["| step | before | after |", "|---|---:|---:|"]
    rows += [f"| `{name}` | {median('before', name)} | {median('after', name)} |" for name in names]
    listed = {
        arm: statistics.median(
            sum(steps[arm].get(n, [0.0] * args.rounds)[i] for n in names)
            for i in range(args.rounds)
        )
        for arm in trees
    }
    rows.append(f"| steps listed, summed | {listed['before']:.1f} s | {listed['after']:.1f} s |")
    rows.append(
        f"| whole run (wall) | {statistics.median(walls['before']):.1f} s | "
        f"{statistics.median(walls['after']):.1f} s |"
    )
    command = "python benchmarks/compress_steps.py " + shlex.join(sys.argv[1:])
    section = "\n".join(
        [
            f"Command: `{command}`. Medians of {args.rounds} rounds, the two trees taking turns; "
            "each tree on its own ZenML store, caching off. A step's time is its start to end "
            "in the store (so it includes loading its inputs and saving its outputs).",
            "",
            *rows,
        ]
    )
    write_section(args.section, section)
    print(section)


if __name__ == "__main__":
    main()
