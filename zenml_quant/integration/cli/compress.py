"""``zenml-quant compress``: every candidate, the gate, the summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from ...model_file import has_batchnorm
from ...types import MODES
from ..configs import CompressConfig
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
    print_summary,
    resolve_model,
    run_tracked,
    write_candidate_files,
    write_json,
)

__all__ = ["compress", "run_compress"]


def _finish(
    run: Any,
    model_path: str,
    output_dir: str,
    json_path: str | None,
    written: dict[str, str] | None = None,
) -> None:
    """Show and write what the run produced; exit 1 when the gate failed. ``written`` names
    files the command wrote before the run (the demo's trained model)."""
    summary = find_output(run, "zq_run_summary")
    if summary is None:
        raise click.ClickException("the run produced no summary: see the ZenML run's step logs")
    stem = Path(model_path.rstrip("/")).stem or "model"
    paths = write_candidate_files(run, summary, stem, Path(output_dir))
    print_summary(summary)
    if json_path:
        write_json(json_path, summary.to_dict(paths))
    shown = {**(written or {}), **{f"{name} candidate": p for name, p in paths.items()}}
    print_files(Path(output_dir), shown, json_path)
    gate = summary.gate
    if gate is not None:
        print_gate(gate)
        if not gate.passed:
            raise click.ClickException("the deployment gate failed: nothing was promoted.")


@click.command()
@model_options(required=False)
@source_options()
@data_options()
@config_option("parameters: config: the CompressConfig; steps: each step's options")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(MODES),
    help="Conversion mode; repeat for several [float32, int8].",
)
@click.option(
    "--sensitivity",
    type=click.Choice(["fast", "exhaustive", "off"]),
    default=None,
    help="Per-layer int8 sensitivity profiling [fast].",
)
@click.option(
    "--quality-budget",
    type=float,
    default=None,
    help="How much worse than the float model the mixed int8 candidate may be on validation, "
    "in the metric's units [0.01].",
)
@click.option(
    "--accuracy-budget",
    type=float,
    default=None,
    help="--quality-budget for accuracy, in [0, 1): 0.005 = half a point.",
)
@click.option(
    "--relative-budget", is_flag=True, help="--accuracy-budget is a fraction of the float accuracy."
)
@click.option("--no-mixed", is_flag=True, help="Skip the accuracy-controlled mixed candidate.")
@click.option(
    "--precisions",
    default=None,
    help="Precisions the mixed candidate may give a layer, comma-separated, from int4 (int4 "
    "weights, int8 activations), int4_weights, int8, int8_weights, int16x8, float16_weights, "
    "float [int4,int8,float]. Only int8 and float: the converter's int8 with float layers.",
)
@click.option(
    "--objective",
    type=click.Choice(["bytes", "latency", "energy", "peak_memory"]),
    default=None,
    help="What the mixed candidate minimises within the quality budget [bytes].",
)
@click.option("--qat", is_flag=True, help="Add a quantization-aware-training candidate.")
@click.option(
    "--mixed-qat",
    is_flag=True,
    help="Add mixed_qat: per-layer precisions within 3x the budget, int4 layers fine-tuned on "
    "the int4 grid.",
)
@click.option(
    "--bn-reestimate/--no-bn-reestimate",
    default=None,
    help="Add bn_int8: BatchNorm statistics re-estimated on the train split (no training), "
    "then int8 [on when the model has BatchNorm].",
)
@click.option(
    "--qat-skip",
    "qat_skip",
    multiple=True,
    help="Layer QAT leaves in float; repeat for several (layers tfmot cannot annotate are "
    "skipped anyway).",
)
@click.option(
    "--threads",
    "benchmark_threads",
    type=int,
    multiple=True,
    help="Benchmark thread count; repeat to sweep [1]. The latency target reads the first.",
)
@task_options()
@target_options()
@promotion_options()
@output_options()
def compress(
    model_path: str | None,
    model_version: str | None,
    artifact: str | None,
    data_source: str,
    config: str | None,
    scale: float | None,
    offset: float | None,
    modes: tuple[str, ...],
    allow_unsafe: bool,
    task_flags: TaskFlags,
    sensitivity: str | None,
    quality_budget: float | None,
    accuracy_budget: float | None,
    relative_budget: bool,
    no_mixed: bool,
    precisions: str | None,
    objective: str | None,
    qat: bool,
    mixed_qat: bool,
    bn_reestimate: bool | None,
    qat_skip: tuple[str, ...],
    benchmark_threads: tuple[int, ...],
    target_flags: TargetFlags,
    promotion: Promotion,
    output_dir: str,
    json_path: str | None,
    verbose: bool,
) -> None:
    """Profile MODEL on DATA, convert and quantize it, benchmark and gate the candidates.

    The model is a file (--model) or one already in ZenML (--model-version, --artifact).
    """
    # Check everything before anything runs: a mistake costs a second, not a pipeline run.
    checks.one_model_source(model_path, model_version, artifact)
    checks.number("--scale", scale)
    checks.number("--offset", offset)
    checks.check_modes(modes)
    checks.check_threads(benchmark_threads)
    task, metric, higher_is_better = task_flags.task, task_flags.metric, task_flags.higher_is_better
    checks.check_metric(task, metric, higher_is_better)
    if quality_budget is not None and accuracy_budget is not None:
        raise checks.usage_error(
            "--accuracy-budget", "it is another spelling of --quality-budget", "give only one"
        )
    checks.number("--accuracy-budget", accuracy_budget, minimum=0, maximum=1, max_inclusive=False)
    fraction = relative_budget or checks.cli_metric(task, metric, higher_is_better).fraction
    checks.number(
        "--quality-budget",
        quality_budget,
        minimum=0,
        maximum=1 if fraction else None,
        max_inclusive=False,
    )
    if quality_budget is not None:
        accuracy_budget = quality_budget
    if no_mixed and (accuracy_budget is not None or relative_budget):
        raise checks.usage_error(
            "--no-mixed", "it contradicts --accuracy-budget/--relative-budget", "drop one of them"
        )
    if precisions is not None:
        precisions = ",".join(checks.check_precisions(precisions))
    if no_mixed and (precisions is not None or objective is not None):
        raise checks.usage_error(
            "--no-mixed", "it contradicts --precisions/--objective", "drop one of them"
        )
    if qat_skip and not qat:
        raise checks.usage_error("--qat-skip", "it applies to QAT only", "add --qat")
    targets = checks.targets_from_flags(
        target_flags,
        metric=checks.cli_metric(task, metric, higher_is_better),
        threads=benchmark_threads[0] if benchmark_threads else 1,
    )
    checks.check_promotion(promotion)
    model_name = promotion.model_name
    checks.check_outputs(output_dir, json_path)

    # Only options given on the command line go over the --config file's (a flag wins);
    # unset flags leave the file (or the defaults) in charge.
    flags: dict[str, Any] = {
        "modes": tuple(modes) or None,
        "sensitivity_mode": sensitivity,
        "max_quality_drop": accuracy_budget,
        "benchmark_threads": tuple(benchmark_threads) or None,
        "precisions": tuple(precisions.split(",")) if precisions else None,
        "precision_objective": objective,
        "qat_skip_layers": tuple(qat_skip) or None,
        "bn_reestimate": bn_reestimate,
        "relative_drop": relative_budget or None,
        "qat": qat or None,
        "mixed_qat": mixed_qat or None,
        "data": data_flags(data_source, scale, offset, allow_unsafe, task_flags),
        "gate": gate_flags(
            None if targets.empty and not benchmark_threads else targets.to_dict(), promotion
        ),
    }
    given = given_flags(flags)
    if sensitivity == "off":  # None is the choice here: no profiling
        given["sensitivity_mode"] = None
    if no_mixed:
        given["max_quality_drop"] = None
    run_config, in_file = pipeline_config(config, CompressConfig, given)
    model_path, written = resolve_model(  # a model from ZenML is written out for the run
        model_path,
        model_version,
        artifact,
        allow_unsafe=allow_unsafe,
        output_dir=output_dir,
        verbose=verbose,
    )
    model_config = checks.check_model_path(model_path)
    checks.check_layer_names("--qat-skip", qat_skip, model_config)
    if bn_reestimate and model_config is not None and not has_batchnorm(model_config):
        raise checks.usage_error(
            "--bn-reestimate", "the model has no BatchNormalization layer", "drop the flag"
        )
    if bn_reestimate is None and "bn_reestimate" not in in_file and model_config is not None:
        # Auto: a model with BatchNorm gets the zero-training candidate.
        if has_batchnorm(model_config):
            run_config = replace(run_config, bn_reestimate=True)
    checks.check_data_source(
        data_source,
        scale=scale,
        offset=offset,
        val_data=task_flags.val_data,
        validation_from=task_flags.validation_from,
        task=task,
        model_config=model_config,
    )
    if run_config.gate.stage and not model_name:  # the flag's stage, or the file's
        model_name = Path(model_path.rstrip("/")).stem or "model"
    run_compress(
        model_path,
        run_config,
        config,
        output_dir,
        json_path,
        model_name,
        verbose,
        written=written,
    )


def run_compress(
    model_path: str,
    run_config: CompressConfig,
    config: str | None,
    output_dir: str,
    json_path: str | None,
    model_name: str | None,
    verbose: bool,
    written: dict[str, str] | None = None,
) -> None:
    """Run ``compress_pipeline`` on ``model_path`` with ``run_config`` (and the ``config``
    file's step options), then write and print what it made."""
    with quiet_run(verbose), zenml_run_config(config) as steps_config:
        # loading the pipelines loads TensorFlow, which talks
        from ..pipelines import compress_pipeline

        runnable = (
            compress_pipeline.with_options(config_path=steps_config)
            if steps_config
            else compress_pipeline
        )
        if model_name:  # promotion needs a ZenML model; each run becomes one of its versions
            from zenml import Model

            runnable = runnable.with_options(model=Model(name=model_name))
        run = run_tracked(
            runnable, "compress", verbose=verbose, model_path=model_path, config=run_config
        )
        _finish(run, model_path, output_dir, json_path, written)
