"""Multi-row SQLite statements in a few fixed sizes.

One statement for many rows keeps a writer thread from releasing and re-taking the GIL per row.
But every distinct row count is a distinct SQL text, which SQLite must prepare anew (a 1,000-row
INSERT is a program of thousands of steps) and Python's ``sqlite3`` keeps in its statement cache
(128 per connection): after a burst that cache held megabytes. Cutting a run into the sizes of
:data:`SIZES` bounds that to a handful of statements, each prepared once and reused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

#: The row counts of multi-row statements, largest first (each a quarter of the one before).
SIZES = (256, 64, 16, 4, 1)

T = TypeVar("T")


def chunks(rows: Sequence[T]) -> Iterator[Sequence[T]]:
    """``rows`` in consecutive pieces whose lengths are all in :data:`SIZES` (largest first)."""
    start = 0
    for size in SIZES:
        while len(rows) - start >= size:
            yield rows[start : start + size]
            start += size


def placeholders(columns: int, rows: int) -> str:
    """``(?, ?), (?, ?)`` for ``rows`` rows of ``columns`` values."""
    row = "(" + ", ".join("?" * columns) + ")"
    return ",".join([row] * rows)


__all__ = ["SIZES", "chunks", "placeholders"]
