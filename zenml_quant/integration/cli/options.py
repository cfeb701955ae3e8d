"""Options several commands share, declared once."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

__all__ = [
    "Promotion",
    "TargetFlags",
    "TaskFlags",
    "config_option",
    "data_options",
    "model_options",
    "output_options",
    "promotion_options",
    "target_options",
    "source_options",
    "task_options",
    "verbose_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _stack(*decorators: Decorator) -> Decorator:
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


@dataclass(frozen=True)
class TaskFlags:
    """``--task``, ``--metric``, its direction, and where validation comes from."""

    task: str | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    val_data: str | None = None
    validation_from: str | None = None


@dataclass(frozen=True)
class TargetFlags:
    """The target flags as given (sizes in KB of 1000 B): ``checks.targets_from_flags`` makes
    them one :class:`~zenml_quant.targets.Targets`."""

    max_size_kb: float | None = None
    max_peak_memory_kb: float | None = None
    max_latency_ms: float | None = None
    max_quality_drop: float | None = None
    max_accuracy_drop: float | None = None
    min_quality: float | None = None
    min_accuracy: float | None = None


@dataclass(frozen=True)
class Promotion:
    """Where a passing candidate's model version goes, and against what."""

    stage: str | None = None
    model_name: str | None = None
    champion_margin: float | None = None
    replace_unreadable_champion: bool = False


def _grouped(name: str, group: type, *decorators: Decorator) -> Decorator:
    """``decorators``' options handed to the command as one ``group`` object called ``name``,
    so a command's signature names the group, not each of its options again."""
    fields = [field.name for field in dataclasses.fields(group)]

    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def collect(*args: Any, **kwargs: Any) -> Any:
            kwargs[name] = group(**{field: kwargs.pop(field) for field in fields})
            return function(*args, **kwargs)

        return _stack(*decorators)(collect)

    return apply


def model_options(required: bool = True) -> Decorator:
    """``--model`` and ``--allow-unsafe``."""
    return _stack(
        click.option(
            "--model",
            "model_path",
            required=required,
            help=".keras, .h5 or SavedModel folder.",
        ),
        click.option(
            "--allow-unsafe",
            is_flag=True,
            help="Load Lambda layers of this model (runs code from the file).",
        ),
    )


def config_option(what: str) -> Decorator:
    """``--config``: a ZenML YAML run config holding ``what``."""
    return click.option(
        "--config",
        default=None,
        help=f"ZenML YAML run config ({what}); a flag given on the command line wins over it.",
    )


def source_options() -> Decorator:
    """``--model-version`` and ``--artifact``: a model already in ZenML, instead of ``--model``."""
    return _stack(
        click.option(
            "--model-version",
            default=None,
            help="A ZenML model version, NAME or NAME:VERSION (number, name or stage): its Keras "
            "model, instead of --model.",
        ),
        click.option(
            "--artifact",
            default=None,
            help="A ZenML artifact holding a Keras model (NAME, NAME:VERSION or its id), "
            "instead of --model.",
        ),
    )


def data_options(required: bool = True, default: str | None = None) -> Decorator:
    """``--data``, ``--scale`` and ``--offset``."""
    # click 8.5 treats an explicit default=None as a value: pass a default only when there is one
    extra: dict[str, Any] = {"default": default, "show_default": True} if default else {}
    return _stack(
        click.option(
            "--data",
            "data_source",
            required=required,
            help='.npz (Keras keys), .csv (label column), image folder, or "digits".',
            **extra,
        ),
        click.option(
            "--scale",
            type=float,
            default=None,
            help="Integer inputs become x * scale + offset [1/255].",
        ),
        click.option("--offset", type=float, default=None, help="See --scale [0]."),
    )


