"""A command's pipeline configuration: the YAML's ``parameters: config:`` with the flags over it.

A ZenML run config holds the pipeline's one typed ``config`` under ``parameters:`` and each
step's options under ``steps:``. The command reads the first itself, lays the flags given on
the command line over it (a flag wins over the file), checks and builds the config object,
and hands ZenML the rest of the file. Nothing here imports ZenML or TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click

from ...errors import InvalidOptionError
from ..configs import config_from_dict
from . import checks
from .options import Promotion, TaskFlags

__all__ = [
    "data_flags",
    "gate_flags",
    "given_flags",
    "merged",
    "pipeline_config",
    "zenml_run_config",
]

_Config = TypeVar("_Config")


def data_flags(
    source: str | None,
    scale: float | None,
    offset: float | None,
    allow_unsafe: bool,
    task_flags: TaskFlags,
) -> dict[str, Any]:
    """The ``data`` group of the data and task flags (None where a flag was not given)."""
    return {
        "source": source,
        "scale": scale,
        "offset": offset,
        "allow_unsafe": allow_unsafe or None,
        **asdict(task_flags),
    }


def gate_flags(targets: dict[str, Any] | None, promotion: Promotion) -> dict[str, Any]:
    """The ``gate`` group of the target and promotion flags. The gate never raises: the
    command reports a failed gate itself, after writing the summary that says why."""
    return {
        "targets": targets,
        "stage": promotion.stage,
        "champion_margin": promotion.champion_margin,
        "replace_unreadable_champion": promotion.replace_unreadable_champion or None,
        "raise_on_fail": False,
    }


def given_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """``flags`` without the unset ones (None), group by group (an emptied group goes too)."""
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if isinstance(value, Mapping):
            value = given_flags(value)
        if value is not None and value != {}:
            out[key] = value
    return out


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, group by group (nested mappings merge, values win)."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            value = merged(below, value)
        out[key] = value
    return out


def pipeline_config(
    path: str | None, kind: type[_Config], flags: Mapping[str, Any]
) -> tuple[_Config, dict[str, Any]]:
    """The ``kind`` config of the run, and the YAML's own ``config`` values (to tell what the
    file set).

    ``flags`` are the options given on the command line, nested like ``kind`` (``{"gate":
    {"stage": "staging"}}``); they win over the file. Every value is checked as its flag would
    be, and an unknown key is refused with the keys ``kind`` has.
    """
    from_file = checks.check_config(path, validate=checks.parameter_checks())
    values = merged(from_file, flags)
    try:
        return config_from_dict(kind, values), from_file
    except (InvalidOptionError, TypeError) as exc:
        where = "--config" if path else "options"
        raise click.UsageError(f"{where}: {' '.join(str(exc).split())}") from None


@contextlib.contextmanager
def zenml_run_config(path: str | None) -> Iterator[str | None]:
    """The run config ZenML should read: ``path`` without its ``parameters`` (the command gives
    the config object itself, and ZenML refuses a parameter set twice), or None."""
    if path is None:
        yield None
        return
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    data.pop("parameters", None)
    if not data:
        yield None
        return
    handle, copy = tempfile.mkstemp(prefix="zenml-quant-run-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w") as file:
            yaml.safe_dump(data, file)
        yield copy
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(copy)
