"""Puts the repository root on ``sys.path`` so tests can ``import zoo``.

The zoo (real architectures for tests and benchmarks) is a top-level folder that is not
installed with the package; pytest puts only ``tests/`` on the path, and xdist workers do not
start from the repository root.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
