"""One typed configuration per pipeline: what ``compress_pipeline``, ``nas_pipeline`` and
``retrain_and_compress`` take besides the model.

Each is a frozen dataclass of groups (the data, the gate, the search, the conversion), so a
YAML run config mirrors it under ``parameters: config:`` and a typo is refused by name before
any step runs. ZenML validates and records the object with the run. Nothing here imports ZenML
or TensorFlow: the CLI checks a config before it loads either.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import InvalidOptionError
from ..precisions import DEFAULT_PRECISIONS
from ..search.settings import SearchSettings
from ..types import ConversionOptions

__all__ = [
    "CompressConfig",
    "DataConfig",
    "GateConfig",
    "MAX_SEARCH_CANDIDATES",
    "NasConfig",
    "RetrainConfig",
    "SearchConfig",
    "config_from_dict",
]

#: Searched candidates a pipeline may pass to the gate (search_1 ... search_5).
MAX_SEARCH_CANDIDATES = 5


@dataclass(frozen=True)
class DataConfig:
    """Where the labeled data comes from and what judges the model.

    ``source`` is ``"digits"``, a ``.npz``/``.csv`` file, an image folder or a URI; integer
    features become ``x * scale + offset``. ``task``/``metric`` are inferred when None (a user
    function ``"module:function"`` needs ``higher_is_better``). Validation is ``val_data``, else
    held out from the test split (``validation_from="train"`` carves it from train).
    ``allow_unsafe`` lets the model's ``Lambda`` layers load: only for files you trust.
    """

    source: str = "digits"
    scale: float = 1 / 255
    offset: float = 0.0
    task: str | None = None
    metric: str | None = None
    higher_is_better: bool | None = None
    val_data: str | None = None
    validation_from: str = "test"
    allow_unsafe: bool = False


@dataclass(frozen=True)
class GateConfig:
    """The deployment gate: ``targets`` (:class:`zenml_quant.targets.Targets` fields; without
    an accuracy target at most 1 point may be lost), and with ``stage`` and a ZenML model on
    the run, promotion when the best passing candidate is no worse than the version in that
    stage by more than ``champion_margin``."""

    targets: dict[str, Any] | None = None
    stage: str | None = None
    champion_margin: float = 0.0
    replace_unreadable_champion: bool = False
    raise_on_fail: bool = True


@dataclass(frozen=True)
class SearchConfig(SearchSettings):
    """The architecture search stage: every :class:`~zenml_quant.search.settings.SearchSettings`
    field (``trials`` 0 here: no search), and the best ``candidates`` searched models passed on
    as ``search_1``, ... Its targets are the gate's."""

    trials: int = 0
    candidates: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.candidates <= MAX_SEARCH_CANDIDATES:
            raise InvalidOptionError(
                f"search candidates must be between 1 and {MAX_SEARCH_CANDIDATES}, "
                f"got {self.candidates}."
            )

    def settings(self) -> SearchSettings:
        """The search step's settings: these, without the stage's ``candidates``."""
        return SearchSettings(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(SearchSettings)}
        )


@dataclass(frozen=True)
class CompressConfig:
    """``compress_pipeline``'s options.

    Candidates: one per ``modes`` entry; ``mixed``, one precision per layer from ``precisions``
    minimising ``precision_objective`` within ``max_quality_drop`` on validation (None: no
    mixed; ``relative_drop``: a fraction of the float quality); ``mixed_qat``; ``bn_int8``
    (``bn_reestimate``); ``qat`` (``qat_skip_layers`` stay float); and the search's. Scored on
    ``split``; ``sensitivity_mode`` (``fast``, ``exhaustive`` or None) profiles the layers
    first; every candidate is benchmarked at ``benchmark_threads`` (None: not benchmarked).
    ``conversion`` applies to every candidate alike.
    """

    modes: tuple[str, ...] = ("float32", "int8")
    split: str = "test"
    sensitivity_mode: str | None = "fast"
    max_quality_drop: float | None = 0.01
    relative_drop: bool = False
    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    precision_objective: str = "bytes"
    qat: bool = False
    qat_skip_layers: tuple[str, ...] = ()
    mixed_qat: bool = False
    bn_reestimate: bool = False
    benchmark_threads: tuple[int, ...] | None = (1,)
    data: DataConfig = field(default_factory=DataConfig)
    conversion: ConversionOptions = field(default_factory=ConversionOptions)
    gate: GateConfig = field(default_factory=GateConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass(frozen=True)
class NasConfig:
    """``nas_pipeline``'s options: the search (``trials`` default 30, best ``candidates`` 3
    passed on), scored on ``split``, benchmarked at ``benchmark_threads``, then the gate."""

    split: str = "test"
    benchmark_threads: tuple[int, ...] | None = (1,)
    data: DataConfig = field(default_factory=DataConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    search: SearchConfig = field(default_factory=lambda: SearchConfig(trials=30, candidates=3))


@dataclass(frozen=True)
class RetrainConfig:
    """``retrain_and_compress``'s options: ``epochs`` of training on ``data``, then the
    compression and gate of :class:`CompressConfig` (promotion to ``staging`` by default)."""

    epochs: int = 15
    modes: tuple[str, ...] = ("float32", "int8")
    split: str = "test"
    sensitivity_mode: str | None = "fast"
    max_quality_drop: float | None = 0.01
    qat: bool = False
    benchmark_threads: tuple[int, ...] | None = (1,)
    data: DataConfig = field(default_factory=DataConfig)
    conversion: ConversionOptions = field(default_factory=ConversionOptions)
    gate: GateConfig = field(default_factory=lambda: GateConfig(stage="staging"))


_Config = TypeVar("_Config")


def config_from_dict(kind: type[_Config], values: Mapping[str, Any] | None) -> _Config:
    """``kind`` built from a (YAML) mapping: groups from nested mappings, lists as tuples.

    Raises:
        InvalidOptionError: a key ``kind`` does not have (named with its path and the keys it
            does have), or a group given as something other than a mapping.
    """
    return _build(kind, values or {}, "")


def _build(kind: Any, values: Any, path: str) -> Any:
    if isinstance(values, kind):
        return values
    if not isinstance(values, Mapping):
        raise InvalidOptionError(
            f"{path or 'config'} must be a mapping of {kind.__name__} fields, got {values!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(kind)}
    hints = typing.get_type_hints(kind)
    unknown = sorted(set(map(str, values)) - set(fields))
    if unknown:
        raise InvalidOptionError(
            f"unknown key(s) {', '.join(path + k for k in unknown)}: "
            f"use {', '.join(path + k for k in fields)}."
        )
    built = {}
    for name, value in values.items():
        group = _group(hints[name])
        if group is not None and value is None:
            continue  # an empty group in YAML (every line commented out): its defaults
        if group is not None:
            value = _build(group, value, f"{path}{name}.")
        elif isinstance(value, list):
            value = tuple(value)
        built[name] = value
    return kind(**built)


def _group(hint: Any) -> type | None:
    """The dataclass a field holds (through ``X | None``), or None."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return next((o for o in options if dataclasses.is_dataclass(o)), None)
