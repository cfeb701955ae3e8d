"""Write a file so that it either appears whole under its name or not at all.

The bytes go to a hidden temporary file in the same folder (``.<name>.<random>.partial``),
are flushed and fsync-ed, and only then renamed onto the target with :func:`os.replace`, which
is atomic on POSIX and Windows when both names are on one file system (hence the same folder).
A process killed mid-write leaves at most a ``.partial`` file, never a truncated result under
the final name, and an existing file keeps its old content until the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text"]

_PARTIAL_SUFFIX = ".partial"


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    The parent folder must exist. A new file gets the usual permissions (0666 minus the
    umask), a replaced file keeps its own. On any error the temporary file is removed, the
    target is left as it was, and the error is raised again.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    target = Path(path)
    fd, tmp = _create_partial(target)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the bytes reach the disk before the name points at them
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:  # KeyboardInterrupt too: never leave the temporary file behind
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def _create_partial(target: Path) -> tuple[int, Path]:
    """A new, empty, hidden file next to ``target``: its descriptor and path.

    Created with mode 0666 so the umask applies as for any new file (mkstemp would make it
    0600, and reading the umask means briefly changing it for every thread).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}{_PARTIAL_SUFFIX}"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {target}")


def _fsync_folder(folder: Path) -> None:
    # The rename lives in the folder's entry list: sync it too, so it survives a power cut.
    # Folders cannot be opened on every platform (Windows), and that is not worth failing for.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
