"""Toy trials for tests/test_search_executors.py.

They live in a module of their own (not in the test file) so pool and Ray workers import them
by name, as they would a real trial function.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections import Counter

#: Times a :class:`Context` with a given token was unpickled in this process.
UNPICKLED: Counter[str] = Counter()
#: Tasks :func:`trial` started in this process.
STARTED = 0


class Context:
    """A shared context that counts how often it is unpickled, per process."""

    def __init__(self, token: str, payload: bytes = b"") -> None:
        self.token = token
        self.payload = payload

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        UNPICKLED[self.token] += 1


class CrashingContext(Context):
    """A context whose unpickling crashes the process: every worker dies while starting."""

    def __setstate__(self, state: dict) -> None:
        native_crash("segfault")


def trial(context: Context, task: tuple) -> object:
    """``task`` is ``(operation, argument)``."""
    global STARTED
    STARTED += 1
    op, arg = task
    if op == "square":
        return arg * arg
    if op == "sleep":  # -> (pid, wall-clock start, end)
        start = time.time()
        time.sleep(arg)
        return (os.getpid(), start, time.time())
    if op == "raise":
        raise ValueError(arg)
    if op == "exit":  # die like a crashed worker, after `arg` seconds
        time.sleep(arg)
        os._exit(1)
    if op == "mark_and_sleep":  # (marker file, seconds): say "I am running", then sleep
        marker, seconds = arg
        with open(marker, "w") as file:
            file.write(str(os.getpid()))
        time.sleep(seconds)
        return ("slept", os.getpid())
    if op == "exit_when_marked":  # die once the marker exists: two trials surely side by side
        deadline = time.monotonic() + 60
        while not os.path.exists(arg) and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(1)
    if op == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if op == "native":  # a native crash: "segfault" (SIGSEGV) or "abort" (SIGABRT)
        native_crash(arg)
    if op == "crash_unless_first":  # a crash left behind by earlier tasks in this process
        if STARTED > 1:
            native_crash(arg)
        return ("first", os.getpid())
    if op == "crash_with_onednn":  # a crash only where TensorFlow's oneDNN kernels are on
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            native_crash(arg)
        return ("without oneDNN", os.getpid())
    # A result that reports native trouble (see `troubled`), as TensorFlow's AbortedError does:
    if op == "aborted_unless_first":  # only in a worker that ran something before
        return ("aborted", os.getpid()) if STARTED > 1 else ("first", os.getpid())
    if op == "aborted_with_onednn":  # only where oneDNN's kernels are on
        if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
            return ("aborted", os.getpid())
        return ("without oneDNN", os.getpid())
    if op == "aborted":  # wherever it runs
        return ("aborted", os.getpid())
    if op == "info":
        from zenml_quant._compat import tf

        float(tf.reduce_sum(tf.ones((4, 4))))  # TensorFlow is initialised from here on
        return {
            "pid": os.getpid(),
            "unpickled": UNPICKLED[context.token],
            "context_id": id(context),
            "payload_len": len(context.payload),
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
            "env": {
                var: os.environ.get(var)
                for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
            },
        }
    raise AssertionError(f"unknown toy operation {op!r}")


def on_error(task: tuple, message: str) -> tuple:
    return ("error", task, message)


def troubled(result: object) -> str | None:
    """The executor's ``native_failure`` for these toys: an ``("aborted", pid)`` result."""
    if isinstance(result, tuple) and result[:1] == ("aborted",):
        return "AbortedError from the toy's runtime"
    return None


def native_crash(how: str) -> None:
    """Crash this process in native code: ``"segfault"`` (SIGSEGV) or ``"abort"`` (SIGABRT,
    the way glibc ends a process after "double free or corruption")."""
    if how == "segfault":
        ctypes.string_at(0)  # reads address 0
    elif how == "abort":
        os.abort()
    raise AssertionError(f"unknown native crash {how!r}")


def crash_in_trial(wrapped: tuple, task: object) -> object:
    """A search trial function that crashes natively while converting one chosen trial.

    ``wrapped`` is ``(fn, context, crash_trial, how)``: the search's own trial function and
    context, the number of the trial to crash and :func:`native_crash`'s ``how``. Any other
    trial runs untouched. The crash comes after the candidate was built and fine-tuned, where
    a converter crash would.
    """
    fn, context, crash_trial, how = wrapped
    if getattr(task, "trial", None) != crash_trial:
        return fn(context, task)
    from zenml_quant.search import trial as trial_module

    convert = trial_module._convert
    trial_module._convert = lambda *args, **kwargs: native_crash(how)
    try:
        return fn(context, task)
    finally:  # only reached if the crash did not happen
        trial_module._convert = convert
