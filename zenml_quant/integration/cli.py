"""``zenml-quant``: the command line.

``demo`` trains a small CNN on the bundled digits and compresses it; ``compress`` does the same
for the user's model and data; ``search`` runs the architecture search (``nas_pipeline``); all
three run on the active ZenML stack (ZenML creates its local SQLite store on first use when none
is configured). ``studio`` serves the local page to edit a model layer by layer.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ..errors import ZenmlQuantError
from ..types import MODES


def _run_and_collect(
    model_path: str,
    data_source: str,
    *,
    config: str | None,
    overrides: dict[str, Any],
    output_dir: Path,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Run ``compress_pipeline``; return what the table and the JSON summary need."""
    from .pipelines import compress_pipeline

    runnable = compress_pipeline.with_options(config_path=config) if config else compress_pipeline
    if model_name:  # promotion needs a ZenML model; each run becomes one of its versions
        from zenml import Model

        runnable = runnable.with_options(model=Model(name=model_name))
    run = runnable(model_path=model_path, data_source=data_source, **overrides)
    if run is None:  # e.g. the config holds a schedule: nothing ran now
        raise click.ClickException(
            "The pipeline did not run now (a schedule in the config?), so there is nothing to "
            "write: drop the schedule to compress immediately."
        )
    steps = run.steps
    baseline = steps["evaluate_baseline"].outputs["zq_baseline"][0].load()
    candidates, paths = [], {}
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = Path(model_path.rstrip("/")).stem or "model"
    # Every candidate is scored by an evaluate_<name> step; its input is the .tflite file.
    for name in steps:  # in run order
        if not name.startswith("evaluate_") or name == "evaluate_baseline":
            continue
        result = steps[name].outputs["zq_candidate"][0].load()
        tflite = steps[name].inputs["tflite_model"][0].load()
        target = (output_dir / f"{stem}_{result.name}.tflite").resolve()
        target.write_bytes(tflite.content)
        candidates.append(result)
        paths[result.name] = str(target)
    with warnings.catch_warnings():  # ZenML's CSV loader guesses at dates in every column
        warnings.simplefilter("ignore", UserWarning)
        order = list(steps["compare_candidates"].outputs["zq_comparison"][0].load()["name"])
        candidates.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
        sensitivity = None
        if "profile_sensitivity" in steps:
            table = steps["profile_sensitivity"].outputs["zq_sensitivity"][0].load()
            columns = ["rank", "layer", "type", "measured", "sensitivity_pts"]
            columns += ["drop_alone_pts", "recovery_pts", "noise_to_signal"]
            sensitivity = json.loads(table[columns].to_json(orient="records"))
    benchmarks = {
        name.removeprefix("benchmark_"): [asdict(r) for r in step.outputs["zq_benchmark"][0].load()]
        for name, step in steps.items()
        if name.startswith("benchmark_")
    }
    gate = None
    if "deployment_gate" in steps and steps["deployment_gate"].outputs.get("zq_gate_decision"):
        gate = steps["deployment_gate"].outputs["zq_gate_decision"][0].load()
    return {
        "baseline": baseline,
        "candidates": candidates,
        "paths": paths,
        "sensitivity": sensitivity,
        "benchmarks": benchmarks,
        "gate": gate,
    }


