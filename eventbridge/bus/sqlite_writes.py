"""The embedded bus's writer commands and how a batch of them becomes SQL statements (used by the
writer thread of :class:`eventbridge.bus.sqlite.SqliteBus`, which owns the connection)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eventbridge.errors import TemporaryError
from eventbridge.events import Event, format_time
from eventbridge.sqlitekit import chunks, placeholders

_INSERT_SQL = (
    "INSERT OR IGNORE INTO events (namespace, source, subject, id, type, time, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_RUN_SQL = "INSERT OR IGNORE INTO events (namespace, source, subject, id, type, time, body) VALUES {values}"
_SEQ_OF_SQL = "SELECT seq FROM events WHERE namespace = ? AND source = ? AND subject = ? AND id = ?"
#: Publishes per run handed to insert_run (which cuts it into statements of sqlitekit sizes).
_MAX_ROWS = 1000


@dataclass(slots=True)
class Publish:
    """Append one event (``body``: its encoding); the future gets True, or False for a duplicate."""

    event: Event
    body: bytes
    future: asyncio.Future[Any]


@dataclass(slots=True)
class Call:
    """Run ``fn(connection)`` in the writer thread; inside the batch transaction if ``write``."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    write: bool


Command = Publish | Call


def apply_batch(conn: sqlite3.Connection, writes: list[Command]) -> list[tuple[Any, int]]:
    """Apply writes in order; each run of consecutive publishes is one multi-row INSERT.

    One statement per run (instead of one per event) keeps the writer thread from releasing and
    re-acquiring the GIL per event, which would stall it behind the event loop.
    """
    results: list[tuple[Any, int]] = []
    run: list[Publish] = []
    for command in writes:
        if isinstance(command, Publish):
            run.append(command)
            if len(run) == _MAX_ROWS:
                results.extend(insert_run(conn, run))
                run = []
            continue
        if run:
            results.extend(insert_run(conn, run))
            run = []
        results.append(apply_one(conn, command))
    if run:
        results.extend(insert_run(conn, run))
    return results


def insert_run(conn: sqlite3.Connection, run: list[Publish]) -> list[tuple[bool, int]]:
    """Insert a run of publishes with a few multi-row statements of fixed sizes (sqlitekit).

    Each statement is a single SQLite step, and so a single GIL hand-over: ``RETURNING`` would
    cost one step (and one hand-over to the event loop and back) per row. The offsets follow from
    ``AUTOINCREMENT`` with one writer: the ``n`` rows a statement inserted got ``last - n + 1 ..
    last``, in ``VALUES`` order. Only when some rows were duplicates (ignored) is each looked up.
    """
    out: list[tuple[bool, int]] = []
    for chunk in chunks(run):
        params: list[Any] = []
        for command in chunk:
            params += _row(command)
        cursor = conn.execute(_INSERT_RUN_SQL.format(values=placeholders(7, len(chunk))), params)
        inserted, last = cursor.rowcount, cursor.lastrowid or 0
        if inserted == len(chunk):
            out.extend((True, seq) for seq in range(last - inserted + 1, last + 1))
        else:
            out.extend(_claim_new(conn, chunk, inserted))
    return out


def _claim_new(conn: sqlite3.Connection, chunk: Sequence[Publish], inserted: int) -> list[tuple[bool, int]]:
    """Which publishes of ``chunk`` made the ``inserted`` rows its statement added.

    Ignored rows still use up an offset, so the new ones are not consecutive; but they are the
    ``inserted`` highest offsets among the chunk's events (every row stored before is lower). Of
    several copies of one event only the first counts as new.
    """
    seqs: list[int] = []
    for command in chunk:
        event = command.event
        row = conn.execute(_SEQ_OF_SQL, (event.namespace, event.source, event.subject, event.id)).fetchone()
        seqs.append(int(row[0]) if row else 0)
    distinct = sorted(set(seqs))
    new = set(distinct[len(distinct) - inserted :]) if inserted else set()
    out: list[tuple[bool, int]] = []
    for seq in seqs:
        if seq in new:
            new.discard(seq)
            out.append((True, seq))
        else:
            out.append((False, 0))
    return out


def _row(command: Publish) -> tuple[Any, ...]:
    """The values of one event's row, in the column order of the INSERT statements."""
    event = command.event
    return (event.namespace, event.source, event.subject, event.id, event.type, format_time(event.time), command.body)


def apply_one(conn: sqlite3.Connection, command: Command) -> tuple[Any, int]:
    """Apply one write; returns (result for the caller, offset written or 0)."""
    if isinstance(command, Publish):
        cursor = conn.execute(_INSERT_SQL, _row(command))
        if cursor.rowcount == 1 and cursor.lastrowid is not None:
            return True, cursor.lastrowid
        return False, 0
    return command.fn(conn), 0


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def wrap_error(exc: Exception) -> BaseException:
    if isinstance(exc, sqlite3.OperationalError):
        return TemporaryError(f"the bus could not write to its SQLite log: {exc}")
    return exc


__all__ = ["Call", "Command", "Publish", "apply_batch", "apply_one", "insert_run", "rollback", "wrap_error"]
