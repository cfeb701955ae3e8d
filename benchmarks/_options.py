"""Command-line option types shared by the search benchmarks, checked before any work starts."""

from __future__ import annotations

import argparse

from zenml_quant.errors import InvalidOptionError
from zenml_quant.search.space import SpaceOptions


def filter_scales(text: str) -> tuple[float, ...]:
    """``--scales 0.25,0.375,0.5``: filter scales the search may offer, as SpaceOptions takes
    them; a bad list exits with status 2 and the rule, before any model is loaded."""
    try:
        scales = tuple(float(part) for part in text.split(","))
        SpaceOptions(scales=scales)
    except (ValueError, InvalidOptionError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of filter scales such as 0.25,0.5,0.75 ({exc})"
        ) from None
    return scales
