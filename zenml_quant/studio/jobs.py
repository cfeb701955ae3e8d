"""Long studio operations run one at a time on a background thread, with progress and cancel."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidOptionError, ZenmlQuantError
from ..search.trial import Cancelled

__all__ = ["MAX_PENDING", "Job", "JobQueueFull", "JobRunner"]

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"

#: Jobs queued or running at once; one more is refused (each evaluation can take minutes, so a
#: longer queue only hides that the page is far behind its user).
MAX_PENDING = 8


class JobQueueFull(ZenmlQuantError):
    """The runner already holds its limit of unfinished jobs."""


#: ``fn(progress)``: the work; ``progress(phase, fraction)`` reports and raises on cancel.
Work = Callable[[Callable[[str, "float | None"], None]], Any]


@dataclass
class Job:
    """One operation: what it is, where it is, and how it ended."""

    id: int
    kind: str
    status: str = QUEUED
    phase: str = "waiting"
    fraction: float | None = None
    result: Any = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The job for the page: status, phase, fraction, error and the result's summary."""
        elapsed = None
        if self.started is not None:
            elapsed = (self.finished or time.monotonic()) - self.started
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "phase": self.phase,
            "fraction": self.fraction,
            "error": self.error,
            "result": self.result,
            "seconds": elapsed,
        }


class JobRunner:
    """Runs submitted work in order on one thread (TensorFlow work is not run side by side)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise InvalidOptionError(f"max_pending must be an int >= 1, got {max_pending!r}.")
        self.max_pending = max_pending
        self._jobs: dict[int, Job] = {}
        self._work: dict[int, Work] = {}
        self._ids = itertools.count()
        self._queue: queue.Queue[int | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="studio-jobs", daemon=True)
        self._thread.start()

    def submit(self, kind: str, work: Work) -> Job:
        """Queue ``work``; its return value becomes the job's ``result`` (JSON-ready).

        Raises :class:`JobQueueFull` when ``max_pending`` jobs are already queued or running.
        """
        with self._lock:
            pending = sum(j.status in (QUEUED, RUNNING) for j in self._jobs.values())
            if pending >= self.max_pending:
                raise JobQueueFull(
                    f"{pending} studio jobs are already waiting or running (the limit is "
                    f"{self.max_pending}): wait for one to finish, or cancel one."
                )
            job = Job(next(self._ids), kind)
            self._jobs[job.id] = job
            self._work[job.id] = work
        self._queue.put(job.id)
        return job

    def get(self, job_id: int) -> Job:
        """The job with this id; InvalidOptionError if there is none."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise InvalidOptionError(f"There is no job {job_id}.")
        return job

    def cancel(self, job_id: int) -> Job:
        """Ask the job to stop: at once if queued, at its next progress report if running."""
        job = self.get(job_id)
        job.cancel.set()
        if job.status == QUEUED:
            job.status, job.phase = CANCELLED, "cancelled"
        return job

    def busy(self) -> bool:
        return self.active() is not None

    def active(self) -> int | None:
        """The id of the oldest job queued or running, or None."""
        with self._lock:
            return next((j.id for j in self._jobs.values() if j.status in (QUEUED, RUNNING)), None)

    def close(self) -> None:
        """Stop: queued jobs are cancelled, a running one at its next progress report."""
        with self._lock:
            unfinished = [j.id for j in self._jobs.values() if j.status in (QUEUED, RUNNING)]
        for job_id in unfinished:
            self.cancel(job_id)
        self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self.get(job_id)
            with self._lock:
                work = self._work.pop(job_id)
            if job.cancel.is_set():
                continue
            self._run(job, work)

    def _run(self, job: Job, work: Work) -> None:
        def progress(phase: str, fraction: float | None) -> None:
            if job.cancel.is_set():
                raise Cancelled()
            job.phase, job.fraction = phase, fraction

        job.status, job.started = RUNNING, time.monotonic()
        try:
            job.result = work(progress)
            job.status, job.phase, job.fraction = DONE, "done", 1.0
        except Cancelled:
            job.status, job.phase = CANCELLED, "cancelled"
        except Exception as exc:  # shown on the page; the server keeps running
            logger.warning("studio job %d (%s) failed", job.id, job.kind, exc_info=True)
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            job.status, job.phase = FAILED, "failed"
            job.error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        finally:
            job.finished = time.monotonic()
