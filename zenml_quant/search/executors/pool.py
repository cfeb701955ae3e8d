"""The local process pool executor: spawned workers, each with its own TF thread limit.

Two things about spawned workers that the pool takes care of:

- ``spawn`` runs the caller's main script again in each worker (as ``__mp_main__``), so that
  functions defined there can be unpickled. If that script defines ZenML steps (any pipeline
  script does), ZenML resolves their sources while it is imported, and needs a source root: a
  ``zenml init`` folder above the working directory, or the main module's file, which the
  worker's bootstrap module does not have at that moment. The workers are therefore started
  with ``ZENML_CUSTOM_SOURCE_ROOT`` set to the source root the caller's ZenML uses (when
  ZenML is loaded and the variable is not set already), so they work from any folder.
- A worker that dies says how: its exit code or signal, and the last lines it wrote to
  stderr, which the pool reads through a pipe (and passes on to this process's stderr as it
  comes). Workers start with Python's faulthandler on and glibc's fatal messages sent to
  stderr, so a native crash quotes the Python frames it happened in and what the C library
  said ("double free or corruption"), not only TensorFlow's start-up banner.
- A trial whose own code crashes natively is run once more, alone and before the others, in a
  worker with TensorFlow's oneDNN kernels off (``TF_ENABLE_ONEDNN_OPTS=0``) before it fails:
  oneDNN has crashes of its own in training (MobileNetV2 candidates in issue 18 died with
  SIGSEGV and "corrupted double-linked list" in ``fit``, and ran to the end without it). If that run
  succeeds, oneDNN was the cause, and the candidates of one search are alike: the pool keeps
  oneDNN off for the rest of its life (and says so once) rather than let every later trial
  crash up to three times first (a minute each on MobileNetV2). If it dies as well, oneDNN was
  not the cause and the pool goes back to the default.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import multiprocessing.context
import os
import pickle
import re
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
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

_SOURCE_ROOT_VAR = "ZENML_CUSTOM_SOURCE_ROOT"
_TAIL_BYTES = 16_384  # kept per worker; the message quotes the last _TAIL_LINES lines of it
_TAIL_LINES = 12
#: A faulthandler report is quoted at this length: it starts with the frames that matter.
_CRASH_REPORT_LINES = 16
#: Set in each worker unless the caller set them: PYTHONFAULTHANDLER makes a fatal signal print
#: the Python stack (most recent call first) before the process dies; LIBC_FATAL_STDERR_ sends
#: glibc's own messages ("double free or corruption", "malloc(): corrupted top size") to
#: stderr, where the pool reads them, instead of the terminal.
_CRASH_REPORT_ENV = {"PYTHONFAULTHANDLER": "1", "LIBC_FATAL_STDERR_": "1"}
#: The environment of the worker a natively crashing trial gets its last run in.
WITHOUT_ONEDNN = {"TF_ENABLE_ONEDNN_OPTS": "0"}
#: The first line of faulthandler's report.
_FAULT_HEADER = "Fatal Python error:"
#: Start-up chatter every TensorFlow process writes (absl INFO lines, CUDA's complaints that
#: there is no GPU, absl's notice that it logs to stderr): quoting it would push what the crash
#: said out of the message.
_STDERR_NOISE = re.compile(
    r"^(I\d{4} [\d:.]+\s+\d+ \S+:\d+\] |[EW]\d{4} [\d:.]+\s+\d+ cu\w+\.cc:\d+\] "
    r"|WARNING: All log messages before absl::)"
)
#: Frames of the pool's own machinery (the worker's bootstrap and task loop) in a faulthandler
#: report: the same in every report, so not quoted.
_MACHINERY_FRAME = re.compile(r'File "(<string>|[^"]*/(multiprocessing|concurrent/futures)/[^"]*)"')
#: A frame in an installed library: group 1 is the library's top-level package.
_LIBRARY_FRAME = re.compile(r'File "[^"]*/(?:site|dist)-packages/([^/"]+)/')
_SIGNAL_HINTS = {
    "SIGKILL": (
        "the kernel's out-of-memory killer does this (see `dmesg`), as does `kill -9`: if "
        "memory is short, lower `workers` or the candidate size"
    ),
    "SIGSEGV": "a crash in native code (TensorFlow, TFLite or a library they load)",
    "SIGBUS": "a crash in native code (TensorFlow, TFLite or a library they load)",
    "SIGILL": "native code used an instruction this CPU lacks (a build for another CPU?)",
    "SIGFPE": "a crash in native code (an arithmetic fault)",
    "SIGABRT": "native code aborted (a failed check in TensorFlow or TFLite?)",
    "SIGTERM": "something asked it to stop",
}

# Spawning swaps this process's stderr and environment for a moment: one spawn at a time.
_SPAWN_LOCK = threading.Lock()


# --- worker processes that say how they died --------------------------------------------------


class _StderrTail:
    """Reads a worker's stderr from a pipe: passes it on, and keeps its last bytes."""

    def __init__(self, read_fd: int, forward_fd: int | None) -> None:
        self._read_fd, self._forward_fd = read_fd, forward_fd
        self._data = bytearray()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name="zq-worker-stderr", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while chunk := os.read(self._read_fd, 65_536):
                with self._lock:
                    self._data += chunk
                    del self._data[:-_TAIL_BYTES]
                if self._forward_fd is not None:
                    try:
                        _write_all(self._forward_fd, chunk)
                    except OSError:  # our stderr is gone: keep reading, so the worker never blocks
                        self._forward_fd = None
        finally:
            os.close(self._read_fd)
            if self._forward_fd is not None:
                os.close(self._forward_fd)

    def lines(self, wait: float = 2.0) -> list[str]:
        """The lines worth quoting (see :func:`_quoted_lines`), once the worker's end of the
        pipe closed (or after ``wait`` s)."""
        self._thread.join(wait)  # a grandchild may hold the pipe open: don't wait for ever
        with self._lock:
            text = bytes(self._data).decode("utf-8", errors="replace")
        return _quoted_lines(text)


