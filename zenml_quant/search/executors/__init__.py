"""Run a batch of search trials: in this process, in a local process pool, or on Ray.

An executor knows nothing about Keras or the search. It runs ``fn(context, task)`` for each task
of a batch and returns the results in task order:

- ``fn`` is a top-level function (pickled by reference, so workers import its module);
- ``context`` is the large input every trial shares (model bytes, arrays, options). It is
  pickled once in the parent and reaches each worker once, never once per task;
- a task whose ``fn`` raises, or whose worker dies (segfault, out-of-memory kill, ``os._exit``),
  gets ``on_error(task, message)`` as its result; the message says what happened and what to
  do. The executor stays usable: a broken process pool is replaced before the next task.

Three implementations, picked by :func:`make_executor`:

- :class:`InProcessExecutor` (``"inprocess"``): sequential, in this process. No isolation: a
  crash in native code takes the caller down with it.
- :class:`ProcessPoolExecutor` (``"process"``): a local pool of ``spawn``-ed processes (fork
  and TensorFlow deadlock), each with its own TensorFlow thread limit. With ``spawn`` the
  caller's ``__main__`` script is imported again in each worker, so a script that uses this
  executor needs the usual ``if __name__ == "__main__":`` guard.
- :class:`RayExecutor` (``"ray"``): Ray tasks, on a cluster the user already has or on a local
  one started for the run. Every Ray node needs this package installed (same version).

When the caller names none, :func:`default_executor` picks one by the model's size (see
:mod:`.choice`): a process pool for models of :data:`PROCESS_MIN_PARAMS` parameters or more,
so a native crash fails one trial instead of the search; this process for smaller ones.

This module imports neither ZenML nor (until a :class:`RayExecutor` starts) Ray.
"""

from __future__ import annotations

import inspect
from typing import Any

from ...errors import InvalidOptionError
from .base import EXECUTORS, InProcessExecutor, TrialExecutor
from .choice import (
    PROCESS_MIN_PARAMS,
    ExecutorChoice,
    default_executor,
    default_executor_choice,
    resolve_executor,
)
from .pool import ProcessPoolExecutor
from .ray_tasks import RayExecutor

__all__ = [
    "EXECUTORS",
    "PROCESS_MIN_PARAMS",
    "ExecutorChoice",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "RayExecutor",
    "TrialExecutor",
    "default_executor",
    "default_executor_choice",
    "make_executor",
    "resolve_executor",
]

# --- factory ----------------------------------------------------------------------------------

_CLASSES: dict[str, type[Any]] = {
    "inprocess": InProcessExecutor,
    "process": ProcessPoolExecutor,
    "ray": RayExecutor,
}


def make_executor(name: str, **kwargs: Any) -> TrialExecutor:
    """The executor called ``name`` (one of :data:`EXECUTORS`), built with ``kwargs``."""
    key = name.strip().lower() if isinstance(name, str) else ""
    if key not in _CLASSES:
        raise InvalidOptionError(
            f"unknown executor {name!r}: use one of {', '.join(repr(n) for n in EXECUTORS)}"
        )
    cls = _CLASSES[key]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise InvalidOptionError(
            f"the {key!r} executor does not take {', '.join(unknown)}; its options are "
            f"{', '.join(accepted) or 'none'}"
        )
    executor: TrialExecutor = cls(**kwargs)
    return executor
