"""What the SQLite bus and store share: multi-row statements in a few fixed sizes, and a WAL
checkpointer that keeps checkpoints out of the commit path.

**Fixed sizes.** One statement for many rows keeps a writer thread from releasing and re-taking the GIL per row.
But every distinct row count is a distinct SQL text, which SQLite must prepare anew (a 1,000-row
INSERT is a program of thousands of steps) and Python's ``sqlite3`` keeps in its statement cache
(128 per connection): after a burst that cache held megabytes. Cutting a run into the sizes of
:data:`SIZES` bounds that to 18 texts per kind of statement, each prepared once and reused; any
run of up to :data:`ONE_STATEMENT` rows is a single statement, so a single SQLite step (each step
lets go of the GIL and must take it back from the event loop).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

#: A WAL file larger than this is cut to nothing once its database has been quiet for a while
#: (see :class:`WalCheckpointer`).
WAL_SIZE_LIMIT = 16 << 20

#: The row counts of multi-row statements, largest first: every count up to ONE_STATEMENT, then
#: two larger ones for bursts.
ONE_STATEMENT = 16
SIZES = (256, 64, *range(ONE_STATEMENT, 0, -1))

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


class WalCheckpointer:
    """Checkpoints a WAL database from a thread and connection of its own.

    SQLite's automatic checkpoint runs inside the COMMIT that crosses 1,000 WAL pages, so every so
    often one commit (and every caller waiting on it) took 10-30 ms longer: the tail of the
    webhook latency. The writer turns that off (:meth:`writer_pragmas`) and calls :meth:`poke`
    after its commits; this thread then runs a PASSIVE checkpoint (it never blocks the writer) at
    most every ``interval`` seconds while commits come in.

    The interval is short on purpose. A checkpoint copies the new WAL pages into the database
    file and fsyncs it; on ext4 that fsync commits the journal, and the writer's next WAL fsync
    waits behind it. Every 0.25 s a checkpoint had MBs to flush under a webhook burst and the
    commits behind it stalled 50-200 ms (B1: 5 of 8 runs, p99 18 → 66-145 ms); every 20 ms each
    has little to flush (0 of 5 runs stalled, and the rate went up 5 %).

    Under a sustained load the PASSIVE checkpoints never catch up with the writes, so SQLite
    never starts the WAL over and it only grows (~100 MiB in a 5 s webhook benchmark). Once no
    commit has come for ``quiet`` seconds, a WAL larger than :data:`WAL_SIZE_LIMIT` is
    checkpointed with TRUNCATE (which waits for the writer, harmless when nothing writes) and cut
    to nothing. SQLite's own ``journal_size_limit`` would do the cutting inside the commit that
    starts the WAL over: B1's p99 went from 13.5 to 15-46 ms with it."""

    def __init__(self, path: Path, interval: float = 0.02, quiet: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.quiet = quiet
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def writer_pragmas(conn: sqlite3.Connection) -> None:
        """What the writing connection sets: no checkpoints of its own."""
        conn.execute("PRAGMA wal_autocheckpoint = 0")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {self.path.name}", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """New commits are in the WAL (cheap; call after every commit)."""
        self._dirty.set()

    def stop(self) -> None:
        """Stop the thread (the writer's close then checkpoints what is left, as SQLite does)."""
        self._stopping.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.error("cannot open %s for checkpoints: %s", self.path, exc)
            return
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            quiet = True  # nothing written since the last look at the WAL's size
            while True:
                if not self._dirty.wait(None if quiet else self.quiet):
                    quiet = True
                    self._cut_back(conn)
                    continue
                if self._stopping.is_set():
                    return
                self._dirty.clear()
                quiet = False
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # a busy moment: the next poke tries again
                    log.debug("checkpoint of %s deferred: %s", self.path, exc)
                if self._stopping.wait(self.interval):
                    return
        finally:
            conn.close()

    def _cut_back(self, conn: sqlite3.Connection) -> None:
        wal = Path(f"{self.path}-wal")
        try:
            if wal.stat().st_size > WAL_SIZE_LIMIT:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except (OSError, sqlite3.Error) as exc:  # gone, or busy after all: the next quiet moment
            log.debug("cutting the WAL of %s back failed: %s", self.path, exc)


def shrink_memory(conn: sqlite3.Connection) -> None:
    """Free the memory a connection holds beyond what it needs (``PRAGMA shrink_memory``: the page
    cache, which a burst fills and which otherwise stays allocated while the connection is open)."""
    conn.execute("PRAGMA shrink_memory").fetchall()


__all__ = ["ONE_STATEMENT", "SIZES", "WAL_SIZE_LIMIT", "WalCheckpointer", "chunks", "placeholders", "shrink_memory"]
