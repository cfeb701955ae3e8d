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

This module imports neither ZenML nor (until a :class:`RayExecutor` starts) Ray.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import inspect
import itertools
import logging
import multiprocessing
import os
import pickle
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..errors import InvalidOptionError

__all__ = [
    "EXECUTORS",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "RayExecutor",
    "TrialExecutor",
    "make_executor",
]

_LOG = logging.getLogger(__name__)

#: The names :func:`make_executor` accepts.
EXECUTORS = ("inprocess", "process", "ray")

#: Environment variables a worker sets to its thread limit before it builds anything.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

TrialFn = Callable[[Any, Any], Any]
ErrorFn = Callable[[Any, str], Any]
ProgressFn = Callable[[int, Any], None]
_Self = TypeVar("_Self")

_WORKER_DIED = (
    "the worker process running this trial died (killed? out of memory? a crash in native "
    "code?): lower `workers` or the candidate size; the pool was restarted and the other "
    "trials were not affected"
)
_WORKERS_KEEP_DYING = (
    "worker processes died twice before this trial finished, while no trial was running "
    "(a crash at worker start-up, or the machine out of memory): check the worker's stderr, "
    "lower `workers` or the candidate size"
)


@runtime_checkable
class TrialExecutor(Protocol):
    """Runs ``fn(context, task)`` for batches of tasks; see the module docstring."""

    def start(self, fn: TrialFn, context: Any, *, on_error: ErrorFn) -> None:
        """Fix the trial function and the shared context, and get the workers going."""
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

    def start(self, fn: TrialFn, context: Any, *, on_error: ErrorFn) -> None:
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


# --- local process pool -----------------------------------------------------------------------

# One worker's state, set by _pool_init: the trial function and context, or why they could not
# be loaded, and the worker's slot in the pool's "running" array.
_WORKER: dict[str, Any] = {}


def _pool_init(payload: Any, threads: int, ready: Any, running: Any) -> None:
    """The pool worker's initializer: thread limits first, then the context, then "ready".

    ``payload`` is the pickled ``(fn, context)`` in shared memory (inherited at spawn, not
    copied through a pipe); ``ready`` counts initialised workers and hands out slots;
    ``running[slot]`` holds the id of the task this worker is running (-1 when idle), so the
    parent can tell which task was in flight when a worker died.
    """
    _limit_native_threads(threads)
    try:
        fn, context = pickle.loads(memoryview(payload).cast("B"))
        _WORKER.update(fn=fn, context=context)
    except Exception as exc:
        _WORKER["error"] = (
            f"the worker could not load the trial function and context "
            f"({_describe_exception(exc)}): their classes and functions must be importable in "
            "a fresh process (top level of a module on sys.path, not a notebook's __main__)"
        )
    with ready.get_lock():
        _WORKER["slot"] = ready.value
        ready.value += 1
    _WORKER["running"] = running


def _pool_run(task_id: int, task: Any) -> tuple[bool, Any]:
    running, slot = _WORKER["running"], _WORKER["slot"]
    tracked = slot < len(running)
    if tracked:
        running[slot] = task_id
    try:
        if "error" in _WORKER:
            return False, _WORKER["error"]
        return _call(_WORKER["fn"], _WORKER["context"], task)
    finally:
        if tracked:
            running[slot] = -1


def _pool_ping() -> int:
    return os.getpid()


