"""Checks of the command line, run before any ZenML run starts and before TensorFlow loads.

Each check raises :class:`click.UsageError` (exit status 2) with one line that names the option,
what is wrong with it and how to fix it. Nothing here writes a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import click

from ..._validate import check_integer, check_number, check_writable_dir, check_writable_file
from ...errors import InvalidDatasetError, InvalidModelError, InvalidOptionError
from ...metrics import METRICS, TASK_METRICS, UNSETTLED, Metric, get_metric
from ...model_file import input_layer_names, layer_names, read_model_config
from ...precisions import OBJECTIVES, parse_precisions
from ...targets import Targets
from ...types import MODES
from ..configs import MAX_SEARCH_CANDIDATES
from .options import Promotion, TargetFlags

__all__ = [
    "MODEL_SUFFIXES",
    "check_config",
    "check_cron",
    "check_data_source",
    "one_model_source",
    "check_layer_names",
    "check_metric",
    "check_modes",
    "check_model_path",
    "check_outputs",
    "check_precisions",
    "check_promotion",
    "check_threads",
    "number",
    "parameter_checks",
    "targets_from_flags",
    "usage_error",
    "whole",
]

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
_DATA_SUFFIXES = (".npz", ".csv")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_METRIC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_MAX_THREADS = 256

#: The parameters of the pipelines a ``parameters:`` block of a YAML config may set (a test
#: keeps these equal to the pipelines' signatures, so the check works without importing them).
#: Top-level keys of a ZenML run configuration that our commands accept.
_CONFIG_KEYS = {
    "parameters",
    "steps",
    "settings",
    "enable_cache",
    "enable_artifact_metadata",
    "enable_artifact_visualization",
    "enable_step_logs",
    "extra",
    "model",
    "run_name",
    "schedule",
    "tags",
}


def usage_error(option: str, problem: str, fix: str) -> click.UsageError:
    """The one-line error of a bad option: ``--x: what is wrong; what to do``."""
    return click.UsageError(f"{option}: {problem}; {fix}")


def _reword(option: str, exc: InvalidOptionError) -> click.UsageError:
    return click.UsageError(f"{option}: {exc}")


def number(option: str, value: float | None, **bounds: Any) -> float | None:
    """``value`` checked as a finite number within ``bounds`` (see :func:`check_number`)."""
    if value is None:
        return None
    try:
        return check_number(option, value, **bounds)
    except InvalidOptionError as exc:
        raise click.UsageError(str(exc)) from None


def whole(option: str, value: int | None, *, minimum: int, maximum: int | None = None) -> None:
    """``value`` checked as a whole number in ``[minimum, maximum]``."""
    if value is None:
        return
    try:
        check_integer(option, value, minimum=minimum)
    except InvalidOptionError as exc:
        raise click.UsageError(str(exc)) from None
    if maximum is not None and value > maximum:
        raise usage_error(option, f"{value} is more than {maximum}", f"use at most {maximum}")


def check_model_path(path: str, option: str = "--model") -> dict[str, Any] | None:
    """The model file or SavedModel folder exists, is readable and is a Keras model.

    Returns the file's config (read without TensorFlow, running no code from it) for checks
    that name layers; None for an artifact-store URI or a SavedModel folder (whose config needs
    TensorFlow to read: the loading step checks it).
    """
    if _URI.match(path):
        return None  # an artifact-store URI: the loading step reads it where it runs
    target = Path(path).expanduser()
    if not target.exists():
        raise usage_error(
            option,
            f"no model at {path!r}",
            "give the path of a .keras or .h5 file or a SavedModel folder",
        )
    if target.is_dir():
        if not (target / "saved_model.pb").is_file():
            raise usage_error(
                option,
                f"the folder {path!r} holds no saved_model.pb",
                "give a SavedModel folder or a .keras/.h5 file",
            )
        return None
    if target.suffix.lower() not in MODEL_SUFFIXES:
        raise usage_error(
            option,
            f"{path!r} is not a .keras, .h5 or SavedModel model",
            "save the model with model.save('model.keras') and pass that file",
        )
    try:
        return read_model_config(target)[1]
    except InvalidModelError as exc:
        raise usage_error(option, str(exc), "save the model again with model.save") from None


def check_layer_names(option: str, names: Iterable[str], config: dict[str, Any] | None) -> None:
    """Every name in ``names`` is a layer of the model whose ``config`` was read."""
    if config is None:
        return  # not readable before the run: the step checks the names
    known = layer_names(config)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise usage_error(
            option,
            f"no layer named {', '.join(map(repr, unknown))} in the model",
            f"use one of {', '.join(known)}",
        )


def _check_source(option: str, source: str) -> None:
    if source != "digits" and not _URI.match(source):
        target = Path(source).expanduser()
        if not target.exists():
            raise usage_error(
                option,
                f"no data at {source!r}",
                'give an .npz, a .csv, an image folder, or "digits"',
            )
        if target.is_file() and target.suffix.lower() not in _DATA_SUFFIXES:
            raise usage_error(
                option,
                f"{source!r} is not an .npz or .csv file",
                'give an .npz (Keras keys), a .csv with a label column, an image folder, or "digits"',
            )


def one_model_source(
    model_path: str | None, model_version: str | None, artifact: str | None
) -> None:
    """Exactly one of ``--model``, ``--model-version`` and ``--artifact``."""
    given = [v for v in (model_path, model_version, artifact) if v]
    if len(given) != 1:
        raise click.UsageError(
            "Give the model with exactly one of --model, --model-version or --artifact."
        )


def check_data_source(
    source: str,
    *,
    scale: float | None,
    offset: float | None,
    val_data: str | None = None,
    validation_from: str | None = None,
    task: str | None = None,
    model_config: dict[str, Any] | None = None,
) -> None:
    """The data source (and ``--val-data``) exist and load into usable splits (finite values,
    validation and test apart), with one array per input of the model (``model_config``, read
    from its file) when it has several.

    Loading takes a moment (numpy, pandas, no TensorFlow), and saves a whole pipeline run that
    would fail at its first step.
    """
    _check_source("--data", source)
    if val_data is not None:
        _check_source("--val-data", val_data)
    if _URI.match(source) or (val_data is not None and _URI.match(val_data)):
        return
    from ... import datasets
    from ...inputs import input_mismatch, input_names

    try:
        data = datasets.load_dataset(
            source,
            scale=1 / 255 if scale is None else scale,
            offset=0.0 if offset is None else offset,
            val_data=val_data,
            validation_from="train" if validation_from == "train" else "test",
            label_kind="values" if task == "regression" else "auto",
        )
        if data.has_classes and task not in ("regression", "reconstruction"):
            try:
                datasets.check_classes(data)
            except InvalidDatasetError as exc:
                if task is None:  # an autoencoder's normal-only data is fine
                    raise InvalidDatasetError(
                        f"{exc} (For an autoencoder trained on normal data only, pass --task "
                        "reconstruction.)"
                    ) from None
                raise
        if model_config is not None:
            problem = input_mismatch(input_names(data.x_train), input_layer_names(model_config))
            if problem is not None:
                raise InvalidDatasetError(problem)
    except (InvalidDatasetError, InvalidOptionError) as exc:
        raise click.UsageError(f"--data: {' '.join(str(exc).split())}") from None


def check_outputs(output_dir: str | None, json_path: str | None) -> None:
    """The output folder can be created and written, and so can the ``--json`` file."""
    try:
        if output_dir is not None:
            check_writable_dir("--output-dir", output_dir)
        if json_path is not None:
            check_writable_file("--json", json_path)
    except InvalidOptionError as exc:
        raise click.UsageError(str(exc)) from None


def check_metric(task: str | None, metric: str | None, higher_is_better: bool | None) -> None:
    """``--metric`` is a known metric (of ``--task``, when given) or an importable function
    with its direction; ``--higher-is-better``/``--lower-is-better`` only go with a function."""
    if metric is None:
        if higher_is_better is not None:
            raise usage_error(
                "--higher-is-better/--lower-is-better",
                "they give the direction of a --metric function, and none was given",
                'add --metric "package.module:function" or drop the flag',
            )
        return
    if ":" in metric and not _METRIC.match(metric):
        raise usage_error(
            "--metric",
            f"{metric!r} is not a function reference",
            'write it as "package.module:function"',
        )
    try:
        chosen = get_metric(metric, higher_is_better=higher_is_better)
    except InvalidOptionError as exc:
        raise click.UsageError(f"--metric: {exc}") from None
    if task is not None and chosen.spec is None and chosen.name not in TASK_METRICS[task]:
        raise usage_error(
            "--metric",
            f"{metric} does not score a {task} model",
            f"use one of {', '.join(TASK_METRICS[task])}",
        )


def check_cron(cron: str | None) -> None:
    if cron is None:
        return
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise usage_error(
            "--schedule",
            f"{cron!r} is not a cron expression",
            'give five fields, minute hour day month weekday, e.g. "0 3 * * 1"',
        )


def cli_metric(task: str | None, metric: str | None, higher_is_better: bool | None) -> Metric:
    """The metric the flags name (``--metric``, else ``--task``'s first), or
    :data:`~zenml_quant.metrics.UNSETTLED` when the run will infer it."""
    if metric is not None:
        return get_metric(metric, higher_is_better=higher_is_better)
    if task is not None:
        return get_metric(TASK_METRICS[task][0])
    return UNSETTLED


def targets_from_flags(
    flags: TargetFlags, *, threads: int = 1, metric: Metric | None = None
) -> Targets:
    """The :class:`Targets` of the target flags (KB are 1000 bytes), checked as they are made.

    ``--min-accuracy``/``--max-accuracy-drop`` are the classification spellings of
    ``--min-quality``/``--max-quality-drop``: checked as accuracies (in [0, 1]). The quality
    spellings are checked in ``metric``'s units when it is known, else for sign and finiteness
    only (the run checks them again once it has read the model and settled the metric).
    """
    max_quality_drop, max_accuracy_drop = flags.max_quality_drop, flags.max_accuracy_drop
    min_quality, min_accuracy = flags.min_quality, flags.min_accuracy
    metric = metric or UNSETTLED
    for quality, accuracy in (
        (("--max-quality-drop", max_quality_drop), ("--max-accuracy-drop", max_accuracy_drop)),
        (("--min-quality", min_quality), ("--min-accuracy", min_accuracy)),
    ):
        if quality[1] is not None and accuracy[1] is not None:
            raise usage_error(
                accuracy[0], f"it is another spelling of {quality[0]}", "give only one of them"
            )
    if min_accuracy is not None or max_accuracy_drop is not None:
        if metric is UNSETTLED:
            metric = METRICS["top1"]
        elif not metric.fraction:
            option = "--min-accuracy" if min_accuracy is not None else "--max-accuracy-drop"
            raise usage_error(
                option,
                f"the metric is {metric.name}, not an accuracy",
                "use --min-quality / --max-quality-drop in its units",
            )
    sizes = {
        "max_size_bytes": ("--max-size-kb", flags.max_size_kb),
        "max_peak_memory_bytes": ("--max-peak-memory-kb", flags.max_peak_memory_kb),
    }
    values: dict[str, Any] = {}
    for field, (option, value) in sizes.items():
        checked = number(option, value, minimum=0, min_inclusive=False)
        if checked is not None:
            values[field] = checked * 1000
    drop = ("--max-accuracy-drop", max_accuracy_drop)
    if max_quality_drop is not None:
        drop = ("--max-quality-drop", max_quality_drop)
    floor = ("--min-accuracy", min_accuracy)
    if min_quality is not None:
        floor = ("--min-quality", min_quality)
    others = {
        "max_latency_ms": ("--max-latency-ms", flags.max_latency_ms),
        "max_quality_drop": drop,
        "min_quality": floor,
    }
    for field, (_option, value) in others.items():
        if value is not None:
            values[field] = value
    try:
        return Targets(**values, latency_threads=threads, metric=metric)
    except InvalidOptionError as exc:
        option = next((o for f, (o, _) in others.items() if f in str(exc)), "targets")
        raise _reword(option, exc) from None


def check_promotion(promotion: Promotion) -> None:
    """``--champion-margin`` and ``--replace-unreadable-champion`` need a ``--stage``."""
    stage, champion_margin = promotion.stage, promotion.champion_margin
    replace_unreadable = promotion.replace_unreadable_champion
    if stage is None and champion_margin is not None:
        raise usage_error(
            "--champion-margin",
            "it compares with the model version in a stage, but no --stage was given",
            "add --stage staging|production",
        )
    if stage is None and replace_unreadable:
        raise usage_error(
            "--replace-unreadable-champion",
            "there is no champion to replace without --stage",
            "add --stage staging|production",
        )
    number("--champion-margin", champion_margin, minimum=0, maximum=1, max_inclusive=False)


def _load_yaml(path: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise usage_error(
            "--config", f"{path!r} is not valid YAML{where} ({problem})", "fix the file"
        ) from None
    except OSError as exc:
        raise usage_error(
            "--config", f"{path!r} cannot be read ({exc.strerror})", "check the path"
        ) from None


def check_config(path: str | None, *, validate: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The YAML run config's ``parameters: config:`` mapping (checked), or {} without one.

    Refused: a file that is not a YAML mapping; unknown top-level keys; anything under
    ``parameters`` but ``config``; ``steps`` that are not mappings of ``parameters`` mappings;
    values that fail the same checks as their flags (``validate`` maps a dotted key such as
    ``gate.stage`` to a checking function). Unknown keys inside ``config`` are refused when the
    config object is built (:func:`zenml_quant.integration.configs.config_from_dict`).
    """
    if path is None:
        return {}
    data = _load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise usage_error(
            "--config", f"{path!r} is not a YAML mapping", "start it with 'parameters:' or 'steps:'"
        )
    unknown = sorted(set(map(str, data)) - _CONFIG_KEYS)
    if unknown:
        raise usage_error(
            "--config",
            f"unknown key(s) {', '.join(unknown)} in {path!r}",
            f"use {', '.join(sorted(_CONFIG_KEYS))}",
        )
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise usage_error("--config", "'parameters' is not a mapping", "write 'config:' under it")
    strange = sorted(set(map(str, parameters)) - {"config"})
    if strange:
        raise usage_error(
            "--config",
            f"unknown parameter(s) {', '.join(strange)}",
            "put the pipeline's options under 'parameters: config:' "
            "(see pipelines/configs/compress.yaml)",
        )
    config = parameters.get("config") or {}
    if not isinstance(config, dict):
        raise usage_error(
            "--config",
            "'parameters: config:' is not a mapping",
            "write 'name: value' lines under it",
        )
    steps = data.get("steps") or {}
    if not isinstance(steps, dict) or any(
        not isinstance(v, dict) or not isinstance(v.get("parameters", {}) or {}, dict)
        for v in steps.values()
    ):
        raise usage_error(
            "--config",
            "'steps' must map step names to mappings with a 'parameters' mapping",
            "see pipelines/configs/compress.yaml",
        )
    # ZenML ignores options for a step the pipeline does not have: a config written before
    # the steps took the plugin's prefix would silently configure nothing.
    unprefixed = sorted(str(name) for name in steps if not str(name).startswith("zq_"))
    if unprefixed:
        raise usage_error(
            "--config",
            f"no step is called {', '.join(unprefixed)}",
            f"the plugin's step ids start with zq_ (zq_{unprefixed[0]})",
        )
    for name, value in _dotted(config):
        check = (validate or {}).get(name)
        if check is None:
            continue
        try:
            check(value)
        except click.UsageError as exc:
            raise click.UsageError(f"--config {name}: {exc.message}") from None
        except (InvalidOptionError, TypeError, ValueError) as exc:
            raise click.UsageError(f"--config {name}: {exc}") from None
    _check_steps(steps)
    return config


def _check_steps(steps: Mapping[str, Any]) -> None:
    """Every step id of the file is one the pipelines use and takes the parameters given: ZenML
    would ignore an unknown id, and find an unknown parameter only once the run has started."""
    from ..steps.ids import step_for_id, unknown_parameters

    for step_id, options in steps.items():
        if step_for_id(str(step_id)) is None:
            raise usage_error(
                "--config",
                f"steps: {step_id!r} is not a step of the plugin's pipelines",
                "use an id from the run's step list, e.g. zq_quantization_aware_training or "
                "zq_convert_int8",
            )
        given = (options or {}).get("parameters") or {}
        unknown, known = unknown_parameters(str(step_id), given)
        if unknown:
            raise usage_error(
                "--config",
                f"steps: {step_id} has no parameter(s) {', '.join(unknown)}",
                f"its parameters are {', '.join(known)}",
            )
        for name, value in given.items():
            _check_step_option(f"steps: {step_id}: {name}", name, value)


def _check_step_option(where: str, name: str, value: Any) -> None:
    """A step's option object given as a mapping is checked as the step would build it."""
    from ...search.settings import SearchSettings
    from ...types import QATOptions
    from ..configs import config_from_dict

    kinds = {"training": QATOptions, "settings": SearchSettings}
    try:
        if name == "conversion":
            parameter_checks()["conversion"](value)
        elif name in kinds and value is not None:
            config_from_dict(kinds[name], value)
    except click.UsageError as exc:
        raise click.UsageError(f"--config {where}: {exc.message}") from None
    except (InvalidOptionError, TypeError, ValueError) as exc:
        raise click.UsageError(f"--config {where}: {exc}") from None


def _dotted(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every entry, groups included and walked into."""
    for key, value in values.items():
        yield prefix + str(key), value
        if isinstance(value, Mapping) and str(key) in _GROUPS:
            yield from _dotted(value, f"{prefix}{key}.")


#: The config groups that hold further keys (``targets`` and ``conversion`` are checked whole).
_GROUPS = {"data", "gate", "search"}


def check_modes(modes: tuple[str, ...]) -> None:
    repeated = sorted({m for m in modes if modes.count(m) > 1})
    if repeated:
        raise usage_error("--mode", f"{', '.join(repeated)} given twice", "give each mode once")


def check_threads(threads: tuple[int, ...] | list[int]) -> None:
    for t in threads:
        whole("--threads", t, minimum=1, maximum=_MAX_THREADS)
    if len(set(threads)) != len(threads):
        raise usage_error("--threads", "a thread count is given twice", "give each count once")


def check_precisions(value: str) -> tuple[str, ...]:
    """``--precisions`` as checked precision names, cheapest first."""
    try:
        return parse_precisions(value)
    except InvalidOptionError as exc:
        raise _reword("--precisions", exc) from None


def parameter_checks() -> dict[str, Any]:
    """How a YAML ``parameters`` value is checked: the same rules as its flag."""

    def modes(value: Any) -> None:
        if not isinstance(value, list) or not value or any(m not in MODES for m in value):
            raise click.UsageError(f"{value!r}: give a list of modes from {', '.join(MODES)}")
        check_modes(tuple(value))

    def threads(value: Any) -> None:
        if value is not None:
            if not isinstance(value, list) or not value:
                raise click.UsageError(f"{value!r}: give a list of thread counts, e.g. [1, 2]")
            check_threads(value)

    def drop(value: Any) -> None:
        if value is not None:
            # In the metric's units, which only the run knows: it checks the upper bound.
            number("max_quality_drop", value, minimum=0)

    def targets(value: Any) -> None:
        if value is not None and not isinstance(value, dict):
            raise click.UsageError(
                f"{value!r}: give a mapping of targets, e.g. max_size_bytes: 50000"
            )
        Targets.from_dict(value, metric=UNSETTLED)

    def sensitivity(value: Any) -> None:
        if value not in ("fast", "exhaustive", None):
            raise click.UsageError(f"{value!r}: use fast, exhaustive or null")

    def precisions(value: Any) -> None:
        if not isinstance(value, list) or not value:
            raise click.UsageError(
                f"{value!r}: give a list of precisions, e.g. [int4, int8, float]"
            )
        check_precisions(",".join(map(str, value)))

    def objective(value: Any) -> None:
        if value not in OBJECTIVES:
            raise click.UsageError(f"{value!r}: use one of {', '.join(OBJECTIVES)}")

    def stage(value: Any) -> None:
        if value not in ("staging", "production", None):
            raise click.UsageError(f"{value!r}: use staging, production or null")

    def margin(value: Any) -> None:
        number("champion_margin", value, minimum=0, maximum=1, max_inclusive=False)

    def finite(value: Any) -> None:
        number("value", value)

    def conversion(value: Any) -> None:
        fields = {
            "calibration_samples": int,
            "quantized_io": bool,
            "seed": int,
            "compact_names": bool,
        }
        if value is None:
            return
        if not isinstance(value, dict):
            raise click.UsageError(f"{value!r}: give a mapping, e.g. calibration_samples: 500")
        unknown = sorted(set(map(str, value)) - set(fields))
        if unknown:
            raise click.UsageError(f"unknown key(s) {', '.join(unknown)}: use {', '.join(fields)}")
        for key, kind in fields.items():
            if key in value and type(value[key]) is not kind:
                raise click.UsageError(f"{key}: {value[key]!r} is not a {kind.__name__}")
        whole("calibration_samples", value.get("calibration_samples", 1), minimum=1)
        whole("seed", value.get("seed", 0), minimum=0)

    def count(minimum: int, maximum: int | None = None) -> Any:
        return lambda value: whole("value", value, minimum=minimum, maximum=maximum)

    return {
        "search.trials": count(0),
        "search.candidates": count(1, MAX_SEARCH_CANDIDATES),
        "epochs": count(1, 10_000),
        "modes": modes,
        "benchmark_threads": threads,
        "max_quality_drop": drop,
        "gate.targets": targets,
        "sensitivity_mode": sensitivity,
        "gate.stage": stage,
        "precisions": precisions,
        "precision_objective": objective,
        "gate.champion_margin": margin,
        "data.scale": finite,
        "data.offset": finite,
        "conversion": conversion,
    }
