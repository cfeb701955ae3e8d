"""How fast the command line answers when nothing heavy is needed: ``--help`` and a bad option.

Every case runs in a fresh process, ``--runs`` times, interleaved case by case so that each
sees the same machine state; the table gives the median wall time and the median peak memory
(``ru_maxrss`` of the child). The reference row imports what every command loaded before the
command line turned lazy: TensorFlow and ZenML (the issue that asked for this measured
``zenml-quant --help`` at 6.6 s then). Writes the ``cli-startup`` section of
``BENCHMARKS.md``. Run from the project root: ``python benchmarks/cli_startup.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _sections import write_section  # beside this script

CLI = str(Path(sys.executable).parent / "zenml-quant")
CASES = {
    "zenml-quant --help": [CLI, "--help"],
    "zenml-quant compress --help": [CLI, "compress", "--help"],
    "zenml-quant compress (bad option: no model)": [CLI, "compress", "--data", "digits"],
    "reference: import tensorflow, zenml": [
        sys.executable,
        "-c",
        "import zenml_quant, tensorflow, zenml",
    ],
}


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one fresh process running ``command``."""
    start = time.perf_counter()
    pid = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    _, _status, usage = os.wait4(pid, 0)  # ru_maxrss of that child alone
    seconds = time.perf_counter() - start
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux -> MiB


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    memory: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, command in CASES.items():
            seconds, mib = run_once(command)
            times[name].append(seconds)
            memory[name].append(mib)
    reference = statistics.median(times["reference: import tensorflow, zenml"])
    rows = [
        "| command | median s | x reference | median peak MiB |",
        "|---|---:|---:|---:|",
    ]
    for name in CASES:
        median = statistics.median(times[name])
        rows.append(
            f"| {name} | {median:.2f} | {median / reference:.2f} | "
            f"{statistics.median(memory[name]):.0f} |"
        )
    command = "python " + " ".join(
        shlex.quote(a) for a in ["benchmarks/cli_startup.py", *sys.argv[1:]]
    )
    section = "\n".join(
        [
            "## Command-line start-up",
            "",
            f"Command: `{command}`. {args.runs} fresh processes per row, interleaved; medians. "
            "The reference row loads what every command loaded before the CLI turned lazy "
            "(TensorFlow and ZenML); when the issue was filed, `zenml-quant --help` took 6.6 s "
            "and about 800 MB.",
            "",
            *rows,
        ]
    )
    print(section)
    write_section("cli-startup", section)


if __name__ == "__main__":
    main()
