"""The executor protocol, helpers every executor shares, and :class:`InProcessExecutor`."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ...errors import InvalidOptionError

_LOG = logging.getLogger(__name__)

#: The names :func:`make_executor` accepts.
EXECUTORS = ("inprocess", "process", "ray")

#: Environment variables a worker sets to its thread limit before it builds anything.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

TrialFn = Callable[[Any, Any], Any]
ErrorFn = Callable[[Any, str], Any]
#: ``native_failure(result)``: why a result says native code went wrong in the process that
#: made it (TensorFlow aborted), so that process may be corrupted; None for a sound result.
NativeFailureFn = Callable[[Any], "str | None"]
ProgressFn = Callable[[int, Any], None]
_Self = TypeVar("_Self")


@runtime_checkable
class TrialExecutor(Protocol):
    """Runs ``fn(context, task)`` for batches of tasks; see the module docstring."""

    def start(
        self,
        fn: TrialFn,
        context: Any,
        *,
        on_error: ErrorFn,
        native_failure: NativeFailureFn | None = None,
    ) -> None:
        """Fix the trial function and the shared context, and get the workers going.

        ``native_failure`` lets an executor whose workers are separate processes treat a
        result that reports native trouble like a crash (run again in a fresh worker); the
        others ignore it, since they cannot replace the process.
        """
        ...

    def map(self, tasks: Sequence[Any], *, callback: ProgressFn | None = None) -> list[Any]:
        """Run ``fn(context, task)`` for every task; results in task order.

        ``callback(index, result)`` is called in the caller's process as each result arrives
        (failed tasks included, with their ``on_error`` result).
        """
        ...

    def close(self) -> None:
        """Stop the workers. Idempotent."""
        ...

    def __enter__(self: _Self) -> _Self: ...

    def __exit__(self, *exc_info: object) -> None: ...


# --- shared helpers ---------------------------------------------------------------------------


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOptionError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def _describe_exception(exc: BaseException) -> str:
    """``ValueError: boom (at tasks.py:12 in fit)``: the type, the message, the innermost frame."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    if frames:
        last = frames[-1]
        text += f" (at {os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    return text


def _call(fn: TrialFn, context: Any, task: Any) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, message)`` if ``fn`` raised."""
    try:
        return True, fn(context, task)
    except (Exception, SystemExit) as exc:  # SystemExit: a trial calling sys.exit()
        _LOG.debug("trial failed", exc_info=True)
        return False, f"the trial raised {_describe_exception(exc)}"


def _pickle_payload(fn: TrialFn, context: Any, dumps: Callable[[Any], bytes]) -> bytes:
    """Pickle ``(fn, context)`` once, with messages that say which of the two is the problem."""
    if not callable(fn):
        raise InvalidOptionError(f"fn must be a callable fn(context, task), got {fn!r}")
    try:
        dumps(fn)
    except Exception as exc:
        raise InvalidOptionError(
            f"the trial function {getattr(fn, '__qualname__', fn)!r} cannot be sent to worker "
            f"processes ({_describe_exception(exc)}): define it at the top level of an "
            "importable module (not a lambda, closure or method)"
        ) from exc
    try:
        return dumps((fn, context))
    except Exception as exc:
        raise InvalidOptionError(
            f"the trial context cannot be pickled ({_describe_exception(exc)}): make it plain "
            "data (bytes, numpy arrays, dataclasses of plain values)"
        ) from exc


def _set_thread_env(threads: int) -> None:
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)


def _set_tf_threads(threads: int) -> bool:
    """Set TensorFlow's intra- and inter-op threads; False if TensorFlow already initialised."""
    import zenml_quant._compat  # noqa: F401  (picks the Keras flavour before TF loads)
    from zenml_quant._compat import tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        _LOG.debug(
            "TensorFlow is already initialised in process %d; its thread counts stay at "
            "intra-op %d, inter-op %d (asked for %d)",
            os.getpid(),
            tf.config.threading.get_intra_op_parallelism_threads(),
            tf.config.threading.get_inter_op_parallelism_threads(),
            threads,
        )
        return False
    return True


def _limit_native_threads(threads: int) -> None:
    """Set the env vars, TensorFlow's threads, and the BLAS/OpenMP pools already loaded.

    The worker's imports load numpy's BLAS before our code runs, and such libraries read
    ``OMP_NUM_THREADS`` only when they load; threadpoolctl (a scikit-learn dependency) limits
    them at run time.
    """
    _set_thread_env(threads)
    _set_tf_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return
    threadpool_limits(limits=threads)


def _thread_options(name: str, threads: int | None) -> int | None:
    return None if threads is None else _check_count(name, threads)


class _ExecutorBase:
    """``__enter__``/``__exit__`` and the started-or-not bookkeeping."""

    _fn: TrialFn | None = None
    _on_error: ErrorFn | None = None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _check_start(self, fn: TrialFn, on_error: ErrorFn) -> None:
        if self._fn is not None:
            raise RuntimeError(f"{type(self).__name__} is already started; close() it first")
        if not callable(on_error):
            raise InvalidOptionError(
                f"on_error must be a callable (task, message), got {on_error!r}"
            )

    def _check_started(self) -> ErrorFn:
        if self._fn is None or self._on_error is None:
            raise RuntimeError(
                f"{type(self).__name__}.map() needs start(fn, context, on_error=...)"
            )
        return self._on_error


# --- in process -------------------------------------------------------------------------------


class InProcessExecutor(_ExecutorBase):
    """Run the trials one after another in this process.

    ``threads`` sets TensorFlow's intra- and inter-op threads for this whole process, but only
    if TensorFlow has not initialised yet here (it cannot change afterwards); otherwise they are
    left alone and a debug message says so. The context is passed as is, never pickled. A trial
    that crashes the interpreter (native code, out of memory) takes the caller with it.
    """

    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = _thread_options("threads", threads)
        self._context: Any = None

    def start(
        self,
        fn: TrialFn,
        context: Any,
        *,
        on_error: ErrorFn,
        native_failure: NativeFailureFn | None = None,  # one process: nothing to replace
    ) -> None:
        self._check_start(fn, on_error)
        if not callable(fn):
            raise InvalidOptionError(f"fn must be a callable fn(context, task), got {fn!r}")
        if self.threads is not None:
            _set_tf_threads(self.threads)
        self._fn, self._context, self._on_error = fn, context, on_error

    def warm_up(self) -> None:
        """Nothing to start: present so every executor can be warmed up the same way."""

    def map(self, tasks: Sequence[Any], *, callback: ProgressFn | None = None) -> list[Any]:
        on_error = self._check_started()
        assert self._fn is not None
        results = []
        for index, task in enumerate(tasks):
            ok, value = _call(self._fn, self._context, task)
            result = value if ok else on_error(task, value)
            results.append(result)
            if callback is not None:
                callback(index, result)
        return results

    def close(self) -> None:
        self._fn = self._context = self._on_error = None
