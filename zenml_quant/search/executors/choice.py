"""Which executor a search uses when the caller names none: chosen by the model's size.

A native crash (a segfault or abort in TensorFlow, the TFLite converter or the interpreter)
while a candidate is built, fine-tuned or converted kills the process it happens in. In a
worker process that is one failed trial; in the caller's process it is the whole search, and
the run around it. Isolation costs a worker start (importing TensorFlow, loading the model:
5-10 s here, 15 s and more on a busy machine), once per search and again after each crash.

- Models of at least :data:`PROCESS_MIN_PARAMS` parameters (200 KB of float32 weights) run
  their trials in a :class:`~.pool.ProcessPoolExecutor`. Fine-tuning, int8 calibration and
  conversion grow with the model: a MobileNetV2-0.35 candidate (423,018 parameters) took
  20-100 s here, so a worker start is a few percent of a search. These are also the models
  whose searches crashed: TensorFlow's oneDNN kernels corrupt the heap while fine-tuning
  some MobileNetV2 candidates (a 1x1 stride-2 convolution on few input channels), a crash
  that took the whole search down in process.
- Smaller models run in this process: the bundled digits CNN (9,994 parameters) evaluates a
  candidate in about 3 s here, less than a worker start would cost.

The explicit choice always wins: :func:`resolve_executor` builds the named executor when it
is given, and falls back to :func:`default_executor` only when it is not.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidOptionError
from .base import TrialExecutor, _check_count

__all__ = [
    "PROCESS_MIN_PARAMS",
    "ExecutorChoice",
    "default_executor",
    "default_executor_choice",
    "resolve_executor",
]

_LOG = logging.getLogger(__name__)

#: Models with at least this many parameters (200 KB of float32 weights) run their trials in
#: worker processes by default; see the module docstring for why.
PROCESS_MIN_PARAMS = 50_000
#: What one worker holds at its peak besides the weights: TensorFlow, the converter and the
#: interpreter loaded, and a fine-tuning step's activations. Measured here: 1.1-2.0 GiB
#: resident for MobileNetV2-0.35 candidates at 96x96 (fine-tuning batch 16); activations,
#: not weights, make most of it, and they grow with the input size and the batch.
_WORKER_BASE_BYTES = 2 << 30
#: Bytes per parameter a trial holds besides: the original and the edited model, gradients,
#: Adam's two slots and the converter's copies, at 4 bytes each.
_WORKER_BYTES_PER_PARAM = 32


@dataclass(frozen=True)
class ExecutorChoice:
    """An executor's name (one of :data:`~.base.EXECUTORS`), its options, and why."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def make(self) -> TrialExecutor:
        """The executor itself."""
        from . import make_executor

        return make_executor(self.name, **self.options)


def default_executor_choice(
    model: Any,
    *,
    batch_size: int = 1,
    cpus: int | None = None,
    available_memory: int | None = None,
) -> ExecutorChoice:
    """The executor a search of ``model`` uses when the caller names none.

    ``"inprocess"`` below :data:`PROCESS_MIN_PARAMS` parameters; otherwise ``"process"`` with
    one worker per candidate of a batch (``batch_size``), as many as the CPUs
    (``cpus``, default: those this process may run on) and the memory (``available_memory``
    bytes, default: what the system reports available) allow, at least one, and the CPUs
    shared out between them as ``threads_per_worker``. Its workers do not run the caller's
    main script again (``import_main=False``), so a script without an
    ``if __name__ == "__main__":`` guard works; a custom benchmarker or other object in the
    evaluation options must then be defined in an importable module, not in that script.

    Raises:
        InvalidOptionError: ``model`` has no ``count_params()`` (not a Keras model), or a
            count is not a whole number >= 1.
    """
    _check_count("batch_size", batch_size)
    params = _count_params(model)
    if params < PROCESS_MIN_PARAMS:
        return ExecutorChoice(
            "inprocess",
            reason=(
                f"{params:,} parameters, under {PROCESS_MIN_PARAMS:,}: trials are short, "
                "so they run in this process (pass an executor to isolate them)"
            ),
        )
    cpus = _check_count("cpus", cpus) if cpus is not None else _usable_cpus()
    memory = available_memory if available_memory is not None else _available_memory()
    workers = min(batch_size, cpus)
    limit = ""
    if memory is not None:
        fit = max(1, memory // (_WORKER_BASE_BYTES + _WORKER_BYTES_PER_PARAM * params))
        if fit < workers:
            workers = fit
            limit = f", as many as {memory / 2**30:.1f} GiB of free memory allow"
    threads = max(1, cpus // workers)
    return ExecutorChoice(
        "process",
        # import_main=False: the workers need only the package (the trial function and a
        # context of plain data), and a script that never needed a main guard before, since
        # it ran its searches in process, keeps working.
        {"workers": workers, "threads_per_worker": threads, "import_main": False},
        reason=(
            f"{params:,} parameters, at least {PROCESS_MIN_PARAMS:,}: each trial runs in a "
            f"worker process, so a native crash fails that trial only ({workers} worker(s) "
            f"x {threads} thread(s) on {cpus} CPU(s){limit})"
        ),
    )


def default_executor(model: Any, *, batch_size: int = 1) -> TrialExecutor:
    """The executor :func:`default_executor_choice` picks for ``model``, built."""
    choice = default_executor_choice(model, batch_size=batch_size)
    _LOG.info("search executor: %s (%s)", choice.name, choice.reason)
    return choice.make()


def resolve_executor(
    name: str | None, model: Any, *, batch_size: int = 1, **options: Any
) -> TrialExecutor:
    """``make_executor(name, **options)`` when ``name`` is given, else the model's default.

    The explicit choice always wins, whatever the model's size. ``options`` belong to a named
    executor; the default picks its own.

    Raises:
        InvalidOptionError: options without a name, or a bad name or option.
    """
    if name is None:
        if options:
            raise InvalidOptionError(
                f"executor options {', '.join(sorted(options))} need an executor name: pass "
                "executor='process' (or 'ray', 'inprocess') with them, or drop them to let the "
                "model's size decide"
            )
        return default_executor(model, batch_size=batch_size)
    from . import make_executor

    return make_executor(name, **options)


def _count_params(model: Any) -> int:
    count = getattr(model, "count_params", None)
    if not callable(count):
        raise InvalidOptionError(
            f"cannot size {type(model).__name__!r} to choose an executor: pass a Keras model, "
            "or name the executor"
        )
    try:
        return int(count())
    except ValueError as exc:  # tf_keras: "... isn't built"
        raise InvalidOptionError(
            f"cannot count the parameters of model {getattr(model, 'name', '?')!r} ({exc}): "
            "build it (an Input layer, or model.build(input_shape)) or name the executor"
        ) from exc


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _available_memory() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` in bytes; None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
