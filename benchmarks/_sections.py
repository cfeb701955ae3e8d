"""Each benchmark script owns one section of ``BENCHMARKS.md``, between marker comments."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_section(name: str, section: str) -> Path:
    """Replace (or append) the ``name`` section of BENCHMARKS.md, leaving the rest alone."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block, (head, found, rest) = f"{start}\n{section}\n{end}", text.partition(start)
    keep = found and end in rest
    text = head + block + rest.partition(end)[2] if keep else f"{text.rstrip()}\n\n{block}\n"
    path.write_text(text)
    return path