def _quoted_lines(text: str) -> list[str]:
    """The lines of a dead worker's stderr that say why it died.

    TensorFlow's start-up chatter is dropped. When faulthandler reported a fatal signal, its
    report is quoted from the top (innermost Python frame first), with runs of frames inside
    one library shortened to where the run entered it and where it was, and with the lines
    written just before it (glibc's "double free or corruption", a TensorFlow "Check
    failed"): at most :data:`_CRASH_REPORT_LINES` lines. Otherwise the last
    :data:`_TAIL_LINES` lines (a Python traceback ends with its exception).
    """
    lines = [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not _STDERR_NOISE.match(line)
    ]
    starts = [i for i, line in enumerate(lines) if line.startswith(_FAULT_HEADER)]
    if not starts:
        return lines[-_TAIL_LINES:]
    start = starts[-1]
    before = lines[max(0, start - 2) : start]
    report = _shortened_frames(
        [
            line
            for line in lines[start:]
            if not line.startswith("Extension modules:") and not _MACHINERY_FRAME.search(line)
        ]
    )
    room = _CRASH_REPORT_LINES - len(before)
    if len(report) > room:
        report = [*report[: room - 1], "  ..."]
    return before + report


def _shortened_frames(report: list[str]) -> list[str]:
    """``report`` with each run of 3+ frames in one installed library cut to its first and
    last frame and a line saying how many were left out (TensorFlow's eager machinery alone
    is 9 frames between the crash and the Keras call that led to it)."""
    out: list[str] = []
    run: list[str] = []
    run_library = None

    def flush() -> None:
        if len(run) > 2:
            out.extend([run[0], f"  ... {len(run) - 2} more frame(s) in {run_library}", run[-1]])
        else:
            out.extend(run)
        run.clear()

    for line in report:
        match = _LIBRARY_FRAME.search(line)
        library = match.group(1) if match else None
        if library is None or library != run_library:
            flush()
        run_library = library
        if library is None:
            out.append(line)
        else:
            run.append(line)
    flush()
    return out


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker started with ``env`` added and its stderr read through a pipe; with
    ``import_main`` False it does not run the caller's main script again."""

    env: dict[str, str]
    import_main: bool = True
    stderr_tail: _StderrTail | None = None

    def start(self) -> None:
        with _SPAWN_LOCK:
            _ensure_resource_tracker()  # started now, it would inherit the swapped stderr
            main = contextlib.nullcontext() if self.import_main else _main_not_imported()
            try:
                forward_fd = os.dup(2)  # the real stderr, where the worker's lines go on to
            except OSError:  # no stderr at all (a daemon): nothing to read or pass on
                with _environment(self.env), main:
                    super().start()
                return
            read_fd, write_fd = os.pipe()
            try:
                with _environment(self.env), _stderr_for_children(write_fd), main:
                    super().start()
            except BaseException:
                os.close(read_fd)
                os.close(forward_fd)
                raise
            finally:
                os.close(write_fd)  # the worker holds its own copy
        self.stderr_tail = _StderrTail(read_fd, forward_fd)

    def end_reason(self) -> str:
        """``was killed by SIGKILL (signal 9): <hint>``, ``exited with code 1``, ..."""
        code = self.exitcode
        if code is None:
            return "is still running"
        if code >= 0:
            return f"exited with code {code}"
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = _SIGNAL_HINTS.get(name)
        return f"was killed by {name} (signal {-code})" + (f": {hint}" if hint else "")

    def summary(self, others: int = 0) -> str:
        """``process 123 <end_reason>``; ``others``: how many more workers ended the same way."""
        text = f"process {self.pid} {self.end_reason()}"
        if others:
            text += f" (and {others} more worker(s) the same way)"
        return text

    def stderr_quote(self) -> str:
        """What the worker wrote to stderr that says why it died, indented; "" if nothing."""
        lines = self.stderr_tail.lines() if self.stderr_tail is not None else []
        return textwrap.indent("\n".join(lines), "    | ") if lines else ""

    def describe_end(self, others: int = 0) -> str:
        """``process 123 <end_reason>; its last lines on stderr: ...``."""
        quote = self.stderr_quote()
        summary = self.summary(others)
        return f"{summary}; its last lines on stderr:\n{quote}" if quote else summary