def task_options() -> Decorator:
    """``--task``, ``--metric`` and its direction, and where validation comes from: the
    command's ``task_flags`` (:class:`TaskFlags`)."""
    return _grouped(
        "task_flags",
        TaskFlags,
        click.option(
            "--task",
            type=click.Choice(["classification", "binary", "regression", "reconstruction"]),
            default=None,
            help="What the model does [inferred from its output and the labels].",
        ),
        click.option(
            "--metric",
            default=None,
            help="What judges it: top1, top5 (classification); accuracy, auc (binary); mae, "
            "rmse, mse, r2 (regression); reconstruction_auc, reconstruction_error; or "
            '"package.module:function" taking (labels, outputs) [the task\'s first].',
        ),
        click.option(
            "--higher-is-better/--lower-is-better",
            "higher_is_better",
            default=None,
            help="Direction of a --metric package.module:function.",
        ),
        click.option(
            "--val-data",
            default=None,
            help=".npz with x_val/y_val (or x/y) to decide on [x_val in --data, else half of "
            "the test split].",
        ),
        click.option(
            "--validation-from",
            type=click.Choice(["test", "train"]),
            default=None,
            help="Without validation data, hold it out of this split [test: the model never "
            "saw it].",
        ),
    )


def target_options(verb: str = "Gate") -> Decorator:
    """The quality and resource targets: the command's ``target_flags`` (:class:`TargetFlags`)."""
    return _grouped(
        "target_flags",
        TargetFlags,
        click.option(
            "--max-size-kb",
            type=float,
            default=None,
            help=f"{verb}: largest .tflite, in KB.",
        ),
        click.option(
            "--max-peak-memory-kb",
            type=float,
            default=None,
            help=f"{verb}: largest activation arena, in KB.",
        ),
        click.option(
            "--max-latency-ms",
            type=float,
            default=None,
            help=f"{verb}: slowest p50 latency at the first --threads count.",
        ),
        click.option(
            "--max-quality-drop",
            type=float,
            default=None,
            help=f"{verb}: how much worse than the original, in the metric's units [1 point of "
            "an accuracy or AUC, 1 % of an error, when no quality target is set].",
        ),
        click.option(
            "--max-accuracy-drop",
            type=float,
            default=None,
            help=f"{verb}: accuracy lost against the original, in [0, 1): 0.01 = 1 point.",
        ),
        click.option(
            "--min-quality",
            type=float,
            default=None,
            help=f"{verb}: worst acceptable metric value (a minimum accuracy or AUC, a maximum "
            "error), e.g. 0.85 AUC or 0.5 MAE.",
        ),
        click.option(
            "--min-accuracy",
            type=float,
            default=None,
            help=f"{verb}: lowest accuracy, e.g. 0.98.",
        ),
    )


def promotion_options() -> Decorator:
    """``--stage``, ``--model-name`` and the champion/challenger options: the command's
    ``promotion`` (:class:`Promotion`)."""
    return _grouped(
        "promotion",
        Promotion,
        click.option(
            "--stage",
            type=click.Choice(["staging", "production"]),
            default=None,
            help="Promote the best passing candidate's ZenML model version to this stage, if it "
            "is no worse than the version already there.",
        ),
        click.option(
            "--model-name",
            default=None,
            help="ZenML model whose version the run becomes [the model file's name].",
        ),
        click.option(
            "--champion-margin",
            type=float,
            default=None,
            help="Accuracy the challenger may lose against the version in --stage [0].",
        ),
        click.option(
            "--replace-unreadable-champion",
            is_flag=True,
            help="Promote even if the version in --stage has no readable accuracy.",
        ),
    )


def output_options() -> Decorator:
    """``--output-dir``, ``--json`` and ``-v``/``--verbose``."""
    return _stack(
        click.option("--output-dir", default="zenml-quant-output", show_default=True),
        click.option(
            "--json", "json_path", default=None, help="Also write the summary as JSON here."
        ),
        verbose_option(),
    )


def verbose_option() -> Decorator:
    """``-v``/``--verbose``: the libraries' log lines on the console (see ``quiet.py``)."""
    return click.option(
        "-v",
        "--verbose",
        is_flag=True,
        help="Show every log line of ZenML, TensorFlow and the steps while it runs "
        "(they are always recorded with the run).",
    )
