"""``zenml-quant demo``: train a small CNN on the bundled digits, then compress it."""

from __future__ import annotations

from pathlib import Path

import click

from ..configs import CompressConfig, GateConfig
from . import checks
from .compress import run_compress
from .options import output_options
from .quiet import quiet_run

__all__ = ["demo"]


@click.command()
@click.option("--epochs", default=15, show_default=True, type=int, help="Training epochs.")
@output_options()
def demo(epochs: int, output_dir: str, json_path: str | None, verbose: bool) -> None:
    """Train a small CNN on the bundled 8x8 digits and compress it: float32, int8, the
    accuracy-controlled mixed model and quantization-aware training."""
    checks.whole("--epochs", epochs, minimum=1, maximum=10_000)
    checks.check_outputs(output_dir, json_path)
    click.echo("Training the demo CNN on scikit-learn's 8x8 digits, then compressing it ...")
    with quiet_run(verbose):
        from ...datasets import load_digits
        from ...demo import train_demo_model
        from ...models import save_model

        model = train_demo_model(load_digits(), epochs=epochs)
        model_path = save_model(model, Path(output_dir).resolve() / "demo_cnn.keras")
    run_compress(
        str(model_path),
        CompressConfig(qat=True, gate=GateConfig(raise_on_fail=False)),
        None,
        output_dir,
        json_path,
        None,
        verbose,
        written={"the trained model": str(model_path)},
    )