def _print_table(baseline: Any, candidates: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    threads = sorted({c.threads for c in candidates if not c.error})
    table = Table(
        title=f"{baseline.model_name}: accuracy on {baseline.split} ({baseline.n_samples} "
        f"examples); latency: median batch-1 invoke, {'/'.join(map(str, threads))} thread(s)"
    )
    for column in ("candidate", "accuracy", "Δ pts", "bytes", "vs f32", "latency", "float layers"):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    table.add_row(
        f"keras ({baseline.flavour})", f"{100 * baseline.accuracy:.2f} %", "", "", "", "", ""
    )
    for c in candidates:
        if c.error:
            table.add_row(c.name, "failed", "", f"{c.size_bytes:,}", "", "", "", style="red")
            continue
        table.add_row(
            c.name,
            f"{100 * c.accuracy:.2f} %",
            f"{100 * (c.accuracy - baseline.accuracy):+.2f}",
            f"{c.size_bytes:,}",
            f"{c.size_bytes / baseline.float_tflite_bytes:.2f}x",
            f"{c.latency_ms_p50 * 1000:.0f} µs" + (f" ×{c.threads}" if len(threads) > 1 else ""),
            ", ".join(c.float_layers),
        )
    # Wide enough for every column even when stdout is not a terminal (rich would assume 80).
    Console(width=max(100, Console().width)).print(table)
    for c in candidates:
        if c.error:
            click.echo(f"{c.name} failed: {c.error}", err=True)
        for note in c.notes:
            click.echo(f"{c.name}: {note}", err=True)


def _finish(
    model_path: str,
    data_source: str,
    config: str | None,
    overrides: dict[str, Any],
    output_dir: str,
    json_path: str | None,
    model_name: str | None = None,
) -> None:
    from ..report import summary_dict

    try:
        got = _run_and_collect(
            model_path,
            data_source,
            config=config,
            overrides=overrides,
            output_dir=Path(output_dir),
            model_name=model_name,
        )
    except Exception as exc:  # our errors, raised directly or inside a failed step: no traceback
        cause = _our_error(exc)
        if cause is None:
            raise
        raise click.ClickException(str(cause)) from None
    _print_table(got["baseline"], got["candidates"])
    click.echo(f"TFLite files written to {Path(output_dir).resolve()}")
    gate = got["gate"]
    if json_path:
        summary = summary_dict(
            got["baseline"],
            got["candidates"],
            got["paths"],
            sensitivity=got["sensitivity"],
            benchmarks=got["benchmarks"],
            gate=None if gate is None else _gate_summary(gate),
        )
        Path(json_path).write_text(json.dumps(summary, indent=2, default=str))
        click.echo(f"Summary written to {json_path}")
    if gate is not None:
        _print_gate(gate)
        if not gate.passed:
            raise click.ClickException("the deployment gate failed: nothing was promoted.")


def _gate_summary(gate: Any) -> dict[str, Any]:
    return {
        "passed": gate.passed,
        "stage": gate.stage if gate.passed else None,
        "selected": gate.selected,
        "checks": [
            {
                "name": c.name,
                "value": c.value,
                "limit": c.limit,
                "passed": c.passed,
                "reason": c.reason,
            }
            for c in gate.checks
        ],
        "reasons": list(gate.reasons),
    }


def _print_gate(gate: Any) -> None:
    if gate.passed:
        where = f", promoted to {gate.stage}" if gate.stage else ""
        click.echo(f"Deployment gate passed: {gate.selected}{where}.")
    else:
        click.echo("Deployment gate failed:", err=True)
    for reason in gate.reasons if not gate.passed else ():
        click.echo(f"  - {reason}", err=True)


def _our_error(exc: BaseException) -> BaseException | None:
    """The ZenmlQuantError that ``exc`` is or was caused by, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ZenmlQuantError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@click.group()
@click.version_option(package_name="zenml-quant")
def main() -> None:
    """Make a trained Keras model fit an edge device, with ZenML tracking every step."""


@main.command()
@click.option("--epochs", default=15, show_default=True, help="Training epochs for the demo CNN.")
@click.option("--output-dir", default="zenml-quant-output", show_default=True)
@click.option("--json", "json_path", default=None, help="Also write the summary as JSON here.")
def demo(epochs: int, output_dir: str, json_path: str | None) -> None:
    """Train a small CNN on the bundled 8x8 digits and compress it: float32, int8, the
    accuracy-controlled mixed model and quantization-aware training."""
    from ..datasets import load_digits
    from ..demo import train_demo_model

    click.echo("Training the demo CNN on scikit-learn's 8x8 digits ...")
    model = train_demo_model(load_digits(), epochs=epochs)
    model_path = os.path.join(tempfile.mkdtemp(prefix="zenml-quant-demo-"), "demo_cnn.keras")
    model.save(model_path)
    _finish(model_path, "digits", None, {"qat": True}, output_dir, json_path)


@main.command()
@click.option("--model", "model_path", required=True, help=".keras, .h5 or SavedModel folder.")
@click.option(
    "--data",
    "data_source",
    required=True,
    help='.npz (Keras keys), .csv (label column), image folder, or "digits".',
)
@click.option(
    "--config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ZenML YAML run config (pipeline parameters and per-step options).",
)
@click.option(
    "--scale", type=float, default=None, help="Integer inputs become x * scale + offset [1/255]."
)
@click.option("--offset", type=float, default=None, help="See --scale [0].")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="Conversion mode; repeat for several [float32, int8].",
)
@click.option("--allow-unsafe", is_flag=True, help="Load Lambda layers (runs code from the file).")
@click.option(
    "--metric",
    default=None,
    help='Extra metric "package.module:function" taking (labels, outputs) -> float.',
)
@click.option(
    "--sensitivity",
    type=click.Choice(["fast", "exhaustive", "off"]),
    default=None,
    help="Per-layer int8 sensitivity profiling [fast].",
)
@click.option(
    "--accuracy-budget",
    type=float,
    default=None,
    help="Accuracy drop the mixed int8 candidate may cost on validation, e.g. 0.005 = half a "
    "point [0.01]; layers are kept in float until it holds.",
)
@click.option(
    "--relative-budget", is_flag=True, help="--accuracy-budget is a fraction of the float accuracy."
)
@click.option("--no-mixed", is_flag=True, help="Skip the accuracy-controlled mixed candidate.")
@click.option(
    "--threads",
    "benchmark_threads",
    type=int,
    multiple=True,
    help="Benchmark thread count; repeat to sweep [1].",
)
@click.option(
    "--max-size-kb", type=float, default=None, help="Gate: largest .tflite, in KB (1000 B)."
)
@click.option(
    "--max-latency-ms", type=float, default=None, help="Gate: slowest p50 latency at 1 thread."
)
@click.option(
    "--max-accuracy-drop",
    type=float,
    default=None,
    help="Gate: accuracy lost against the Keras model, e.g. 0.01 = 1 point.",
)
@click.option("--min-accuracy", type=float, default=None, help="Gate: lowest accuracy, e.g. 0.98.")
@click.option(
    "--stage",
    type=click.Choice(["staging", "production"]),
    default=None,
    help="Promote the best passing candidate's ZenML model version to this stage.",
)
@click.option(
    "--model-name",
    default=None,
    help="ZenML model whose version the run becomes [the model file's name, with --stage].",
)
@click.option("--qat", is_flag=True, help="Add a quantization-aware-training candidate.")
@click.option("--output-dir", default="zenml-quant-output", show_default=True)
@click.option("--json", "json_path", default=None, help="Also write the summary as JSON here.")
def compress(
    model_path: str,
    data_source: str,
    config: str | None,
    scale: float | None,
    offset: float | None,
    modes: tuple[str, ...],
    allow_unsafe: bool,
    metric: str | None,
    sensitivity: str | None,
    accuracy_budget: float | None,
    relative_budget: bool,
    no_mixed: bool,
    benchmark_threads: tuple[int, ...],
    max_size_kb: float | None,
    max_latency_ms: float | None,
    max_accuracy_drop: float | None,
    min_accuracy: float | None,
    stage: str | None,
    model_name: str | None,
    qat: bool,
    output_dir: str,
    json_path: str | None,
) -> None:
    """Profile MODEL on DATA, convert it to TFLite and compare the candidates."""
    # Only options given on the command line are passed: ZenML refuses a parameter set both
    # in code and in the YAML config, so unset flags leave the config (or defaults) in charge.
    overrides: dict[str, Any] = {}
    if scale is not None:
        overrides["scale"] = scale
    if offset is not None:
        overrides["offset"] = offset
    if modes:
        overrides["modes"] = tuple(modes)
    if allow_unsafe:
        overrides["allow_unsafe"] = True
    if metric:
        overrides["metric"] = metric
    if sensitivity is not None:
        overrides["sensitivity_mode"] = None if sensitivity == "off" else sensitivity
    if accuracy_budget is not None:
        overrides["max_accuracy_drop"] = accuracy_budget
    if relative_budget:
        overrides["relative_drop"] = True
    if no_mixed:
        if accuracy_budget is not None:
            raise click.UsageError("--no-mixed and --accuracy-budget contradict each other.")
        overrides["max_accuracy_drop"] = None
    if qat:
        overrides["qat"] = True
    if benchmark_threads:
        overrides["benchmark_threads"] = tuple(benchmark_threads)
    gate = {
        "gate_max_size_bytes": None if max_size_kb is None else int(max_size_kb * 1000),
        "gate_max_latency_ms": max_latency_ms,
        "gate_max_accuracy_drop": max_accuracy_drop,
        "gate_min_accuracy": min_accuracy,
        "gate_stage": stage,
    }
    overrides.update({key: value for key, value in gate.items() if value is not None})
    # The CLI reports a failed gate itself, after writing the summary that says why.
    overrides["gate_raise_on_fail"] = False
    if stage and not model_name:
        model_name = Path(model_path.rstrip("/")).stem or "model"
    _finish(model_path, data_source, config, overrides, output_dir, json_path, model_name)


@main.command()
@click.option("--data", "data_source", default="digits", show_default=True)
@click.option("--epochs", default=15, show_default=True)
@click.option("--model-name", default="zenml-quant-demo", show_default=True)
@click.option(
    "--stage",
    type=click.Choice(["staging", "production"]),
    default="staging",
    show_default=True,
)
@click.option(
    "--config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ZenML run config, e.g. pipelines/configs/retrain.yaml; its parameters replace the flags.",
)
@click.option(
    "--schedule",
    "cron",
    default=None,
    help='Register a cron schedule (e.g. "0 3 * * 1") instead of running now; needs an '
    "orchestrator that schedules (not the local one).",
)
def retrain(
    data_source: str,
    epochs: int,
    model_name: str,
    stage: str,
    config: str | None,
    cron: str | None,
) -> None:
    """Retrain the demo CNN, compress, benchmark and promote what passes the gate."""
    from zenml import Model

    from .pipelines import retrain_and_compress, schedule_retrain_and_compress

    runnable = retrain_and_compress.with_options(model=Model(name=model_name))
    params: dict[str, Any] = {"data_source": data_source, "epochs": epochs, "gate_stage": stage}
    if config:  # ZenML refuses a parameter set twice: the config's parameters win
        runnable = runnable.with_options(config_path=config)
        params = {}
    try:
        if cron:
            schedule_retrain_and_compress(cron, pipeline_=runnable, **params)
            click.echo(f"retrain_and_compress scheduled: {cron}")
            return
        run = runnable(**params)
    except Exception as exc:
        cause = _our_error(exc)
        if cause is None:
            raise
        raise click.ClickException(str(cause)) from None
    decision = run.steps["deployment_gate"].outputs["zq_gate_decision"][0].load()
    _print_gate(decision)


def _search_summary(result: Any, gate: Any, paths: dict[str, str]) -> dict[str, Any]:
    from ..search.serialize import record_to_dict

    pareto = set(result.pareto)
    candidates = []
    for record in result.trials:
        row = record_to_dict(record)
        row["pareto"] = record.trial in pareto
        candidates.append(row)
    original = record_to_dict(result.original)
    return {
        "original": original,
        "original_accuracy": result.original_accuracy,
        "targets": asdict(result.targets),
        "trials": len(result.trials),
        "repeats": result.repeats,
        "stop_reason": result.stop_reason,
        "targets_met": result.targets_met,
        "first_met_trial": result.first_met_trial,
        "best_trial": result.best_trial,
        "pareto": list(result.pareto),
        "seconds": result.seconds,
        "notes": list(result.notes),
        "files": paths,
        "candidates": candidates,
        "gate": None if gate is None else _gate_summary(gate),
    }


def _print_search(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Architecture search: {len(result.trials)} trials, {result.stop_reason}; "
        f"original {100 * result.original_accuracy:.2f} % (Keras, validation)"
    )
    for column in ("trial", "accuracy", "KB", "latency", "reward", "met", "edits"):
        table.add_column(column, justify="left" if column == "edits" else "right")
    shown = [result.original] + [result.record(t) for t in result.pareto]
    if result.best is not None and result.best_trial not in result.pareto:
        shown.append(result.best)
    for r in shown:
        if not r.ok:
            continue
        star = " *" if r.trial == result.best_trial else ""
        table.add_row(
            "original" if r.trial == 0 else f"{r.trial}{star}",
            f"{100 * r.accuracy:.2f} %",
            f"{r.size_bytes / 1000:.1f}",
            "" if r.latency_ms is None else f"{1000 * r.latency_ms:.0f} µs",
            "" if r.reward is None else f"{r.reward:.3f}",
            "yes" if r.meets_targets else "no",
            "; ".join(r.plan.describe()),
        )
    Console(width=max(140, Console().width)).print(table)
    click.echo("Rows: the original model, then the Pareto suggestions; * is the best.")
    for note in result.notes:
        click.echo(note, err=True)


@main.command()
@click.option("--model", "model_path", required=True, help=".keras, .h5 or SavedModel folder.")
@click.option(
    "--data",
    "data_source",
    required=True,
    help='.npz (Keras keys), .csv (label column), image folder, or "digits".',
)
@click.option(
    "--config",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="ZenML YAML run config (nas_pipeline parameters and search_architecture options).",
)
@click.option(
    "--scale", type=float, default=None, help="Integer inputs become x * scale + offset [1/255]."
)
@click.option("--offset", type=float, default=None, help="See --scale [0].")
@click.option("--allow-unsafe", is_flag=True, help="Load Lambda layers (runs code from the file).")
@click.option("--max-trials", type=int, default=None, help="Candidates to evaluate [30].")
@click.option("--time-budget-min", type=float, default=None, help="Stop after this many minutes.")
@click.option("--seed", type=int, default=None, help="Seed of the controller and fine-tuning [0].")
@click.option(
    "--candidates", type=int, default=None, help="Searched models passed to the gate [3]."
)
@click.option(
    "--executor",
    type=click.Choice(["inprocess", "process", "ray"]),
    default=None,
    help="Where candidates are evaluated [inprocess].",
)
@click.option(
    "--max-size-kb", type=float, default=None, help="Target: largest .tflite, in KB (1000 B)."
)
@click.option(
    "--max-latency-ms", type=float, default=None, help="Target: slowest p50 latency at 1 thread."
)
@click.option(
    "--max-accuracy-drop",
    type=float,
    default=None,
    help="Target: accuracy lost against the original model, e.g. 0.01 = 1 point.",
)
@click.option(
    "--min-accuracy", type=float, default=None, help="Target: lowest accuracy, e.g. 0.98."
)
@click.option(
    "--stage",
    type=click.Choice(["staging", "production"]),
    default=None,
    help="Promote the run's ZenML model version to this stage if a candidate passes.",
)
@click.option("--model-name", default=None, help="ZenML model for promotion [the file's name].")
@click.option("--output-dir", default="zenml-quant-output", show_default=True)
@click.option("--json", "json_path", default=None, help="Also write the summary as JSON here.")
def search(
    model_path: str,
    data_source: str,
    config: str | None,
    scale: float | None,
    offset: float | None,
    allow_unsafe: bool,
    max_trials: int | None,
    time_budget_min: float | None,
    seed: int | None,
    candidates: int | None,
    executor: str | None,
    max_size_kb: float | None,
    max_latency_ms: float | None,
    max_accuracy_drop: float | None,
    min_accuracy: float | None,
    stage: str | None,
    model_name: str | None,
    output_dir: str,
    json_path: str | None,
) -> None:
    """Search edits of MODEL that meet the targets on DATA, then benchmark and gate the best.

    Writes the best model's .tflite and every Pareto suggestion's edit plan (YAML, for the
    apply_edits step) to --output-dir.
    """
    from zenml import Model

    from .pipelines import nas_pipeline

    given = {
        "scale": scale,
        "offset": offset,
        "max_trials": max_trials,
        "time_budget_min": time_budget_min,
        "seed": seed,
        "candidates": candidates,
        "executor": executor,
        "gate_max_size_bytes": None if max_size_kb is None else int(max_size_kb * 1000),
        "gate_max_latency_ms": max_latency_ms,
        "gate_max_accuracy_drop": max_accuracy_drop,
        "gate_min_accuracy": min_accuracy,
        "gate_stage": stage,
    }
    overrides: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if allow_unsafe:
        overrides["allow_unsafe"] = True
    overrides["gate_raise_on_fail"] = False
    targets = ("gate_max_size_bytes", "gate_max_latency_ms", "gate_max_accuracy_drop")
    if not config and not any(k in overrides for k in (*targets, "gate_min_accuracy")):
        raise click.UsageError(
            "Give the search a target: --max-size-kb, --max-latency-ms, --max-accuracy-drop or "
            "--min-accuracy (or a --config that sets them)."
        )
    runnable = nas_pipeline.with_options(config_path=config) if config else nas_pipeline
    if stage:
        name = model_name or Path(model_path.rstrip("/")).stem or "model"
        runnable = runnable.with_options(model=Model(name=name))
    try:
        run = runnable(model_path=model_path, data_source=data_source, **overrides)
    except Exception as exc:
        cause = _our_error(exc)
        if cause is None:
            raise
        raise click.ClickException(str(cause)) from None
    if run is None:  # e.g. the config holds a schedule: nothing ran now
        raise click.ClickException(
            "The pipeline did not run now (a schedule in the config?): drop the schedule to "
            "search immediately."
        )
    result = run.steps["search_architecture"].outputs["zq_search_result"][0].load()
    gate = run.steps["deployment_gate"].outputs["zq_gate_decision"][0].load()
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(model_path.rstrip("/")).stem or "model"
    paths = {}
    if result.best_trial is not None:
        best = out / f"{stem}_search_best.tflite"
        best.write_bytes(result.tflite().content)
        paths["best_tflite"] = str(best.resolve())
    for s in result.suggestions:
        plan = out / f"{stem}_trial_{s.trial}.yaml"
        plan.write_text(s.plan.to_yaml())
        paths[f"plan_trial_{s.trial}"] = str(plan.resolve())
    _print_search(result)
    click.echo(f"Best model and edit plans written to {out.resolve()}")
    if json_path:
        Path(json_path).write_text(
            json.dumps(_search_summary(result, gate, paths), indent=2, default=str)
        )
        click.echo(f"Summary written to {json_path}")
    _print_gate(gate)
    if not gate.passed:
        raise click.ClickException("the deployment gate failed: nothing was promoted.")


@main.command()
@click.option("--model", "model_path", default=None, help=".keras, .h5 or SavedModel folder.")
@click.option(
    "--model-version",
    default=None,
    help="A ZenML model version, NAME or NAME:VERSION: its Keras model (and dataset and search "
    "result, when the pipeline linked them).",
)
@click.option("--artifact", default=None, help="A ZenML artifact holding a Keras model.")
@click.option(
    "--data",
    "data_source",
    default=None,
    help='.npz (Keras keys), .csv (label column), image folder, or "digits" [the model '
    "version's dataset].",
)
@click.option(
    "--scale", type=float, default=None, help="Integer inputs become x * scale + offset [1/255]."
)
@click.option("--offset", type=float, default=None, help="See --scale [0].")
@click.option("--allow-unsafe", is_flag=True, help="Load Lambda layers (runs code from the file).")
@click.option(
    "--suggestions",
    default=None,
    help="A search's JSON summary (zenml-quant search --json), an edit-plan YAML, or a folder "
    "of them: listed on the page to load and change.",
)
@click.option("--max-size-kb", type=float, default=None, help="Target: largest .tflite, in KB.")
@click.option("--max-peak-memory-kb", type=float, default=None, help="Target: activation arena.")
@click.option("--max-latency-ms", type=float, default=None, help="Target: p50 latency.")
@click.option("--max-accuracy-drop", type=float, default=None, help="Target, e.g. 0.01 = 1 point.")
@click.option("--min-accuracy", type=float, default=None, help="Target, e.g. 0.98.")
@click.option("--threads", type=int, default=1, show_default=True, help="Latency threads.")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 [a free one].")
def studio(port: int, **options: Any) -> None:
    """Open a local web page to edit a model layer by layer and see what each edit costs.

    The page lists the layers with the edits each can take; "Evaluate" applies the plan,
    converts, evaluates and benchmarks it beside the original model; "Export" writes the plan
    as YAML for the apply_edits step.
    """
    try:
        prepared = _prepare_studio(**options)
        from ..studio import serve

        serve(prepared, port=port, announce=click.echo)
    except ZenmlQuantError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        click.echo("studio stopped")


def _prepare_studio(
    *,
    model_path: str | None = None,
    model_version: str | None = None,
    artifact: str | None = None,
    data_source: str | None = None,
    scale: float | None = None,
    offset: float | None = None,
    allow_unsafe: bool = False,
    suggestions: str | None = None,
    max_size_kb: float | None = None,
    max_peak_memory_kb: float | None = None,
    max_latency_ms: float | None = None,
    max_accuracy_drop: float | None = None,
    min_accuracy: float | None = None,
    threads: int = 1,
) -> Any:
    """The Studio for the ``studio`` command's options (model, data, suggestions, targets)."""
    from .. import datasets as _datasets
    from .. import models as _models
    from ..search.types import Targets
    from ..studio import Studio
    from ..studio.suggestions import load_suggestions, suggestions_from_result

    sources = (
        ("--model", model_path),
        ("--model-version", model_version),
        ("--artifact", artifact),
    )
    if sum(1 for _, value in sources if value) != 1:
        raise click.UsageError(
            "Give the model with exactly one of --model, --model-version or --artifact."
        )
    if isinstance(threads, bool) or threads < 1:
        raise click.UsageError(f"--threads must be at least 1, got {threads}.")
    dataset = search_result = None
    if model_path:
        model = _models.load_model(model_path, allow_unsafe=allow_unsafe)
    else:
        from .studio_sources import from_artifact, from_model_version

        found = (
            from_model_version(model_version) if model_version else from_artifact(artifact or "")
        )
        model, dataset, search_result = found.model, found.dataset, found.search_result
        click.echo(f"Loaded {found.description}")
    if data_source is not None:
        dataset = _datasets.load_dataset(
            data_source,
            scale=1 / 255 if scale is None else scale,
            offset=0.0 if offset is None else offset,
        )
    if dataset is None:
        raise click.UsageError("Give the labeled data with --data (the model version links none).")
    dataset = _datasets.conform_to_model(
        dataset, input_shape=_models.input_shape(model), num_classes=_models.num_outputs(model)
    )
    offered = load_suggestions(suggestions) if suggestions else []
    if search_result is not None and not suggestions:
        offered = suggestions_from_result(search_result)
    kb = {"max_size_bytes": max_size_kb, "max_peak_memory_bytes": max_peak_memory_kb}
    limits = {k: int(v * 1000) for k, v in kb.items() if v is not None}
    other = {
        "max_latency_ms": max_latency_ms,
        "max_accuracy_drop": max_accuracy_drop,
        "min_accuracy": min_accuracy,
    }
    limits.update({k: v for k, v in other.items() if v is not None})
    return Studio(model, dataset, targets=Targets(**limits), suggestions=offered, threads=threads)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
