"""Exceptions raised by zenml-quant.

Every message says what was wrong and what to do about it. Catch :class:`ZenmlQuantError` to
handle all of them.
"""

from __future__ import annotations

__all__ = [
    "ConstraintNotMetError",
    "ConversionError",
    "DeviceSetupError",
    "DeviceUnreachableError",
    "InvalidDatasetError",
    "InvalidOptionError",
    "InvalidModelError",
    "ZenmlQuantError",
]


class ZenmlQuantError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidModelError(ZenmlQuantError, ValueError):
    """The model cannot be loaded or used (format, unsafe code, subclassed, mismatched data)."""


class InvalidDatasetError(ZenmlQuantError, ValueError):
    """The dataset is malformed or does not fit the model."""


class InvalidOptionError(ZenmlQuantError, ValueError):
    """An option or parameter has a value the function cannot use."""


class ConversionError(ZenmlQuantError, RuntimeError):
    """The TFLite converter refused the model; the message names the op or layer."""


class ConstraintNotMetError(ZenmlQuantError):
    """A candidate misses a deployment target (accuracy, size, latency, memory)."""


class DeviceUnreachableError(ZenmlQuantError, ConnectionError):
    """The benchmark device could not be reached."""


class DeviceSetupError(ZenmlQuantError, RuntimeError):
    """The device answers but cannot run the benchmark (no Python, numpy or TFLite runtime)."""
