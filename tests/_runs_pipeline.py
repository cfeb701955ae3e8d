"""A pipeline whose one step says it started, then sleeps: for tests/test_runs.py.

It lives in a module of its own so a subprocess can import and run it; it imports neither
TensorFlow nor the rest of zenml-quant, so that process starts quickly.
"""

from __future__ import annotations

import time
from pathlib import Path

from zenml import pipeline, step


@step(enable_cache=False)
def mark_and_sleep(marker: str, seconds: float) -> int:
    """Write ``marker`` (the step is running now), then sleep ``seconds``."""
    Path(marker).write_text("running")
    time.sleep(seconds)
    return 1


@pipeline(enable_cache=False)
def sleepy_pipeline(marker: str, seconds: float = 120.0) -> None:
    mark_and_sleep(marker=marker, seconds=seconds)
