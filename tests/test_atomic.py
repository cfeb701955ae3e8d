"""Atomic file writes: whole or not at all, and never a stray temporary file."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from zenml_quant import _atomic
from zenml_quant._atomic import atomic_write_bytes, atomic_write_text


def test_round_trip_and_nothing_else_left(tmp_path):
    target = tmp_path / "model.tflite"
    data = bytes(range(256)) * 100
    assert atomic_write_bytes(target, data) == target
    assert target.read_bytes() == data
    text_target = tmp_path / "summary.json"
    assert atomic_write_text(str(text_target), '{"ok": "grün"}') == text_target
    assert text_target.read_text(encoding="utf-8") == '{"ok": "grün"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite", "summary.json"]


def test_new_file_gets_the_umask_permissions_and_a_replaced_one_keeps_its_own(tmp_path):
    umask = os.umask(0o022)
    try:
        fresh = atomic_write_text(tmp_path / "fresh.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0600
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_error_while_writing_leaves_neither_target_nor_temporary(tmp_path, monkeypatch):
    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "result.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_content(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old and complete")

    def broken_replace(src, dst):
        raise OSError("rename refused")

    monkeypatch.setattr(_atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename refused"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old and complete"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_interrupt_while_writing_cleans_up_too(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(_atomic.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_wrong_types_are_refused(tmp_path):
    with pytest.raises(TypeError, match="needs bytes"):
        atomic_write_bytes(tmp_path / "a", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs a str"):
        atomic_write_text(tmp_path / "a", b"bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_raises_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "no" / "such" / "folder.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_a_process_killed_mid_write_leaves_the_old_file_and_only_a_partial(tmp_path):
    # The writer is killed while its bytes are on the way (stopped inside write): the final
    # name still holds the old content, and what is left over says it is not a result.
    target = tmp_path / "model.keras"
    target.write_bytes(b"old")
    ready = tmp_path / "writing"
    code = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from zenml_quant import _atomic

        real_fdopen = os.fdopen

        class Slow:
            def __init__(self, fd):
                self.file = real_fdopen(fd, "wb")
            def __enter__(self):
                return self
            def __exit__(self, *exc):
                self.file.close()
            def write(self, data):
                self.file.write(data[:10])
                self.file.flush()
                Path({str(ready)!r}).touch()
                time.sleep(60)
            def flush(self):
                pass
            def fileno(self):
                return self.file.fileno()

        _atomic.os.fdopen = lambda fd, mode: Slow(fd)
        _atomic.atomic_write_bytes({str(target)!r}, b"new content" * 1000)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            import time

            time.sleep(0.05)
        assert ready.exists(), "the writer never started writing"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert target.read_bytes() == b"old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("model.keras", "writing")]
    assert len(leftovers) == 1
    assert leftovers[0].startswith(".model.keras.") and leftovers[0].endswith(".partial")
