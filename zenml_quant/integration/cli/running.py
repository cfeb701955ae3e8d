"""Running a pipeline from the command line, and showing and writing what it produced.

Everything here runs after the options were checked: it imports ZenML (and, through the
pipelines, TensorFlow).
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from ...errors import ZenmlQuantError

__all__ = [
    "find_output",
    "resolve_model",
    "our_error",
    "print_files",
    "print_gate",
    "print_summary",
    "run_tracked",
    "write_candidate_files",
]


def our_error(exc: BaseException) -> BaseException | None:
    """The ZenmlQuantError that ``exc`` is or was caused by, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ZenmlQuantError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def run_tracked(runnable: Any, command: str, *, verbose: bool = False, **parameters: Any) -> Any:
    """Run ``runnable(**parameters)`` as a named, tracked run; our errors become one line.

    Unless ``verbose``, the libraries' log lines are kept off the console while it runs (see
    :mod:`.quiet`); the run records them all.

    The store is initialised under a lock (several commands may start together on a fresh
    store), runs that a dead process left "running" are marked failed first (and said so), and
    this run is recorded with its process id until it ends, so that the next command can tell
    if this process dies.
    """
    from ..runs import initialize_store, reap_stale_runs, tracked_run
    from .quiet import quiet_run

    with quiet_run(verbose):
        initialize_store()
    for message in reap_stale_runs():
        click.echo(message, err=True)
    name = f"zq-{command}-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    try:
        with quiet_run(verbose), tracked_run(name):
            run = runnable.with_options(run_name=name)(**parameters)
    except Exception as exc:  # our errors, raised directly or inside a failed step
        cause = our_error(exc)
        if cause is None:  # not one of ours: still one line, pointing at the run's logs
            raise click.ClickException(
                f"the run {name} failed: {one_line(str(exc))[:400]} (the step logs in ZenML "
                "have the details)"
            ) from None
        raise click.ClickException(one_line(str(cause))) from None
    if run is None:  # e.g. the config holds a schedule: nothing ran now
        raise click.ClickException(
            "The pipeline did not run now (a schedule in the config?), so there is nothing to "
            "write: drop the schedule to run immediately."
        )
    return run


def resolve_model(
    model_path: str | None,
    model_version: str | None,
    artifact: str | None,
    *,
    allow_unsafe: bool,
    output_dir: str,
    verbose: bool,
) -> tuple[str, dict[str, str]]:
    """The model file a pipeline loads, and the files written to get it: ``model_path`` as
    given (nothing written), or the Keras model of a ZenML model version (or artifact) written
    to ``output_dir`` as ``<reference>.keras``: ``(path, {what: path})``.

    A reference that does not resolve is a bad option (exit 2), said before anything runs.
    """
    if model_path:
        return model_path, {}
    import re

    from ...errors import ZenmlQuantError
    from .quiet import quiet_run

    reference = model_version or artifact or ""
    try:
        with quiet_run(verbose):
            from ...models import save_model
            from ..studio_sources import from_artifact, from_model_version

            found = (
                from_model_version(reference, allow_unsafe=allow_unsafe)
                if model_version
                else from_artifact(reference, allow_unsafe=allow_unsafe)
            )
            stem = re.sub(r"[^\w.-]+", "_", reference).strip("._") or "model"
            path = save_model(found.model, Path(output_dir).resolve() / f"{stem}.keras")
    except ZenmlQuantError as exc:
        option = "--model-version" if model_version else "--artifact"
        raise click.UsageError(f"{option}: {one_line(str(exc))}") from None
    click.echo(f"Loaded {found.description}")
    return str(path), {f"the model from {found.description}": str(path)}


def find_output(run: Any, artifact: str) -> Any | None:
    """The loaded artifact called ``artifact`` among the run's step outputs, or None."""
    for step_run in run.steps.values():
        versions = step_run.outputs.get(artifact)
        if versions:
            with warnings.catch_warnings():  # ZenML's CSV loader guesses at dates
                warnings.simplefilter("ignore", UserWarning)
                return versions[0].load()
    return None


