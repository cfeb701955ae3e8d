"""Every zoo architecture through ``compress`` and a 4-trial ``search``, as a user would run them.

For each entry of ``zoo.ZOO`` (the MobileNetV2-style net, DS-CNN, ResNet-8 as published and
compiled with ``categorical_crossentropy``, LSTM, GRU, Conv1D classifier and detector, the
anomaly-detection autoencoder, the regression net, the two-input net, BatchNorm after pooling,
Rescaling and Normalization inside the model, a Keras 3 model): build it at its benchmark size,
train it on its data (the CIFAR-10 subset of ``../shared/datasets`` for ResNet-8, seeded
synthetic sets for the others, each with a validation split of its own), save the ``.keras``
and ``.npz``, then run

1. ``zenml-quant compress --mode float32 --mode int8 --qat --json ...`` (the mixed candidate is
   on by default): every candidate is written, or failed alone with its reason;
2. ``zenml-quant search --max-trials 4 --max-size-kb <0.8 x its int8 size> --json ...``: the
   search finishes (no native crash) whatever it finds.

The table in BENCHMARKS.md gives, per model: task, metric, each candidate's quality, bytes and
latency, and what was refused or failed, and why. Run from the project root:
``python benchmarks/zoo_compress.py [--only NAME ...] [--epochs N]``.
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
from typing import Any

from _sections import write_section  # beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zoo import ZOO, DatasetUnavailable, write_npz  # noqa: E402

# How each entry is trained and run: epochs (benchmark-size models on 2 cores), and the CLI
# flags its data needs (raw 0-255 pixels for the models that scale inside).
EPOCHS = {"mobilenet_v2": 12, "resnet8": 8, "resnet8_reference": 8, "dense_autoencoder": 10}
EXTRA_FLAGS = {
    "rescaling_cnn": ["--scale", "1", "--offset", "0"],
    "normalization_cnn": ["--scale", "1", "--offset", "0"],
    # Trained on normal data only: the train split holds one label, so the task is said.
    "dense_autoencoder": ["--task", "reconstruction"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", default=None, help="entries to run [all]")
    p.add_argument("--epochs", type=int, default=5, help="training epochs unless set per model")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--work-dir", default=str(ROOT / "benchmarks/_work/zoo"))
    p.add_argument("--timeout-min", type=float, default=30.0, help="per command")
    p.add_argument("--section", default="zoo-compress", help="BENCHMARKS.md section to write")
    return p.parse_args()


def _run(cmd: list[str], env: dict[str, str], timeout_s: float, log: Path) -> dict[str, Any]:
    print("Running:", shlex.join(cmd), flush=True)
    start = time.perf_counter()
    try:
        with log.open("w") as out:
            code = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=timeout_s).returncode  # fmt: skip
    except subprocess.TimeoutExpired:
        code = None
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    return {
        "exit": code,
        "seconds": time.perf_counter() - start,
        "error": errors[-1] if errors else (lines[-1] if code not in (0, 1) and lines else None),
    }


def prepare(name: str, work: Path, epochs: int) -> tuple[Path, Path, dict[str, Any]]:
    """Build, train and save one entry; returns the model file, the data file and facts."""
    entry = ZOO[name]
    data = entry.data(seed=0)
    model = entry.build_benchmark(seed=0)
    start = time.perf_counter()
    entry.train(model, data, epochs=EPOCHS.get(name, epochs))
    facts = {
        "params": int(model.count_params()),
        "train_s": time.perf_counter() - start,
        "keras_quality": float(entry.score(model, data)),
    }
    model_path = work / f"{name}.keras"
    model.save(model_path)
    data_path = write_npz(work / f"{name}.npz", data)
    return model_path, data_path, facts


def _quality(summary: dict[str, Any], value: float | None) -> str:
    if value is None:
        return ""
    metric = summary.get("metric", {}).get("name", "top1")
    fraction = metric in ("top1", "top5", "accuracy", "auc", "reconstruction_auc")
    return f"{100 * value:.2f} %" if fraction else f"{value:.4g}"


def rows_for(
    name: str, facts: dict[str, Any], comp: dict[str, Any], search: dict[str, Any]
) -> list[str]:
    entry = ZOO[name]
    summary = comp.get("summary")
    head = f"| {name} | {entry.task} | {facts.get('params', 0):,} |"
    if summary is None:
        why = (comp.get("error") or f"exit {comp.get('exit')}").replace("|", "/")
        return [f"{head} {entry.metric} | compress | refused | | | | {why[:240]} |"]
    metric = summary["metric"]["name"]
    out = [
        f"{head} {metric} | keras | baseline | {_quality(summary, summary['baseline']['accuracy'])}"
        " | | | |"
    ]
    for c in summary["candidates"]:
        size = "" if c["size_bytes"] is None else f"{c['size_bytes']:,}"
        lat = "" if c["latency_ms_p50"] is None else f"{1000 * c['latency_ms_p50']:.0f} µs"
        why = "; ".join(x for x in [c["reason"], *c["notes"]] if x).replace("|", "/")
        out.append(
            f"| | | | | {c['name']} | {c['status']} | {_quality(summary, c['accuracy'])} | {size} "
            f"| {lat} | {why[:240]} |"
        )
    s = search
    verdict = "finished" if s.get("exit") in (0, 1) else f"did not finish (exit {s.get('exit')})"
    quality, size, detail = "", "", (s.get("error") or "").replace("|", "/")
    found = s.get("summary")
    if found:
        tried = found.get("candidates", [])
        failed = [t for t in tried if t.get("status") != "ok"]
        best = next((t for t in tried if t.get("trial") == found.get("best_trial")), None)
        if best is not None:
            quality = _quality(summary, best.get("accuracy"))
            size = f"{best['size_bytes']:,}" if best.get("size_bytes") else ""
        why = [f"{len(tried)} trials, {len(failed)} failed"]
        why += [f"trial {t.get('trial')}: {(t.get('error') or '')[:80]}" for t in failed[:2]]
        why.append(found.get("stop_reason") or "")
        why += found.get("notes", [])[:1]
        detail = "; ".join(w for w in why if w).replace("|", "/") + (
            f"; {detail}" if detail else ""
        )
    out.append(
        f"| | | | | search best ({s.get('trials', 0)} trials) | {verdict} | {quality} | {size} "
        f"| | {detail[:300]} |"
    )
    return out


def main() -> None:
    args = parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(work / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "ZENML_LOGGING_VERBOSITY": "WARN",
    }
    cli = str(Path(sys.executable).with_name("zenml-quant"))
    names = args.only or list(ZOO)
    rows: list[str] = []
    failures = 0
    for name in names:
        print(f"=== {name}", flush=True)
        try:
            model_path, data_path, facts = prepare(name, work, args.epochs)
        except DatasetUnavailable as exc:
            rows.append(
                f"| {name} | {ZOO[name].task} | | {ZOO[name].metric} | data | skipped | | | | {exc} |"
            )
            continue
        extra = EXTRA_FLAGS.get(name, [])
        out = work / name
        out.mkdir(parents=True, exist_ok=True)
        comp = _run(
            [cli, "compress", "--model", str(model_path), "--data", str(data_path),
             "--mode", "float32", "--mode", "int8", "--qat", *extra,
             "--output-dir", str(out), "--json", str(out / "compress.json")],
            env, 60 * args.timeout_min, work / f"{name}_compress.log",
        )  # fmt: skip
        summary_path = out / "compress.json"
        comp["summary"] = json.loads(summary_path.read_text()) if summary_path.exists() else None
        int8 = next(
            (c for c in (comp["summary"] or {}).get("candidates", []) if c["name"] == "int8"),
            None,
        )
        size_kb = 0.8 * (int8 or {}).get("size_bytes", 0) / 1000 or 100.0
        search = _run(
            [cli, "search", "--model", str(model_path), "--data", str(data_path),
             "--max-trials", str(args.trials), "--candidates", "1",
             "--max-size-kb", f"{size_kb:.1f}", *extra,
             "--output-dir", str(out / "search"), "--json", str(out / "search.json")],
            env, 60 * args.timeout_min, work / f"{name}_search.log",
        )  # fmt: skip
        search["trials"] = args.trials
        search_path = out / "search.json"
        search["summary"] = json.loads(search_path.read_text()) if search_path.exists() else None
        if search["exit"] not in (0, 1):
            failures += 1
        rows += rows_for(name, facts, comp, search)
        facts_line = (
            f"{name}: {facts['params']:,} parameters, trained {facts['train_s']:.0f} s; compress "
            f"exit {comp['exit']} in {comp['seconds']:.0f} s; search exit {search['exit']} in "
            f"{search['seconds']:.0f} s"
        )
        print(facts_line, flush=True)
        rows.append(f"<!-- {facts_line} -->")

    lines = [
        f"## The model zoo through compress and search ({', '.join(names)})",
        "",
        "Each zoo model (`zoo/`, built by the project's code at its benchmark size) trained on its "
        "data, then `zenml-quant compress --mode float32 --mode int8 --qat` (plus the default "
        f"accuracy-controlled `mixed` candidate) and a {args.trials}-trial `zenml-quant search` "
        "with a size target of 0.8x its int8 file. Quality is each task's metric on the test "
        "split; decisions were taken on the data's own validation split. Latency: median batch-1 "
        "invoke, 1 thread, this 2-core x86 box. Command: "
        f"`{shlex.join(['python', 'benchmarks/zoo_compress.py', *sys.argv[1:]])}`.",
        "",
        "| model | task | parameters | metric | candidate | status | quality | bytes | latency | "
        "reason / notes |",
        "|---|---|---:|---|---|---|---:|---:|---:|---|",
        *rows,
    ]
    write_section(args.section, "\n".join(lines))
    print("\n".join(lines))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
