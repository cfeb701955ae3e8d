"""Safe starts and honest ends for the command line's pipeline runs.

Two things the CLI needs from ZenML that ZenML does not do by itself:

- :func:`initialize_store`: several ``zenml-quant`` commands started together on a fresh local
  (SQLite) store race to create and migrate it, and all but one fail with "database has never
  been migrated". One process at a time initialises the store, under an exclusive file lock in
  ZenML's config folder; the others then find it ready.
- :func:`tracked_run` and :func:`reap_stale_runs`: a pipeline run on the local orchestrator
  lives in the process that started it. If that process is killed (Ctrl-C twice, the OOM
  killer, a closed terminal), the run and its running step stay "running" in the store
  forever. Each run is recorded, with its process id, in a small JSON file while it runs; the
  next command marks the runs of processes that are gone as failed, and says so.

Records live in ``<ZenML config folder>/zenml-quant-runs/``, so each ZenML config (and so
each local store) has its own. The records of other hosts (a config folder shared over the
network) are left alone: their process ids mean nothing here.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text

__all__ = [
    "RUNS_FOLDER",
    "RunRecord",
    "initialize_store",
    "reap_stale_runs",
    "read_run_records",
    "runs_folder",
    "tracked_run",
]

RUNS_FOLDER = "zenml-quant-runs"
_LOCK_FILE = "zenml-quant-store.lock"


@dataclass(frozen=True)
class RunRecord:
    """What :func:`tracked_run` writes down about a run while it runs."""

    run_name: str
    pid: int
    host: str
    started: str  # ISO 8601, UTC
    path: Path | None = None  # the record's file, when read from one


def config_directory() -> Path:
    """ZenML's global config folder (``ZENML_CONFIG_PATH`` if set), without loading its config.

    ``GlobalConfiguration()`` writes its config file on first use, which is itself part of what
    must happen under the lock; ZenML's own helper only reads the environment.
    """
    from zenml.utils.io_utils import get_global_config_directory

    return Path(get_global_config_directory())


def runs_folder() -> Path:
    """Where the records of running CLI runs are kept (created if missing)."""
    folder = config_directory() / RUNS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (blocking) for the ``with`` block.

    The kernel drops the lock when the process dies, so a killed process never leaves the
    store locked. Where ``fcntl`` is missing (Windows) there is no lock: commands started
    together there may still race on a fresh store.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def initialize_store() -> None:
    """Create and migrate ZenML's store once, even if several processes start together.

    Takes an exclusive lock on a file in ZenML's config folder, then opens the store (which
    creates the SQLite database, migrates it and makes the default project and stack on first
    use) and lists the stacks, so that all of that is done before the lock is released. A
    store that is already set up costs one short query. A remote ZenML server needs no lock
    but takes none of harm from it.
    """
    with _exclusive_lock(config_directory() / _LOCK_FILE):
        from zenml.client import Client

        client = Client()
        client.zen_store.list_stacks(_stack_filter())
        client.active_stack_model  # noqa: B018 - creates and activates the default stack


def _stack_filter() -> Any:
    from zenml.models import StackFilter

    return StackFilter(size=1)


@contextlib.contextmanager
def tracked_run(run_name: str) -> Iterator[RunRecord]:
    """Record that this process is running the pipeline run ``run_name``, for the block.

    The record (``{run_name, pid, host, started}``, written atomically) is removed when the
    block ends, normally or by an exception. If the process dies instead, the record stays,
    and the next :func:`reap_stale_runs` marks the run failed.
    """
    if not isinstance(run_name, str) or not run_name.strip():
        raise ValueError(f"run_name must be a non-empty string, got {run_name!r}")
    record = RunRecord(
        run_name=run_name,
        pid=os.getpid(),
        host=socket.gethostname(),
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    # The pid makes the file name unique per process; the uuid, per block in one process.
    path = runs_folder() / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    payload = {k: getattr(record, k) for k in ("run_name", "pid", "host", "started")}
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    try:
        yield RunRecord(**payload, path=path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_run_records() -> list[RunRecord]:
    """Every run record in :func:`runs_folder`, oldest first; unreadable files are skipped.

    Temporary ``.partial`` files of a write in progress are not records and are not read.
    """
    records = []
    for path in runs_folder().glob("*.json"):
        try:
            data = json.loads(path.read_text())
            records.append(
                RunRecord(
                    run_name=str(data["run_name"]),
                    pid=int(data["pid"]),
                    host=str(data["host"]),
                    started=str(data["started"]),
                    path=path,
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # removed meanwhile by its owner, or not ours
    return sorted(records, key=lambda r: r.started)


def _process_is_gone(pid: int) -> bool:
    """True only when no process ``pid`` exists on this host.

    A process of another user answers with PermissionError: it exists, so it is not gone. A
    recycled pid makes a dead run look alive, which leaves it alone: the safe mistake.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def reap_stale_runs() -> list[str]:
    """Mark failed the runs whose process died while they ran, and say so.

    For each record of this host whose process is gone: the ZenML pipeline run of that name,
    if it is still unfinished (initializing, provisioning, running, ...), is marked failed
    along with its unfinished steps, and the record is deleted. Records of live processes, and
    of other hosts, are left alone. Returns one message per run marked failed, e.g.
    ``"run zq-search-... was left running by process 4242, which is gone: marked failed"``.
    """
    host = socket.gethostname()
    messages = []
    for record in read_run_records():
        if record.host != host or not _process_is_gone(record.pid):
            continue
        if _fail_run(record):
            messages.append(
                f"run {record.run_name} was left running by process {record.pid}, which is "
                "gone: marked failed"
            )
        if record.path is not None:
            with contextlib.suppress(FileNotFoundError):
                record.path.unlink()
    return messages


def _fail_run(record: RunRecord) -> bool:
    """Mark the run of ``record`` and its unfinished steps failed; False if nothing to do."""
    from zenml.client import Client
    from zenml.enums import ExecutionStatus
    from zenml.models import PipelineRunUpdate, StepRunUpdate
    from zenml.utils.pagination_utils import depaginate

    client = Client()
    runs = depaginate(client.list_pipeline_runs, name=f"equals:{record.run_name}")
    reason = f"the process {record.pid} running it on {record.host} died"
    failed_any = False
    for run in runs:
        if run.status.is_finished:
            continue
        # Steps first: a static pipeline's status is computed from its steps, so a run whose
        # step still says "running" would stay running.
        for step in depaginate(client.list_run_steps, pipeline_run_id=run.id):
            if not step.status.is_finished:
                client.zen_store.update_run_step(
                    step.id,
                    StepRunUpdate(status=ExecutionStatus.FAILED, end_time=_utc_now()),
                )
        # Failing a step may already have failed the run; failed -> failed is allowed, and
        # this is what records the reason.
        client.zen_store.update_run(
            run.id, PipelineRunUpdate(status=ExecutionStatus.FAILED, status_reason=reason)
        )
        failed_any = True
    return failed_any


def _utc_now() -> datetime:
    # ZenML stores naive UTC datetimes.
    return datetime.now(timezone.utc).replace(tzinfo=None)