class _Pool:
    """One ``concurrent.futures`` pool and its shared counters; replaced when it breaks."""

    def __init__(self, workers: int, threads: int, payload: Any, *, prestart: bool) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.workers = workers
        self.ready = ctx.Value("i", 0)
        self.running = ctx.RawArray(ctypes.c_longlong, [-1] * workers)
        self.executor = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=_pool_init,
            initargs=(payload, threads, self.ready, self.running),
        )
        self.pings: list[cf.Future[int]] = []
        if prestart:
            self.start_all()

    def start_all(self) -> None:
        """Have every worker started, without waiting for them.

        The pool spawns a worker for each submit that finds none idle (up to ``workers``), so
        one ping per worker brings the pool to full size.
        """
        self.pings = [self.executor.submit(_pool_ping) for _ in range(self.workers)]

    def in_flight(self) -> set[int]:
        return {task_id for task_id in self.running if task_id >= 0}

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class ProcessPoolExecutor(_ExecutorBase):
    """Run the trials in ``workers`` local processes, each limited to ``threads_per_worker``.

    The processes are ``spawn``-ed (fork and TensorFlow deadlock) and get the caller's
    ``sys.path``, so whatever the caller can import, they can. ``(fn, context)`` is pickled
    once into shared memory; each worker's initializer sets ``OMP_NUM_THREADS``,
    ``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS`` and TensorFlow's thread counts, then
    unpickles it once. :meth:`start` launches the workers without waiting for them (they take a
    few seconds to import TensorFlow); :meth:`warm_up` waits. A pool replaced after a crash
    starts its workers as the tasks need them.

    If a worker dies the pool breaks: every trial that was running is suspect. A lone suspect
    is the culprit and gets ``on_error``; trials not yet started are resubmitted to a fresh
    pool; several suspects are run again one at a time once the others are done (so the culprit
    dies alone, and a trial that only died of memory pressure next to another gets a second
    chance).
    """

    def __init__(self, *, workers: int = 2, threads_per_worker: int = 1) -> None:
        self.workers = _check_count("workers", workers)
        self.threads_per_worker = _check_count("threads_per_worker", threads_per_worker)
        cpus = os.cpu_count() or 1
        if self.workers * self.threads_per_worker > cpus:
            _LOG.info(
                "%d workers x %d threads oversubscribe the %d CPUs of this machine",
                self.workers,
                self.threads_per_worker,
                cpus,
            )
        self._payload: Any = None
        self._pool: _Pool | None = None
        self._task_ids = itertools.count()

    def start(self, fn: TrialFn, context: Any, *, on_error: ErrorFn) -> None:
        self._check_start(fn, on_error)
        blob = _pickle_payload(fn, context, pickle.dumps)
        payload = multiprocessing.get_context("spawn").RawArray(ctypes.c_ubyte, len(blob))
        ctypes.memmove(payload, blob, len(blob))
        self._payload, self._fn, self._on_error = payload, fn, on_error
        self._pool = _Pool(self.workers, self.threads_per_worker, payload, prestart=True)

    def _live_pool(self) -> _Pool:
        """The pool; a fresh one (whose workers start as tasks need them) after a crash."""
        if self._pool is None:
            self._pool = _Pool(self.workers, self.threads_per_worker, self._payload, prestart=False)
        return self._pool

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def warm_up(self, timeout: float = 300.0) -> None:
        """Wait until every worker has started, set its threads and loaded the context."""
        self._check_started()
        for _attempt in range(2):
            pool = self._live_pool()
            if pool.ready.value < pool.workers and not pool.pings:
                pool.start_all()
            deadline = time.monotonic() + timeout
            while pool.ready.value < pool.workers:
                if any(f.done() and f.exception() is not None for f in pool.pings):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{pool.ready.value} of {pool.workers} workers started in {timeout:.0f} s"
                    )
                time.sleep(0.02)
            else:
                return
            self._discard_pool()  # a worker died while starting: try once more
        raise RuntimeError(
            "worker processes die while starting (see their stderr above): check that the "
            "package imports in a fresh process, or lower `workers`"
        )

    def map(self, tasks: Sequence[Any], *, callback: ProgressFn | None = None) -> list[Any]:
        on_error = self._check_started()
        tasks = list(tasks)
        results: list[Any] = [None] * len(tasks)

        def finish(index: int, result: Any) -> None:
            results[index] = result
            if callback is not None:
                callback(index, result)

        todo = list(range(len(tasks)))  # run together
        isolate: list[int] = []  # suspects of a crash: run alone, once the others are done
        strikes = [0] * len(tasks)  # pool breaks a task lived through without being a suspect
        while todo or isolate:
            if todo:
                batch, todo = todo, []
            else:
                batch = [isolate.pop(0)]
            crash = self._run_batch(tasks, batch, finish, on_error)
            if crash is None:
                continue
            unfinished, suspects = crash
            if len(suspects) == 1:
                culprit = suspects[0]
                finish(culprit, on_error(tasks[culprit], _WORKER_DIED))
            else:
                isolate.extend(suspects)
            for index in unfinished:
                if index in suspects:
                    continue
                if not suspects:  # nobody to blame: a death outside any trial
                    strikes[index] += 1
                if strikes[index] >= 2:
                    finish(index, on_error(tasks[index], _WORKERS_KEEP_DYING))
                else:
                    todo.append(index)
            todo.sort()
        return results

    def _run_batch(
        self,
        tasks: list[Any],
        batch: list[int],
        finish: Callable[[int, Any], None],
        on_error: ErrorFn,
    ) -> tuple[list[int], list[int]] | None:
        """Run ``batch``; None if the pool held, else (unfinished, suspects) after a crash."""
        pool = self._live_pool()
        futures: dict[cf.Future[Any], tuple[int, int]] = {}
        try:
            for index in batch:
                task_id = next(self._task_ids)
                futures[pool.executor.submit(_pool_run, task_id, tasks[index])] = (task_id, index)
        except BrokenProcessPool:
            # A worker died while idle (or starting): nothing of ours ran, start afresh.
            for future in futures:
                future.cancel()
            self._discard_pool()
            pool = self._live_pool()
            futures = {}
            for index in batch:
                task_id = next(self._task_ids)
                futures[pool.executor.submit(_pool_run, task_id, tasks[index])] = (task_id, index)
        finished: set[int] = set()
        broken = False
        try:
            for future in cf.as_completed(futures):
                task_id, index = futures[future]
                try:
                    ok, value = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:  # the task or its result did not pickle
                    ok, value = (
                        False,
                        (
                            "the task or its result could not be passed between processes "
                            f"({_describe_exception(exc)}): use plain picklable values"
                        ),
                    )
                finished.add(index)
                finish(index, value if ok else on_error(tasks[index], value))
        finally:
            for future in futures:
                future.cancel()  # only if the caller's callback raised: drop what is queued
        if not broken:
            return None
        # Let the pool finish terminating its workers, so "running" is a settled snapshot.
        pool.shutdown()
        in_flight = pool.in_flight()
        self._pool = None
        suspects = [
            index
            for task_id, index in futures.values()
            if task_id in in_flight and index not in finished
        ]
        unfinished = [index for _, index in futures.values() if index not in finished]
        _LOG.warning(
            "a worker process died; %d trial(s) were running, restarting the pool", len(suspects)
        )
        return unfinished, sorted(suspects)

    def close(self) -> None:
        self._discard_pool()
        self._payload = self._fn = self._on_error = None


