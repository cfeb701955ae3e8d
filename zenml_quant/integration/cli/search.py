"""``zenml-quant search`` (the architecture search) and ``zenml-quant retrain``."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ..configs import MAX_SEARCH_CANDIDATES, NasConfig
from . import checks
from .options import (
    Promotion,
    TargetFlags,
    TaskFlags,
    config_option,
    data_options,
    model_options,
    output_options,
    promotion_options,
    source_options,
    target_options,
    task_options,
)
from .quiet import quiet_run
from .run_config import (
    data_flags,
    gate_flags,
    given_flags,
    pipeline_config,
    zenml_run_config,
)
from .running import (
    find_output,
    print_files,
    print_gate,
    resolve_model,
    run_tracked,
    write_json,
)

__all__ = ["search"]


def _search_summary(result: Any, run_summary: Any, paths: dict[str, str]) -> dict[str, Any]:
    from ...search.serialize import record_to_dict

    pareto = set(result.pareto)
    candidates = []
    for record in result.trials:
        row = record_to_dict(record)
        row["pareto"] = record.trial in pareto
        candidates.append(row)
    summary = run_summary.to_dict() if run_summary is not None else {}
    return {
        "original": record_to_dict(result.original),
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
        "gated": summary.get("candidates", []),
        "gate": summary.get("gate"),
    }


def _print_search(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Architecture search: {len(result.trials)} trials, {result.stop_reason}; "
        f"original {100 * result.original_accuracy:.2f} % (Keras, validation)"
    )
    metric = result.targets.metric
    for column in ("trial", "gated as", metric.label, "bytes", "latency", "reward", "met", "edits"):
        table.add_column(column, justify="left" if column in ("edits", "gated as") else "right")
    order = result.candidate_order()
    shown = [result.original] + [result.record(t) for t in order if t != 0]
    for r in shown:
        if not r.ok:
            continue
        gated = f"search_{order.index(r.trial) + 1}" if r.trial in order else ""
        table.add_row(
            "original" if r.trial == 0 else str(r.trial),
            gated,
            metric.format(r.accuracy),
            f"{r.size_bytes:,}",
            "" if r.latency_ms is None else f"{1000 * r.latency_ms:.0f} µs",
            "" if r.reward is None else f"{r.reward:.3f}",
            "yes" if r.meets_targets else "no",
            "; ".join(r.plan.describe()),
        )
    Console().print(table)  # the terminal's width; 80 columns when piped
    click.echo("Rows: the original model, then the suggestions in the order they are gated.")
    for note in result.notes:
        click.echo(note, err=True)


@click.command()
@model_options(required=False)
@source_options()
@data_options()
@config_option("parameters: config: the NasConfig (search: every search setting)")
@click.option("--max-trials", type=int, default=None, help="Candidates to evaluate [30].")
@click.option("--time-budget-min", type=float, default=None, help="Stop after this many minutes.")
@click.option("--seed", type=int, default=None, help="Seed of the controller and fine-tuning [0].")
@click.option(
    "--candidates", type=int, default=None, help="Searched models passed to the gate, 1-5 [3]."
)
@click.option(
    "--proposer",
    type=click.Choice(["controller", "local", "random"]),
    default=None,
    help=(
        "How edits are proposed [controller]: the RNN policy; 'local', one or two changes "
        "from the best so far (the better choice for large pre-trained models); 'random'."
    ),
)
@click.option(
    "--executor",
    type=click.Choice(["inprocess", "process", "ray"]),
    default=None,
    help=(
        "Where candidates are evaluated [by model size: 'process' (a crash fails one trial) "
        "from 50,000 parameters, else 'inprocess']."
    ),
)
@task_options()
@target_options("Target")
@promotion_options()
@output_options()
def search(
    model_path: str | None,
    model_version: str | None,
    artifact: str | None,
    data_source: str,
    config: str | None,
    scale: float | None,
    offset: float | None,
    allow_unsafe: bool,
    task_flags: TaskFlags,
    max_trials: int | None,
    time_budget_min: float | None,
    seed: int | None,
    candidates: int | None,
    proposer: str | None,
    executor: str | None,
    target_flags: TargetFlags,
    promotion: Promotion,
    output_dir: str,
    json_path: str | None,
    verbose: bool,
) -> None:
    """Search edits of MODEL that meet the targets on DATA, then benchmark and gate the best.

    Nothing below the accuracy floor (your accuracy target, or at most 1 point lost by
    default) is returned or suggested. Writes the best model's .tflite and every suggestion's
    edit plan (YAML, for the apply_edits step) to --output-dir. The model is a file (--model)
    or one already in ZenML (--model-version, --artifact).
    """
    checks.one_model_source(model_path, model_version, artifact)
    checks.number("--scale", scale)
    checks.number("--offset", offset)
    checks.whole("--max-trials", max_trials, minimum=1, maximum=100_000)
    checks.number("--time-budget-min", time_budget_min, minimum=0, min_inclusive=False)
    checks.whole("--seed", seed, minimum=0)
    checks.whole("--candidates", candidates, minimum=1, maximum=MAX_SEARCH_CANDIDATES)
    task, metric, higher_is_better = task_flags.task, task_flags.metric, task_flags.higher_is_better
    checks.check_metric(task, metric, higher_is_better)
    targets = checks.targets_from_flags(
        target_flags,
        metric=checks.cli_metric(task, metric, higher_is_better),
    )
    checks.check_promotion(promotion)
    model_name = promotion.model_name
    checks.check_outputs(output_dir, json_path)
    # Only options given on the command line go over the --config file's (a flag wins).
    flags = {
        "search": {
            "trials": max_trials,
            "time_budget_min": time_budget_min,
            "seed": seed,
            "candidates": candidates,
            "proposer": proposer,
            "executor": executor,
        },
        "data": data_flags(data_source, scale, offset, allow_unsafe, task_flags),
        "gate": gate_flags(None if targets.empty else targets.to_dict(), promotion),
    }
    run_config, _ = pipeline_config(config, NasConfig, given_flags(flags))
    if not run_config.gate.targets:
        raise checks.usage_error(
            "targets",
            "the search needs a target",
            "give --max-size-kb, --max-latency-ms, --max-peak-memory-kb, --max-quality-drop or "
            "--min-quality (or 'gate: targets:' in the --config)",
        )
    model_path, written = resolve_model(  # a model from ZenML is written out for the run
        model_path,
        model_version,
        artifact,
        allow_unsafe=allow_unsafe,
        output_dir=output_dir,
        verbose=verbose,
    )
    checks.check_data_source(
        data_source,
        scale=scale,
        offset=offset,
        val_data=task_flags.val_data,
        validation_from=task_flags.validation_from,
        task=task,
        model_config=checks.check_model_path(model_path),
    )

    with quiet_run(verbose), zenml_run_config(config) as steps_config:
        # loading the pipelines loads TensorFlow, which talks
        from zenml import Model

        from ..pipelines import nas_pipeline

        runnable = (
            nas_pipeline.with_options(config_path=steps_config) if steps_config else nas_pipeline
        )
        if run_config.gate.stage:  # the flag's stage, or the file's
            name = model_name or Path(model_path.rstrip("/")).stem or "model"
            runnable = runnable.with_options(model=Model(name=name))
        run = run_tracked(
            runnable, "search", verbose=verbose, model_path=model_path, config=run_config
        )
        result = find_output(run, "zq_search_result")
        summary = find_output(run, "zq_run_summary")
    from ..._atomic import atomic_write_bytes, atomic_write_text

    if result is None:
        raise click.ClickException("the run produced no search result: see its step logs")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(model_path.rstrip("/")).stem or "model"
    paths = {}
    if result.best_trial is not None:
        best = out / f"{stem}_search_best.tflite"
        atomic_write_bytes(best, result.tflite().content)
        paths["best_tflite"] = str(best.resolve())
    for s in result.suggestions:
        plan = out / f"{stem}_trial_{s.trial}.yaml"
        atomic_write_text(plan, s.plan.to_yaml())
        paths[f"plan_trial_{s.trial}"] = str(plan.resolve())
    _print_search(result)
    if json_path:
        write_json(json_path, _search_summary(result, summary, paths))
    shown = written | {
        "the best model" if k == "best_tflite" else k.replace("_", " "): p for k, p in paths.items()
    }
    print_files(out, shown, json_path)
    gate = summary.gate if summary is not None else None
    if gate is not None:
        print_gate(gate)
        if not gate.passed:
            raise click.ClickException("the deployment gate failed: nothing was promoted.")
