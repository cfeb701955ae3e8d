"""``zenml-quant retrain``: retrain the demo CNN, compress it and promote what passes, now or on
a schedule."""

from __future__ import annotations

from typing import Any

import click

from . import checks
from .options import config_option, data_options, verbose_option
from .quiet import quiet_run
from .running import find_output, our_error, print_gate, run_tracked

__all__ = ["retrain"]


@click.command()
@data_options(required=False, default="digits")
@click.option("--epochs", default=15, show_default=True, type=int)
@click.option("--model-name", default="zenml-quant-demo", show_default=True)
@click.option(
    "--stage",
    type=click.Choice(["staging", "production"]),
    default="staging",
    show_default=True,
)
@config_option("e.g. pipelines/configs/retrain.yaml; its parameters replace the flags")
@verbose_option()
@click.option(
    "--schedule",
    "cron",
    default=None,
    help='Register a cron schedule (e.g. "0 3 * * 1") instead of running now; needs an '
    "orchestrator that schedules (not the local one).",
)
def retrain(
    data_source: str,
    scale: float | None,
    offset: float | None,
    epochs: int,
    model_name: str,
    stage: str,
    config: str | None,
    verbose: bool,
    cron: str | None,
) -> None:
    """Retrain the demo CNN, compress, benchmark and promote what passes the gate."""
    checks.whole("--epochs", epochs, minimum=1, maximum=10_000)
    checks.number("--scale", scale)
    checks.number("--offset", offset)
    checks.check_cron(cron)
    if not model_name.strip():
        raise checks.usage_error("--model-name", "it is empty", "give the ZenML model a name")
    checks.check_config(
        config, allowed=checks.RETRAIN_PARAMETERS, validate=checks.parameter_checks()
    )
    if config is None:
        checks.check_data_source(data_source, scale=scale, offset=offset)
    with quiet_run(verbose):  # loading the pipelines loads TensorFlow, which talks
        from zenml import Model

        from ..pipelines import retrain_and_compress, schedule_retrain_and_compress

    runnable = retrain_and_compress.with_options(model=Model(name=model_name))
    params: dict[str, Any] = {"data_source": data_source, "epochs": epochs, "stage": stage}
    params.update({k: v for k, v in {"scale": scale, "offset": offset}.items() if v is not None})
    if config:  # ZenML refuses a parameter set twice: the config's parameters win
        runnable = runnable.with_options(config_path=config)
        params = {}
    if cron:
        try:
            schedule_retrain_and_compress(cron, pipeline_=runnable, **params)
        except Exception as exc:
            cause = our_error(exc)
            if cause is None:
                raise
            raise click.ClickException(" ".join(str(cause).split())) from None
        click.echo(f"retrain_and_compress scheduled: {cron}")
        return
    run = run_tracked(runnable, "retrain", verbose=verbose, **params)
    decision = find_output(run, "zq_gate_decision")
    print_gate(decision)