# --- Ray --------------------------------------------------------------------------------------

# Per Ray worker process: (fn, context) by executor key, the few most recent only (a worker
# outlives executors), and the thread limit applied on first use.
_RAY_CONTEXTS: OrderedDict[str, tuple[TrialFn, Any]] = OrderedDict()
_RAY_CACHE_SIZE = 2
_RAY_STATE: dict[str, Any] = {"threads": None}


def _add_sys_path(paths: Sequence[str]) -> None:
    """Append the driver's import paths that exist here and are missing (after our own)."""
    for path in paths:
        if path and path not in sys.path and os.path.exists(path):
            sys.path.append(path)


def _ray_trial(
    key: str, boxed_ref: list[Any], sys_path: list[str], threads: int, task_blob: bytes
) -> tuple[bool, Any]:
    """The Ray task: load ``(fn, context)`` once per worker process, then run one trial.

    ``boxed_ref`` wraps the context's ObjectRef in a list so Ray does not fetch it for every
    task; it is fetched and unpickled only on this worker's first trial of this executor.
    """
    entry = _RAY_CONTEXTS.get(key)
    if entry is None:
        import ray

        _add_sys_path(sys_path)
        if _RAY_STATE["threads"] is None:
            _limit_native_threads(threads)
            _RAY_STATE["threads"] = threads
        elif _RAY_STATE["threads"] != threads:
            _LOG.debug("Ray worker %d keeps %s threads", os.getpid(), _RAY_STATE["threads"])
        try:
            entry = pickle.loads(ray.get(boxed_ref[0]))
        except Exception as exc:
            return False, (
                f"the Ray worker could not load the trial function and context "
                f"({_describe_exception(exc)}): their modules must be importable on every Ray "
                "node (install the package there; the driver's sys.path is added where it exists)"
            )
        _RAY_CONTEXTS[key] = entry
        while len(_RAY_CONTEXTS) > _RAY_CACHE_SIZE:
            _RAY_CONTEXTS.popitem(last=False)
    else:
        _RAY_CONTEXTS.move_to_end(key)
    try:
        task = pickle.loads(task_blob)
    except Exception as exc:
        return False, f"the Ray worker could not unpickle the task ({_describe_exception(exc)})"
    fn, context = entry
    return _call(fn, context, task)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InvalidOptionError(
            'the "ray" executor needs Ray: pip install "zenml-quant[ray]"'
        ) from exc
    return ray


