"""The ``zenml-quant`` command group, and how it reports errors.

Every error ends the command with one line on stderr, ``Error: <what> ...; <fix>``: status 2 for
a bad option or input (checked before anything runs), 1 for a run that failed or a gate that
refused. No Python traceback reaches the user for an error of ours.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["main"]


class _Group(click.Group):
    """A click group whose errors are one line (click's usage block and hint are left out)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; in standalone mode, errors end it with one line and their status."""
        run = functools.partial(
            super().main, args, prog_name, complete_var, standalone_mode=False, **extra
        )
        if not standalone_mode:
            return run()
        try:
            result: Any = run()
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            if (
                isinstance(exc, click.UsageError)
                and exc.ctx is not None
                and "--help" not in message
            ):
                message += f" (see {exc.ctx.command_path} --help)"
            click.echo(f"Error: {message}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Group)
@click.version_option(package_name="zenml-quant")
def main() -> None:
    """Make a trained Keras model fit an edge device, with ZenML tracking every step.

    Sizes are in bytes (written 12,345) or KB, and a KB is 1000 bytes everywhere: in options,
    tables, charts and reports.
    """


def _register() -> None:
    from .compress import compress
    from .demo import demo
    from .retrain import retrain
    from .search import search
    from .studio import studio

    for command in (demo, compress, search, retrain, studio):
        main.add_command(command)


_register()
