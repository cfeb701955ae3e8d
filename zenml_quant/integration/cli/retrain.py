"""``zenml-quant retrain``: retrain the demo CNN, compress it and promote what passes, now or on
a schedule."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from ..configs import RetrainConfig
from . import checks
from .options import config_option, data_options, verbose_option
from .quiet import quiet_run
from .run_config import given_flags, pipeline_config, zenml_run_config
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
@config_option("parameters: config: the RetrainConfig, e.g. pipelines/configs/retrain.yaml")
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
    # A flag given on the command line wins over the --config file; its defaults do not.
    context = click.get_current_context()

    def given(name: str, value: Any) -> Any:
        source = context.get_parameter_source(name)
        return value if config is None or source is ParameterSource.COMMANDLINE else None

    flags = {
        "epochs": given("epochs", epochs),
        "data": {
            "source": given("data_source", data_source),
            "scale": scale,
            "offset": offset,
        },
        "gate": {"stage": given("stage", stage)},
    }
    run_config, _ = pipeline_config(config, RetrainConfig, given_flags(flags))
    if config is None:
        checks.check_data_source(data_source, scale=scale, offset=offset)
    with zenml_run_config(config) as steps_config:
        with quiet_run(verbose):  # loading the pipelines loads TensorFlow, which talks
            from zenml import Model

            from ..pipelines import retrain_and_compress, schedule_retrain_and_compress

        runnable = retrain_and_compress.with_options(model=Model(name=model_name))
        if steps_config:
            runnable = runnable.with_options(config_path=steps_config)
        if cron:
            try:
                schedule_retrain_and_compress(cron, pipeline_=runnable, config=run_config)
            except Exception as exc:
                cause = our_error(exc)
                if cause is None:
                    raise
                raise click.ClickException(" ".join(str(cause).split())) from None
            click.echo(f"retrain_and_compress scheduled: {cron}")
            return
        run = run_tracked(runnable, "retrain", verbose=verbose, config=run_config)
    decision = find_output(run, "zq_gate_decision")
    print_gate(decision)