def write_candidate_files(run: Any, summary: Any, stem: str, output_dir: Path) -> dict[str, str]:
    """Write every candidate's ``.tflite`` (each atomically) and return ``{name: path}``."""
    from ..._atomic import atomic_write_bytes

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for candidate in summary.candidates:
        if not candidate.ok:
            continue
        tflite = find_output(run, candidate.artifact)
        if tflite is None or not tflite.content:
            continue
        target = (output_dir / f"{stem}_{candidate.name}.tflite").resolve()
        atomic_write_bytes(target, tflite.content)
        paths[candidate.name] = str(target)
    return paths


def print_files(directory: Path, paths: dict[str, str], json_path: str | None = None) -> None:
    """Where every written file went: the folder, then each file in it (the JSON apart)."""
    click.echo(f"Files written to {directory.resolve()}:")
    for what, path in paths.items():
        click.echo(f"  {Path(path).name}  ({what})")
    if json_path:
        click.echo(f"Summary written to {Path(json_path).resolve()}")


def write_json(path: str, payload: dict[str, Any]) -> None:
    import json

    from ..._atomic import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2, default=str))


def print_summary(summary: Any) -> None:
    """The candidates' table: what each scored, weighs and costs, or why it failed."""
    from rich.console import Console
    from rich.table import Table

    b = summary.baseline
    metric = summary.metric
    threads = sorted({c.threads for c in summary.candidates if c.ok})
    table = Table(
        title=f"{b.model_name}: {metric.label} ({metric.direction}) on {b.split} "
        f"({b.n_samples} examples); latency: median batch-1 invoke, "
        f"{'/'.join(map(str, threads)) or 1} thread(s)"
    )
    columns = (
        "candidate",
        metric.label,
        f"Δ {metric.change_unit}",
        "bytes",
        "vs f32",
        "latency",
        "layers not int8",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in (columns[0], columns[-1]) else "right")
    table.add_row(f"keras ({b.flavour})", metric.format(b.accuracy), "", "", "", "", "")
    for c in summary.candidates:
        if not c.ok:
            table.add_row(c.name, "failed", "", "", "", "", "", style="red")
            continue
        table.add_row(
            c.name + (" *" if c.status == "selected" else ""),
            "" if c.accuracy is None else metric.format(c.accuracy),
            "" if c.accuracy is None else metric.format_change(c.accuracy - b.accuracy),
            f"{c.size_bytes:,}" if c.size_bytes else "",
            f"{(c.size_bytes or 0) / b.float_tflite_bytes:.2f}x" if b.float_tflite_bytes else "",
            "" if c.latency_ms_p50 is None else f"{c.latency_ms_p50 * 1000:.0f} µs",
            c.not_int8,
        )
    Console().print(table)  # the terminal's width; 80 columns when piped
    if b.validation_source:
        click.echo(f"Decisions were taken on {b.validation_source}.")
    for c in summary.candidates:
        if not c.ok:
            click.echo(f"{c.name} failed: {c.reason}", err=True)
        for note in c.notes:
            click.echo(f"{c.name}: {note}", err=True)


def print_gate(gate: Any) -> None:
    """The gate's verdict and what happened to the model version."""
    if gate.passed:
        click.echo(f"Deployment gate passed: {gate.selected}.")
    else:
        click.echo("Deployment gate failed:", err=True)
        for reason in gate.reasons:
            click.echo(f"  - {reason}", err=True)
    champion = gate.champion
    if champion is not None:
        figures = "".join(f", {k} {v}" for k, v in champion.figures.items())
        click.echo(
            f"Champion in {gate.requested_stage}: version {champion.version}, quality "
            f"{champion.accuracy!r}{figures} ({champion.source}).",
            err=not gate.passed,
        )
    click.echo(gate.promotion[:1].upper() + gate.promotion[1:] + ".", err=not gate.passed)
