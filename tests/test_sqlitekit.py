"""The fixed statement sizes shared by the SQLite bus and store."""

from __future__ import annotations

from eventbridge.sqlitekit import SIZES, chunks, placeholders


def test_chunks_cut_a_run_exactly_into_the_fixed_sizes() -> None:
    rows = list(range(60))
    pieces = list(chunks(rows))
    assert [len(piece) for piece in pieces] == [16, 16, 16, 4, 4, 4]
    assert [row for piece in pieces for row in piece] == rows
    assert all(len(piece) in SIZES for piece in chunks(list(range(1000))))


def test_placeholders_write_one_group_per_row() -> None:
    assert placeholders(2, 3) == "(?, ?),(?, ?),(?, ?)"
