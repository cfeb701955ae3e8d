"""Checks every entry point shares: finite numbers in a range, integers, writable folders.

Pure Python (no TensorFlow, no ZenML), so the CLI can check its options before importing either.
Each check raises :class:`InvalidOptionError` whose message names the option, the value and what
would be accepted.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

from .errors import InvalidOptionError

__all__ = [
    "as_finite",
    "check_integer",
    "check_number",
    "check_writable_dir",
    "check_writable_file",
]


def as_finite(value: object) -> float | None:
    """``value`` as a float if it is a real, finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    hint: str = "",
) -> float:
    """``value`` as a float, or :class:`InvalidOptionError` when it is not a finite number in
    the range (``minimum``/``maximum`` bounds, each inclusive unless told otherwise)."""
    number = as_finite(value)
    low = "" if minimum is None else f"{'>=' if min_inclusive else '>'} {minimum:g}"
    high = "" if maximum is None else f"{'<=' if max_inclusive else '<'} {maximum:g}"
    wanted = " and ".join(p for p in (low, high) if p) or "finite"
    suffix = f" {hint}" if hint else ""
    if number is None:
        raise InvalidOptionError(f"{name} must be a finite number {wanted}, got {value!r}.{suffix}")
    too_low = minimum is not None and (
        number < minimum or (not min_inclusive and number == minimum)
    )
    too_high = maximum is not None and (
        number > maximum or (not max_inclusive and number == maximum)
    )
    if too_low or too_high:
        raise InvalidOptionError(f"{name} must be a number {wanted}, got {value!r}.{suffix}")
    return number


def check_integer(name: str, value: object, *, minimum: int | None = None, hint: str = "") -> int:
    """``value`` as an int (integral floats accepted), or :class:`InvalidOptionError`."""
    number = as_finite(value)
    if number is None or number != int(number):
        raise InvalidOptionError(
            f"{name} must be a whole number{'' if minimum is None else f' >= {minimum}'}, "
            f"got {value!r}.{' ' + hint if hint else ''}"
        )
    if minimum is not None and number < minimum:
        raise InvalidOptionError(
            f"{name} must be a whole number >= {minimum}, got {value!r}.{' ' + hint if hint else ''}"
        )
    return int(number)


def check_writable_dir(name: str, path: str | os.PathLike[str]) -> Path:
    """The folder ``path`` (which may not exist yet) can be created and written by this user.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise InvalidOptionError(f"{name} {str(path)!r} is a file, not a folder: choose a folder.")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InvalidOptionError(
            f"{name} {str(path)!r} cannot be created: {str(probe)!r} is a file. Choose another "
            f"folder."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidOptionError(
            f"{name} {str(path)!r} is not writable ({str(probe)!r} refuses writes): choose a "
            f"folder you can write to."
        )
    return target


def check_writable_file(name: str, path: str | os.PathLike[str]) -> Path:
    """The file ``path`` can be written: its folder exists and is writable, it is no folder."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise InvalidOptionError(f"{name} {str(path)!r} is a folder: give a file name.")
    folder = target.parent
    if not folder.is_dir():
        raise InvalidOptionError(
            f"{name} {str(path)!r}: its folder {str(folder)!r} does not exist. Create it first "
            f"or choose another path."
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (
        target.exists() and not os.access(target, os.W_OK)
    ):
        raise InvalidOptionError(
            f"{name} {str(path)!r} is not writable: choose a path you can write to."
        )
    return target
