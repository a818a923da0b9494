"""What the SQLite bus and store share: the fixed statement sizes and the writer's WAL settings."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from eventbridge.sqlitekit import SIZES, WAL_SIZE_LIMIT, WalCheckpointer, chunks, placeholders


def test_chunks_cut_a_run_exactly_into_the_fixed_sizes() -> None:
    rows = list(range(60))
    pieces = list(chunks(rows))
    assert [len(piece) for piece in pieces] == [16, 16, 16, 12]
    assert [row for piece in pieces for row in piece] == rows
    assert all(len(piece) in SIZES for piece in chunks(list(range(1000))))


def test_placeholders_write_one_group_per_row() -> None:
    assert placeholders(2, 3) == "(?, ?),(?, ?),(?, ?)"


def test_a_large_wal_is_cut_back_once_the_database_is_quiet(tmp_path: Path) -> None:
    """Writes while a reader holds a snapshot grow the WAL past the limit (as a sustained load
    does: no checkpoint can finish). Once the commits stop for ``quiet`` seconds, the
    checkpointer cuts it to nothing; while they come, it does not."""
    path = tmp_path / "x.db"
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    WalCheckpointer.writer_pragmas(conn)
    conn.execute("CREATE TABLE t (b BLOB)")
    checkpointer = WalCheckpointer(path, quiet=0.3)
    checkpointer.start()
    try:
        reader = sqlite3.connect(str(path), isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot: no checkpoint finishes
        wal = Path(f"{path}-wal")
        for _ in range(12):
            conn.execute("INSERT INTO t VALUES (?)", (os.urandom(2 << 20),))
            checkpointer.poke()
        assert wal.stat().st_size > WAL_SIZE_LIMIT
        reader.execute("COMMIT")
        reader.close()
        for _ in range(5):  # commits keep coming: the WAL is left alone
            time.sleep(0.1)
            conn.execute("INSERT INTO t VALUES (x'00')")
            checkpointer.poke()
        assert wal.stat().st_size > WAL_SIZE_LIMIT
        deadline = time.monotonic() + 10
        while wal.stat().st_size > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wal.stat().st_size == 0
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (17,)
    finally:
        checkpointer.stop()
        conn.close()
