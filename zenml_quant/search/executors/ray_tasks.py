"""The Ray executor: trials as Ray tasks on a cluster the user has, or a local one."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import InvalidOptionError
from .base import (
    ErrorFn,
    NativeFailureFn,
    ProgressFn,
    TrialFn,
    _call,
    _check_count,
    _describe_exception,
    _ExecutorBase,
    _limit_native_threads,
    _pickle_payload,
)

_LOG = logging.getLogger(__name__)


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

    def start(
        self,
        fn: TrialFn,
        context: Any,
        *,
        on_error: ErrorFn,
        native_failure: NativeFailureFn | None = None,  # Ray replaces its workers itself
    ) -> None:
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
