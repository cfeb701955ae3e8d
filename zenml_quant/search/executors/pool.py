"""The local process pool executor: spawned workers, each with its own TF thread limit."""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import itertools
import logging
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .base import (
    _WORKER_DIED,
    _WORKERS_KEEP_DYING,
    ErrorFn,
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
