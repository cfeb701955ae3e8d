"""The search benchmarks refuse a bad option at once: exit status 2, the rule, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["nas_mnist.py", "search_resnet8.py"])
@pytest.mark.parametrize("scales", ["0.5,half", "7", "0.5,1"])
def test_bad_filter_scales_exit_2_before_any_work(script, scales, tmp_path):
    benchmarks = ROOT / "BENCHMARKS.md"
    before = benchmarks.read_bytes() if benchmarks.exists() else None
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--scales", scales],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "is not a comma-separated list of filter scales" in done.stderr
    assert "Traceback" not in done.stderr
    assert (benchmarks.read_bytes() if benchmarks.exists() else None) == before
    assert list(tmp_path.iterdir()) == []
