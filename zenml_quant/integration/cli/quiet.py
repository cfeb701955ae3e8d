"""What a command prints while it runs: by default only what the user needs, ``-v`` for all.

A run's default output is the table, the files and the decision. Three sources would bury it,
and each is quietened where it speaks:

- **ZenML's console logs** (run set-up, each step's start and end, its storage hints, the
  Docker-settings notice) and the steps' own progress logs: a filter on ZenML's console handler
  lets through errors, and warnings of this plugin. The logs are still recorded with the run,
  so the dashboard keeps every line. On a terminal, one status line names the running step.
- **Native libraries writing straight to file descriptor 2** (TensorFlow's start-up lines
  before its logging is set up, the TFLite converter's ``fully_quantize`` notice, the
  interpreter's XNNPACK notice): no Python setting reaches them, so while the command runs,
  descriptor 2 goes through a pipe that drops those known lines and passes everything else on.
- **Python warnings** that say nothing to the user (ZenML's CSV loader guessing at dates).

``-v`` leaves all three alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from typing import IO

__all__ = ["NOISE", "quiet_run"]

#: Lines native code writes to stderr that are never news to a user of this tool.
NOISE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] "  # absl/TSL log lines (TF start-up)
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|fully_quantize: \d, inference_type: "  # the TFLite converter's calibration notice
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    r"|INFO: Initialized TensorFlow Lite runtime\."
    r")"
)
_ACTIVE = threading.local()  # a quiet_run inside another changes nothing
_STARTED = re.compile(r"^Step `?(?P<step>[\w.-]+)`? has started\.")


class _ConsoleFilter(logging.Filter):
    """Passes errors, and this plugin's warnings; turns "step X has started" into a status."""

    def __init__(self, status: _Status) -> None:
        super().__init__()
        self.status = status

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.status.clear()
            return True
        if record.levelno >= logging.WARNING and record.name.startswith("zenml_quant"):
            self.status.clear()
            return True
        started = _STARTED.match(record.getMessage())
        if started:
            self.status.show(f"running step {started['step']} ...")
        return False


class _Status:
    """One line on a terminal, rewritten in place; nothing when output is piped."""

    def __init__(self, stream: IO[str] | None) -> None:
        self.stream = stream
        self.live = stream is not None and stream.isatty()
        self.shown = False
        self.start = time.monotonic()

    def show(self, text: str) -> None:
        if self.live and self.stream is not None:
            elapsed = time.monotonic() - self.start
            self.stream.write(f"\r\x1b[2K{elapsed:5.0f} s  {text}")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        if self.shown and self.stream is not None:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self.shown = False


@contextlib.contextmanager
def _filtered_fd2() -> Iterator[IO[str] | None]:
    """Route file descriptor 2 through a pipe that drops :data:`NOISE` lines; yields the
    real stderr (for the status line, which must not wait for a newline), or None."""
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to filter
        yield None
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not NOISE.match(line.decode("utf-8", "replace")):
                    os.write(original, line)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    real = os.fdopen(os.dup(original), "w", encoding="utf-8", errors="replace")
    try:
        yield real
    finally:
        real.close()
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the thread reads to the end
        thread.join(timeout=5)
        os.close(original)


@contextlib.contextmanager
def quiet_run(verbose: bool) -> Iterator[None]:
    """Run the body with the module's quietening, unless ``verbose`` (or already quiet)."""
    if verbose or getattr(_ACTIVE, "on", False):
        yield
        return
    _ACTIVE.on = True
    try:
        with _quiet():
            yield
    finally:
        _ACTIVE.on = False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import zenml  # noqa: F401  (sets up ZenML's console handler, which gets the filter)
    from zenml.logger import ZenMLConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, ZenMLConsoleHandler)]
    with warnings.catch_warnings(), _filtered_fd2() as real_stderr:
        warnings.filterwarnings("ignore", message="Could not infer format", category=UserWarning)
        status = _Status(real_stderr)
        console_filter = _ConsoleFilter(status)
        for handler in handlers:
            handler.addFilter(console_filter)
        try:
            yield
        finally:
            status.clear()
            for handler in handlers:
                handler.removeFilter(console_filter)
