"""What a user sets for a whole search, in one object, and the call that runs it.

:class:`SearchOptions` is the loop's own, complete description (energy tables, benchmark
options, a benchmarker object); :class:`SearchSettings` holds only what a person chooses:
budget, proposer, fine-tuning, reward, where the search may edit, and where trials run. It is
made of plain values, so a pipeline config or a step parameter holds it and YAML writes it, and
it imports no TensorFlow, so the command line checks it before anything loads.
:func:`run_search` turns it into :class:`SearchOptions`, opens the executor and runs the loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidOptionError
from ..precisions import parse_precisions
from .executors.base import EXECUTORS
from .types import PROPOSERS, REWARD_MODES

__all__ = ["SearchSettings", "run_search"]


@dataclass(frozen=True)
class SearchSettings:
    """A search as a user sets it.

    Budget: ``trials`` candidates (``time_budget_min`` stops it earlier; ``patience`` trials
    without a better candidate stop it once the targets hold). ``proposer``: ``controller``
    (the RNN policy), ``local`` (one or two changes from the best so far) or ``random``;
    ``halving`` > 1 gives every candidate a short fine-tune and the best of each ``halving`` a
    full one. Fine-tuning: ``fine_tune_epochs`` (``fine_tune_steps`` per epoch, None: the whole
    training split) at ``learning_rate``, distilled from the original when ``distill`` (None:
    wherever it applies). ``reward_mode``: ``soft`` (MnasNet), ``hard`` or ``forgiving``.
    Where it edits: only ``layers`` (None: all), never ``frozen_layers``. Precision per layer
    comes from the allocator over ``precisions`` (None: int4, int8 and float; ``["int8"]``
    turns it off, and then ``search_precision`` lets the search keep layers in float32).
    Trials run ``batch_size`` at a time on ``executor`` (``inprocess``, ``process`` with
    ``workers`` processes, ``ray`` at ``ray_address``; None: chosen by the model's size), and
    latency is measured when ``measure_latency`` (always when a latency target is set).
    """

    trials: int = 30
    time_budget_min: float | None = None
    seed: int = 0
    proposer: str = "controller"
    halving: int = 1
    batch_size: int = 2
    patience: int = 10
    fine_tune_epochs: int = 1
    fine_tune_steps: int | None = None
    learning_rate: float = 1e-3
    distill: bool | None = None
    measure_latency: bool = True
    reward_mode: str = "soft"
    layers: tuple[str, ...] | None = None
    frozen_layers: tuple[str, ...] = ()
    search_precision: bool = True
    precisions: tuple[str, ...] | None = None
    executor: str | None = None
    workers: int = 2
    ray_address: str | None = None

    def __post_init__(self) -> None:
        # Lists from YAML become tuples, so the settings stay hashable and compare equal.
        for name in ("layers", "frozen_layers", "precisions"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise InvalidOptionError(
                    f"search {name} takes a list of names, not one string: write [{value}]."
                )
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        problems = [
            *_counts(self, trials=0, halving=1, batch_size=1, patience=0, workers=1),
            *_counts(self, fine_tune_epochs=0),
        ]
        if self.fine_tune_steps is not None:
            problems += _counts(self, fine_tune_steps=1)
        if self.time_budget_min is not None and not _positive(self.time_budget_min):
            problems.append(f"time_budget_min={self.time_budget_min!r} (minutes > 0, or None)")
        if not _positive(self.learning_rate):
            problems.append(f"learning_rate={self.learning_rate!r} (must be > 0, e.g. 1e-3)")
        for name, value, allowed in (
            ("proposer", self.proposer, PROPOSERS),
            ("reward_mode", self.reward_mode, REWARD_MODES),
            ("executor", self.executor, (*EXECUTORS, None)),
        ):
            if value not in allowed:
                named = ", ".join(str(a) for a in allowed if a is not None)
                problems.append(f"{name}={value!r} (use one of {named})")
        if problems:
            raise InvalidOptionError(f"Invalid search settings: {'; '.join(problems)}.")
        parse_precisions(self.precisions)  # raises with the precisions that exist

    def search_options(self, *, latency_target: bool = False) -> Any:
        """The loop's :class:`~zenml_quant.search.loop.SearchOptions` for these settings
        (``latency_target``: a latency target is set, so latency is measured regardless)."""
        from .finetune import FineTuneOptions
        from .loop import SearchOptions
        from .space import SpaceOptions
        from .trial import EvaluationOptions
        from .types import RewardOptions

        return SearchOptions(
            max_trials=self.trials,
            time_budget_s=None if self.time_budget_min is None else 60.0 * self.time_budget_min,
            patience=self.patience,
            batch_size=self.batch_size,
            seed=self.seed,
            proposer=self.proposer,
            halving=self.halving,
            reward=RewardOptions(mode=self.reward_mode),
            space=SpaceOptions(
                layers=self.layers or None,
                frozen_layers=self.frozen_layers,
                # None: the search proposes precisions only when the allocator is off
                precision=None if self.search_precision else False,
            ),
            evaluation=EvaluationOptions(
                fine_tune=FineTuneOptions(
                    epochs=self.fine_tune_epochs,
                    steps_per_epoch=self.fine_tune_steps,
                    learning_rate=self.learning_rate,
                    distill=self.distill,
                ),
                measure_latency=self.measure_latency or latency_target,
                precisions=parse_precisions(self.precisions),
            ),
        )

    def executor_options(self) -> dict[str, Any]:
        """The options of the named executor (none for the default or ``inprocess``)."""
        if self.executor == "process":
            return {"workers": self.workers}
        if self.executor == "ray":
            return {"address": self.ray_address}
        return {}


def run_search(model: Any, dataset: Any, *, targets: Any, settings: SearchSettings) -> Any:
    """Search edits of ``model`` on ``dataset`` until ``targets`` (a
    :class:`~zenml_quant.targets.Targets`, at least one set) hold, as ``settings`` say; returns
    the :class:`~zenml_quant.search.loop.SearchResult`.

    Raises:
        InvalidOptionError: no target at all, or ``trials`` 0.
    """
    from .executors import resolve_executor
    from .loop import search_architecture

    if targets.empty:
        raise InvalidOptionError(
            "The search needs at least one target: set min_quality or max_quality_drop and a "
            "resource limit such as max_size_bytes or max_latency_ms."
        )
    if settings.trials < 1:
        raise InvalidOptionError("The search needs at least 1 trial: set trials >= 1.")
    options = settings.search_options(latency_target=targets.max_latency_ms is not None)
    # No executor named: the model's size picks one (see executors.choice).
    with resolve_executor(
        settings.executor, model, batch_size=settings.batch_size, **settings.executor_options()
    ) as runner:
        return search_architecture(
            model, dataset, targets=targets, options=options, executor=runner
        )


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _counts(settings: SearchSettings, **minimums: int) -> list[str]:
    problems = []
    for name, low in minimums.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(f"{name}={value!r} (must be an integer >= {low})")
    return problems