class _WorkerContext(multiprocessing.context.SpawnContext):
    """The spawn context, making :class:`_WorkerProcess` workers and remembering them."""

    def __init__(self, env: dict[str, str], *, import_main: bool = True) -> None:
        super().__init__()
        self.env = env
        self.import_main = import_main
        self.processes: list[_WorkerProcess] = []

    def Process(self, *args: Any, **kwargs: Any) -> _WorkerProcess:  # type: ignore[override]  # noqa: N802 - mp's name
        process = _WorkerProcess(*args, **kwargs)
        process.env = self.env
        process.import_main = self.import_main
        self.processes.append(process)
        return process


def _ensure_resource_tracker() -> None:
    try:
        from multiprocessing import resource_tracker
    except ImportError:  # pragma: no cover - Windows has none
        return
    resource_tracker.ensure_running()


@contextlib.contextmanager
def _main_not_imported() -> Iterator[None]:
    """A child spawned in the block does not run the caller's main script again.

    ``spawn`` tells each child to import the parent's ``__main__`` (so functions defined there
    can be unpickled); a script without an ``if __name__ == "__main__":`` guard then runs
    again in every worker, and fails there when it starts workers of its own. Dropping those
    two entries from the child's preparation data skips that; the rest (``sys.path``, the
    working directory) is kept. Only called under :data:`_SPAWN_LOCK`.
    """
    from multiprocessing import spawn

    prepare = spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data: dict[str, Any] = prepare(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    spawn.get_preparation_data = without_main
    try:
        yield
    finally:
        spawn.get_preparation_data = prepare


@contextlib.contextmanager
def _environment(extra: dict[str, str]) -> Iterator[None]:
    """``extra`` in ``os.environ`` for the block (a spawned child copies it at start)."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _stderr_for_children(fd: int) -> Iterator[None]:
    """File descriptor 2 is ``fd`` for the block, so a child started in it writes there.

    Only children inherit descriptors at start, so this is how a spawned worker's stderr
    reaches a pipe of ours; this process's own stderr is put back right after.
    """
    with contextlib.suppress(Exception):
        sys.stderr.flush()  # what we wrote before belongs to our stderr, not the worker's
    saved = os.dup(2)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _zenml_worker_env() -> dict[str, str]:
    """``ZENML_CUSTOM_SOURCE_ROOT`` for the workers: the source root ZenML uses here.

    Only when ZenML is loaded in this process (without it, the caller's main script has no
    ZenML steps to resolve) and the variable is not set already (the workers inherit it).
    """
    if os.environ.get(_SOURCE_ROOT_VAR):
        return {}
    source_utils = sys.modules.get("zenml.utils.source_utils")
    if source_utils is None:
        return {}
    try:
        root = source_utils.get_source_root()
    except Exception:  # noqa: BLE001 - no root here either: the main script has no file,
        return {}  # so the workers do not import it again
    return {_SOURCE_ROOT_VAR: str(root)}


def onednn_enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether TensorFlow in a worker started with ``environ`` uses its oneDNN kernels
    (its default on x86; ``TF_ENABLE_ONEDNN_OPTS`` set to 0 or false turns them off)."""
    value = (os.environ if environ is None else environ).get("TF_ENABLE_ONEDNN_OPTS", "1")
    return value.strip().lower() not in ("0", "false")


def _crash_report_env() -> dict[str, str]:
    """:data:`_CRASH_REPORT_ENV`, less what the caller set itself (the workers inherit that)."""
    return {name: value for name, value in _CRASH_REPORT_ENV.items() if name not in os.environ}


def _describe_ends(processes: Sequence[_WorkerProcess]) -> str:
    """How the workers in ``processes`` ended: once per reason, quoting the first of each."""
    by_reason: dict[str, list[_WorkerProcess]] = {}
    for process in processes:
        by_reason.setdefault(process.end_reason(), []).append(process)
    return "; ".join(group[0].describe_end(len(group) - 1) for group in by_reason.values())


def _worker_died(
    how: str, quote: str = "", *, again: bool = False, without_onednn: bool = False
) -> str:
    """The reason of a trial whose worker died: how, what it wrote to stderr (``quote``)."""
    retry = (
        " The worker had run other trials first, so this trial was run once more, alone in a "
        "fresh worker, and that one died too: the crash is this trial's own."
        if again
        else ""
    )
    if without_onednn:
        retry += (
            " Its last run, alone in a worker with TensorFlow's oneDNN kernels off "
            "(TF_ENABLE_ONEDNN_OPTS=0), died as well."
        )
    text = (
        f"the worker process running this trial died: {how}.{retry} The pool was restarted and "
        "the other trials were not affected"
    )
    return f"{text}. Its last lines on stderr:\n{quote}" if quote else text


def _workers_keep_dying(how: str) -> str:
    return (
        "worker processes died twice before this trial finished, while no trial was running "
        f"(at start-up?): {how}{_main_guard_hint(how)}"
    )


def _main_guard_hint(how: str) -> str:
    """What to do when workers died running the caller's unguarded main script again."""
    if "bootstrapping phase" not in how:  # multiprocessing's own words for this case
        return ""
    return (
        ". The script that started the pool runs again in each worker: put its top-level code "
        'under `if __name__ == "__main__":`, or use an executor without worker processes'
    )


# --- local process pool -----------------------------------------------------------------------

# One worker's state, set by _pool_init: the trial function and context, or why they could not
# be loaded, and the worker's slot in the pool's "running", "pids" and "done" arrays.
_WORKER: dict[str, Any] = {}


def _pool_init(payload: Any, threads: int, ready: Any, running: Any, pids: Any, done: Any) -> None:
    """The pool worker's initializer: thread limits first, then the context, then "ready".

    ``payload`` is the pickled ``(fn, context)`` in shared memory (inherited at spawn, not
    copied through a pipe); ``ready`` counts initialised workers and hands out slots;
    ``running[slot]`` holds the id of the task this worker is running (-1 when idle),
    ``pids[slot]`` its process id and ``done[slot]`` how many tasks it finished, so the parent
    can tell which task was in flight when a worker died, which process it was, and whether
    that process had run other tasks before (whose leftovers may have been what crashed).
    """
    _limit_native_threads(threads)
    _exit_when_orphaned(os.getppid())
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
        _WORKER["slot"] = slot = ready.value
        ready.value += 1
    if slot < len(pids):
        pids[slot] = os.getpid()
    _WORKER.update(running=running, done=done)


#: How often a worker checks that the process that started it is still there.
ORPHAN_CHECK_SECONDS = 1.0


def _exit_when_orphaned(parent: int) -> None:
    """End this worker soon after its parent is gone, whatever the worker is running.

    A search killed from outside (SIGTERM, SIGKILL, an out-of-memory kill) cannot shut its pool
    down, and its workers would go on fine-tuning trials nobody reads, holding the cores and
    memory. When the parent dies, the worker is re-parented, so its parent pid changes: a
    daemon thread polls for that. Polling, not ``PR_SET_PDEATHSIG``, because that signal
    follows the *thread* that spawned the worker, and the pool's spawning thread may end
    before the search does.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        # stderr is a pipe the dead parent read: writing to it may fail, exiting must not.
        with contextlib.suppress(OSError):
            _write_all(2, f"zenml-quant worker {os.getpid()}: its search ended; exiting\n".encode())
        os._exit(1)

    threading.Thread(target=watch, name="zenml-quant-orphan-check", daemon=True).start()


def _pool_run(task_id: int, task: Any) -> tuple[bool, Any]:
    running, done, slot = _WORKER["running"], _WORKER["done"], _WORKER["slot"]
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
            done[slot] += 1


def _pool_ping() -> int:
    return os.getpid()


class _Pool:
    """One ``concurrent.futures`` pool and its shared counters; replaced when it breaks."""

    def __init__(
        self,
        workers: int,
        threads: int,
        payload: Any,
        *,
        prestart: bool,
        import_main: bool,
        env: dict[str, str] | None = None,
    ) -> None:
        self.context = _WorkerContext(
            _zenml_worker_env() | _crash_report_env() | (env or {}), import_main=import_main
        )
        self.workers = workers
        self.ready = self.context.Value("i", 0)
        self.running = self.context.RawArray(ctypes.c_longlong, [-1] * workers)
        self.pids = self.context.RawArray(ctypes.c_longlong, [0] * workers)
        self.done = self.context.RawArray(ctypes.c_longlong, [0] * workers)
        self.executor = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self.context,
            initializer=_pool_init,
            initargs=(payload, threads, self.ready, self.running, self.pids, self.done),
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

    def in_flight(self) -> dict[int, int]:
        """``{task id: pid}`` of the tasks the workers were running."""
        return {task_id: int(pid) for task_id, pid in zip(self.running, self.pids) if task_id >= 0}

    def tasks_done(self, pid: int) -> int:
        """How many tasks the worker with process id ``pid`` finished (0 if unknown)."""
        return next((int(n) for p, n in zip(self.pids, self.done) if p == pid and pid > 0), 0)

    @property
    def used(self) -> bool:
        """Whether any worker of this pool has finished a task."""
        return any(self.done)

    def process(self, pid: int) -> _WorkerProcess | None:
        return next((p for p in self.context.processes if p.pid == pid), None)

    def describe_deaths(self) -> str:
        """How the workers that died on their own ended (call after :meth:`shutdown`).

        When one worker dies, ``concurrent.futures`` ends the others with SIGTERM; those are
        left out unless nothing else ended.
        """
        ended = [p for p in self.context.processes if p.exitcode not in (None, 0)]
        own = [p for p in ended if p.exitcode != -signal.SIGTERM] or ended
        return _describe_ends(own) if own else "no worker process ended with an error"

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        for process in self.context.processes:
            process.join(5)  # settled exit codes for describe_deaths


@dataclass
class _Crash:
    """What a broken pool left: the unfinished tasks, the suspects and how workers died."""

    unfinished: list[int]
    suspects: list[int]
    #: suspect index -> how its worker ended, and what it wrote to stderr
    how: dict[int, tuple[str, str]] = field(default_factory=dict)
    other: str = ""  # the deaths outside any trial
    #: Suspects whose worker had finished other tasks before this one.
    after_others: set[int] = field(default_factory=set)
    #: Suspects whose worker lived but whose result reported native trouble: that result,
    #: which stands if the trouble follows the task to a fresh worker and past oneDNN.
    results: dict[int, Any] = field(default_factory=dict)


class ProcessPoolExecutor(_ExecutorBase):
    """Run the trials in ``workers`` local processes, each limited to ``threads_per_worker``.

    The processes are ``spawn``-ed (fork and TensorFlow deadlock) and get the caller's
    ``sys.path``, so whatever the caller can import, they can; they find ZenML's source root
    from any working directory (see the module docstring). Like any ``spawn``-ed process they
    run the caller's main script again (as ``__mp_main__``) so that functions and classes
    defined there can be unpickled; with ``import_main=False`` they do not, so a script
    without an ``if __name__ == "__main__":`` guard works, but ``fn`` and the context must
    then come from importable modules. ``(fn, context)`` is pickled
    once into shared memory; each worker's initializer sets ``OMP_NUM_THREADS``,
    ``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS`` and TensorFlow's thread counts, then
    unpickles it once. :meth:`start` launches the workers without waiting for them (they take a
    few seconds to import TensorFlow); :meth:`warm_up` waits. A pool replaced after a crash
    starts its workers as the tasks need them.

    If a worker dies the pool breaks: every trial that was running is suspect. A lone suspect
    is the culprit and gets ``on_error`` with how its worker ended (exit code or signal, and
    what it wrote to stderr: the Python frames of a native crash); trials not yet started are
    resubmitted to a fresh pool; several suspects are run again one at a time once the others
    are done (so the culprit dies alone, and a trial that only died of memory pressure next
    to another gets a second chance). A lone suspect whose worker had run other trials first
    is run once more, alone in a fresh worker, before it is blamed: a native crash can come
    from what an earlier trial left behind (a corrupted heap, a dangling pointer) and only
    fire during a later one. Every trial runs at most a few times, so a crash that follows a
    trial to every worker, or kills every worker at start-up, ends in ``on_error`` results,
    never in a loop.
    """

    def __init__(
        self, *, workers: int = 2, threads_per_worker: int = 1, import_main: bool = True
    ) -> None:
        self.workers = _check_count("workers", workers)
        self.threads_per_worker = _check_count("threads_per_worker", threads_per_worker)
        if not isinstance(import_main, bool):
            raise InvalidOptionError(f"import_main must be True or False, got {import_main!r}")
        self.import_main = import_main
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
        #: Added to every worker's environment: WITHOUT_ONEDNN once a trial proved oneDNN's
        #: kernels crash on this search's models.
        self._env: dict[str, str] = {}
        self._task_ids = itertools.count()
        self._native_failure: NativeFailureFn | None = None

    def start(
        self,
        fn: TrialFn,
        context: Any,
        *,
        on_error: ErrorFn,
        native_failure: NativeFailureFn | None = None,
    ) -> None:
        """Start the workers. A result for which ``native_failure`` gives a reason is handled
        like a crash of its worker: the workers are replaced and the task runs again alone in a
        fresh one, then without oneDNN (MobileNetV2's fine-tuning raised TensorFlow's
        ``AbortedError`` in one worker for several trials running, between two native crashes,
        and ran clean once the workers were new)."""
        self._check_start(fn, on_error)
        if native_failure is not None and not callable(native_failure):
            raise InvalidOptionError(
                f"native_failure must be a callable (result) -> reason or None, got "
                f"{native_failure!r}"
            )
        blob = _pickle_payload(fn, context, pickle.dumps)
        payload = multiprocessing.get_context("spawn").RawArray(ctypes.c_ubyte, len(blob))
        ctypes.memmove(payload, blob, len(blob))
        self._payload, self._fn, self._on_error = payload, fn, on_error
        self._native_failure = native_failure
        self._pool = self._new_pool(prestart=True)

    def _live_pool(self) -> _Pool:
        """The pool; a fresh one (whose workers start as tasks need them) after a crash."""
        if self._pool is None:
            self._pool = self._new_pool(prestart=False)
        return self._pool

    def _new_pool(self, *, prestart: bool, env: dict[str, str] | None = None) -> _Pool:
        return _Pool(
            self.workers,
            self.threads_per_worker,
            self._payload,
            prestart=prestart,
            import_main=self.import_main,
            env=self._env | (env or {}),
        )

    @property
    def onednn_off(self) -> bool:
        """Whether the workers run with TensorFlow's oneDNN kernels off (by the caller's
        environment, or because a trial crashed in them and ran clean without)."""
        return not onednn_enabled(os.environ | self._env)

    def _discard_pool(self) -> str:
        """Shut the pool down; how its workers that died ended ("" if there was no pool)."""
        if self._pool is None:
            return ""
        pool, self._pool = self._pool, None
        pool.shutdown()
        return pool.describe_deaths()

    def warm_up(self, timeout: float = 300.0) -> None:
        """Wait until every worker has started, set its threads and loaded the context."""
        self._check_started()
        how = ""
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
            how = self._discard_pool()  # a worker died while starting: try once more
        raise RuntimeError(
            f"worker processes die while starting: {how}{_main_guard_hint(how)}. Check that "
            "the package (and the script that started this one, which each worker imports "
            "again unless import_main=False) imports in a fresh process"
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
        retried: set[int] = set()  # culprits run again alone in a fresh worker
        plain: set[int] = set()  # culprits run alone in a worker without oneDNN
        while todo or isolate:
            # A run without oneDNN goes first: if it holds, the others run without it too,
            # instead of each crashing in it first.
            probe = next((index for index in isolate if index in plain), None)
            if probe is not None:
                isolate.remove(probe)
                batch = [probe]
                self._discard_pool()
                self._pool = self._new_pool(prestart=False, env=WITHOUT_ONEDNN)
            elif todo:
                batch, todo = todo, []
            else:
                batch = [isolate.pop(0)]
                if batch[0] in retried:
                    self._fresh_pool()
            crash = self._run_batch(tasks, batch, finish, on_error)
            if batch[0] in plain and not self.onednn_off:
                if crash is None:  # oneDNN was the cause: keep this pool for the rest
                    self._env = self._env | WITHOUT_ONEDNN
                    _LOG.warning(
                        "task %d of %d ran to the end with TensorFlow's oneDNN kernels off "
                        "after crashing with them on: the rest of this search runs without "
                        "them too (slower kernels instead of crashes)",
                        batch[0] + 1,
                        len(tasks),
                    )
                else:
                    self._discard_pool()  # not oneDNN's fault: the default kernels again
            if crash is None:
                continue
            if len(crash.suspects) == 1:
                culprit = crash.suspects[0]
                how, quote = crash.how.get(culprit) or (crash.other, "")
                if culprit in crash.after_others and culprit not in retried:
                    _LOG.warning(
                        "the worker behind task %d of %d in this batch had run other trials "
                        "before it, or may be corrupted: running it again alone in a fresh "
                        "worker before blaming it",
                        culprit + 1,
                        len(tasks),
                    )
                    retried.add(culprit)
                    isolate.append(culprit)
                elif culprit not in plain and not self.onednn_off:
                    _LOG.warning(
                        "task %d of %d failed natively again: running it once more alone, with "
                        "TensorFlow's oneDNN kernels off (TF_ENABLE_ONEDNN_OPTS=0), before "
                        "blaming it",
                        culprit + 1,
                        len(tasks),
                    )
                    plain.add(culprit)
                    isolate.insert(0, culprit)
                elif culprit in crash.results:  # the task's own failure, wherever it runs
                    finish(culprit, crash.results[culprit])
                else:
                    message = _worker_died(
                        how, quote, again=culprit in retried, without_onednn=culprit in plain
                    )
                    finish(culprit, on_error(tasks[culprit], message))
            else:
                isolate.extend(crash.suspects)
            for index in crash.unfinished:
                if index in crash.suspects:
                    continue
                if not crash.suspects:  # nobody to blame: a death outside any trial
                    strikes[index] += 1
                if strikes[index] >= 2:
                    finish(index, on_error(tasks[index], _workers_keep_dying(crash.other)))
                else:
                    todo.append(index)
            todo.sort()
        return results

    def _fresh_pool(self) -> None:
        """Replace the pool if any of its workers has run a task already."""
        if self._pool is not None and self._pool.used:
            self._discard_pool()

    def _run_batch(
        self,
        tasks: list[Any],
        batch: list[int],
        finish: Callable[[int, Any], None],
        on_error: ErrorFn,
    ) -> _Crash | None:
        """Run ``batch``; None if the pool held, else what the crash left."""
        for attempt in range(2):
            pool = self._live_pool()
            futures: dict[cf.Future[Any], tuple[int, int]] = {}
            try:
                for index in batch:
                    task_id = next(self._task_ids)
                    future = pool.executor.submit(_pool_run, task_id, tasks[index])
                    futures[future] = (task_id, index)
                break
            except BrokenProcessPool:
                # A worker died while idle (or starting): nothing of ours ran, start afresh;
                # if the fresh pool breaks as well, that is a crash outside any trial (a
                # strike for each task, so workers that keep dying cannot loop for ever).
                for future in futures:
                    future.cancel()
                how = self._discard_pool()
                _LOG.warning("a worker process died before any trial ran: %s", how)
                if attempt == 1:
                    return _Crash(unfinished=list(batch), suspects=[], other=how)
        finished: set[int] = set()
        troubled: dict[int, tuple[str, Any]] = {}  # index -> (reason, result): native trouble
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
                reason = self._native_failure(value) if ok and self._native_failure else None
                if reason:
                    troubled[index] = (reason, value)
                    continue
                finished.add(index)
                finish(index, value if ok else on_error(tasks[index], value))
        finally:
            for future in futures:
                future.cancel()  # only if the caller's callback raised: drop what is queued
        if not broken:
            if not troubled:
                return None
            # The workers lived, but native code went wrong in one of them: replace them all
            # (which one is not known here) and run the task again as if it had crashed.
            self._discard_pool()
            _LOG.warning(
                "%d trial(s) reported native trouble (%s): replacing the worker processes",
                len(troubled),
                "; ".join(reason for reason, _ in troubled.values()),
            )
            return _Crash(
                unfinished=sorted(troubled),
                suspects=sorted(troubled),
                how={i: (f"it reported {reason}", "") for i, (reason, _) in troubled.items()},
                after_others=set(troubled),
                results={i: value for i, (_, value) in troubled.items()},
            )
        # Let the pool finish terminating its workers, so "running" is a settled snapshot and
        # the exit codes are known.
        pool.shutdown()
        in_flight = pool.in_flight()
        self._pool = None
        crash = _Crash(
            unfinished=[index for _, index in futures.values() if index not in finished],
            suspects=sorted(
                index
                for task_id, index in futures.values()
                if task_id in in_flight and index not in finished
            ),
            other=pool.describe_deaths(),
        )
        for task_id, index in futures.values():
            pid = in_flight.get(task_id, -1)
            process = pool.process(pid)
            if index in crash.suspects and process is not None:
                crash.how[index] = (process.summary(), process.stderr_quote())
            if index in crash.suspects and pool.tasks_done(pid) > 0:
                crash.after_others.add(index)
        _LOG.warning(
            "a worker process died; %d trial(s) were running, restarting the pool: %s",
            len(crash.suspects),
            crash.other,
        )
        return crash

    def close(self) -> None:
        self._discard_pool()
        self._payload = self._fn = self._on_error = None
