"""``zenml-quant studio``: a local page to edit a model layer by layer."""

from __future__ import annotations

from typing import Any

import click

from ...errors import ZenmlQuantError
from . import checks
from .options import (
    TargetFlags,
    data_options,
    model_options,
    source_options,
    target_options,
)

__all__ = ["studio"]


@click.command()
@model_options(required=False)
@source_options()
@data_options(required=False)
@click.option(
    "--suggestions",
    default=None,
    help="A search's JSON summary (zenml-quant search --json), an edit-plan YAML, or a folder "
    "of them: listed on the page to load and change.",
)
@target_options("Target")
@click.option("--threads", type=int, default=1, show_default=True, help="Latency threads.")
@click.option("--port", type=int, default=0, help="Port on 127.0.0.1 [a free one].")
def studio(port: int, **options: Any) -> None:
    """Open a local web page to edit a model layer by layer and see what each edit costs.

    The page lists the layers with the edits each can take; "Evaluate" applies the plan,
    converts, evaluates and benchmarks it beside the original model; "Export" writes the plan
    as YAML for the apply_edits step.
    """
    checks.whole("--port", port, minimum=0, maximum=65535)
    try:
        prepared = _prepare_studio(**options)
        from ...studio import serve

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
    target_flags: TargetFlags | None = None,
    threads: int = 1,
) -> Any:
    """The Studio for the ``studio`` command's options (model, data, suggestions, targets)."""
    checks.one_model_source(model_path, model_version, artifact)
    checks.whole("--threads", threads, minimum=1, maximum=256)
    checks.number("--scale", scale)
    checks.number("--offset", offset)
    targets = checks.targets_from_flags(target_flags or TargetFlags(), threads=threads)
    if model_path:
        checks.check_model_path(model_path)
    if data_source is not None:
        checks.check_data_source(data_source, scale=scale, offset=offset)
    from ... import conform as _conform
    from ... import datasets as _datasets
    from ... import models as _models
    from ...errors import InvalidOptionError
    from ...studio import Studio
    from ...studio.suggestions import load_suggestions, suggestions_from_result
    from ...tasks import dataset_metric

    dataset = search_result = run_summary = None
    if model_path:
        model = _models.load_model(model_path, allow_unsafe=allow_unsafe)
    else:
        from ..studio_sources import from_artifact, from_model_version

        found = (
            from_model_version(model_version, allow_unsafe=allow_unsafe)
            if model_version
            else from_artifact(artifact or "", allow_unsafe=allow_unsafe)
        )
        model, dataset, search_result = found.model, found.dataset, found.search_result
        run_summary = found.summary
        click.echo(f"Loaded {found.description}")
    if data_source is not None:
        dataset = _datasets.load_dataset(
            data_source,
            scale=1 / 255 if scale is None else scale,
            offset=0.0 if offset is None else offset,
        )
    if dataset is None:
        raise click.UsageError("Give the labeled data with --data (the model version links none).")
    try:
        dataset = _conform.fit_to_model(model, dataset)
        targets = targets.with_metric(dataset_metric(dataset))
    except InvalidOptionError as exc:
        raise click.UsageError(" ".join(str(exc).split())) from None
    offered = load_suggestions(suggestions) if suggestions else []
    if search_result is not None and not suggestions:
        offered = suggestions_from_result(search_result)
    return Studio(
        model,
        dataset,
        targets=targets,
        suggestions=offered,
        threads=threads,
        run_summary=run_summary,
    )
