"""Toy trials for tests/test_search_executors.py.

They live in a module of their own (not in the test file) so pool and Ray workers import them
by name, as they would a real trial function.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

#: Times a :class:`Context` with a given token was unpickled in this process.
UNPICKLED: Counter[str] = Counter()


class Context:
    """A shared context that counts how often it is unpickled, per process."""

    def __init__(self, token: str, payload: bytes = b"") -> None:
        self.token = token
        self.payload = payload

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        UNPICKLED[self.token] += 1


def trial(context: Context, task: tuple) -> object:
    """``task`` is ``(operation, argument)``."""
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
            "env": {
                var: os.environ.get(var)
                for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
            },
        }
    raise AssertionError(f"unknown toy operation {op!r}")


def on_error(task: tuple, message: str) -> tuple:
    return ("error", task, message)