def _ray_failure(ray: Any, exc: BaseException) -> str:
    """What a Ray error means for the trial, and what to do about it."""
    errors = ray.exceptions
    oom = getattr(errors, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return (
            "Ray's memory monitor killed the worker running this trial (node out of memory): "
            "raise cpus_per_trial so fewer trials share a node, or shrink the candidate"
        )
    if isinstance(exc, errors.WorkerCrashedError):
        return (
            "the Ray worker running this trial died (killed? out of memory? a crash in native "
            "code?): raise cpus_per_trial so fewer trials share a node, or shrink the candidate; "
            "Ray's worker logs (session_latest/logs under Ray's temp dir) have the details"
        )
    if isinstance(exc, errors.TaskCancelledError):
        return "the trial's Ray task was cancelled"
    if isinstance(exc, errors.RayTaskError):
        return (
            f"Ray could not run the trial ({_describe_exception(exc.cause or exc)}): is this "
            "package installed, at the same version, on every Ray node?"
        )
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Ray lost the trial ({type(exc).__name__}: {text}): check the cluster's health"


class RayExecutor(_ExecutorBase):
    """Run the trials as Ray tasks, each reserving ``cpus_per_trial`` CPUs.

    If Ray is already initialised in this process it is used as is; otherwise
    ``ray.init(address=address, **init_kwargs)`` connects to a cluster (``address``) or starts
    a local one, and :meth:`close` shuts down only a Ray this executor started.
    ``(fn, context)`` is pickled once (cloudpickle, so a function in a script's ``__main__``
    works too) and put in the object store once; each Ray worker process fetches and unpickles
    it on its first trial and keeps it. On that first trial the worker also sets its threads
    to ``threads_per_trial`` (if TensorFlow has not initialised there yet) and appends the
    driver's ``sys.path`` entries that exist on its node, so modules the driver imports from
    a source tree (tests, scripts) resolve on a local cluster. Tasks are not retried: a worker
    that dies fails its trial (through ``on_error``) and Ray starts a new one for the next.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        threads_per_trial: int = 1,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if address is not None and not isinstance(address, str):
            raise InvalidOptionError(f"address must be a Ray address string, got {address!r}")
        if (
            isinstance(cpus_per_trial, bool)
            or not isinstance(cpus_per_trial, (int, float))
            or not cpus_per_trial > 0
        ):
            raise InvalidOptionError(f"cpus_per_trial must be a number > 0, got {cpus_per_trial!r}")
        if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
            raise InvalidOptionError(f"init_kwargs must be a mapping, got {init_kwargs!r}")
        if init_kwargs and "address" in init_kwargs and address is not None:
            raise InvalidOptionError(
                "give the Ray address once: address= or init_kwargs['address']"
            )
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self.threads_per_trial = _check_count("threads_per_trial", threads_per_trial)
        self.init_kwargs = dict(init_kwargs or {})
        self._ray: Any = None
        self._owns_ray = False
        self._key = ""
        self._context_ref: Any = None
        self._remote: Any = None

    def start(self, fn: TrialFn, context: Any, *, on_error: ErrorFn) -> None:
        self._check_start(fn, on_error)
        ray = _import_ray()
        blob = _pickle_payload(fn, context, ray.cloudpickle.dumps)
        if ray.is_initialized():
            if self.address is not None or self.init_kwargs:
                _LOG.info("Ray is already initialised; address and init_kwargs are ignored")
        else:
            kwargs = dict(self.init_kwargs)
            if self.address is not None:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self._owns_ray = True
        self._ray = ray
        self._key = uuid.uuid4().hex
        self._context_ref = ray.put(blob)
        self._remote = ray.remote(_ray_trial).options(
            num_cpus=self.cpus_per_trial, max_retries=0, retry_exceptions=False
        )
        self._fn, self._on_error = fn, on_error

    def warm_up(self) -> None:
        """Nothing to wait for: Ray starts workers on demand."""

    def map(self, tasks: Sequence[Any], *, callback: ProgressFn | None = None) -> list[Any]:
        on_error = self._check_started()
        ray = self._ray
        tasks = list(tasks)
        results: list[Any] = [None] * len(tasks)
        sys_path = [p for p in sys.path if p]
        refs = {}
        for index, task in enumerate(tasks):
            try:
                task_blob = ray.cloudpickle.dumps(task)
            except Exception as exc:
                result = on_error(task, f"the task cannot be pickled ({_describe_exception(exc)})")
                results[index] = result
                if callback is not None:
                    callback(index, result)
                continue
            ref = self._remote.remote(
                self._key, [self._context_ref], sys_path, self.threads_per_trial, task_blob
            )
            refs[ref] = index
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    index = refs[ref]
                    try:
                        ok, value = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        ok, value = False, _ray_failure(ray, exc)
                    results[index] = value if ok else on_error(tasks[index], value)
                    if callback is not None:
                        callback(index, results[index])
        finally:
            for ref in pending:  # only if the caller's callback raised
                ray.cancel(ref)
        return results

    def close(self) -> None:
        ray, owns = self._ray, self._owns_ray
        self._ray = self._context_ref = self._remote = None
        self._fn = self._on_error = None
        self._owns_ray = False
        if ray is not None and owns and ray.is_initialized():
            ray.shutdown()


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
