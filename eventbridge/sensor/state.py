"""Durable pending state of ``&&`` conditions: the latest event per (sensor, trigger, dependency).

A small SQLite table (WAL, ``synchronous=NORMAL``, one connection, calls serialized by SQLite):

    pending(sensor, trigger, dependency, event JSON, stored_at) primary key (sensor, trigger, dependency)

The sensor engine stores a held event here *before* it acknowledges it on the bus, and deletes
the rows of a trigger when its conditions are reset. When the conditions hold, the held rows move
in one transaction to a second table, ``firing(id, sensor, trigger, events JSON)``, and that row is
deleted only after the trigger ran. After a restart the engine loads both back: a half-met condition
survives without replaying later events, and a firing cut short by a crash runs again (the
``argoWorkflow`` trigger recognises a repeated firing by its key and creates nothing twice).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from eventbridge import jsontree
from eventbridge.events import Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    sensor TEXT NOT NULL,
    trigger TEXT NOT NULL,
    dependency TEXT NOT NULL,
    event TEXT NOT NULL,
    stored_at REAL NOT NULL,
    PRIMARY KEY (sensor, trigger, dependency)
);
CREATE TABLE IF NOT EXISTS firing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sensor TEXT NOT NULL,
    trigger TEXT NOT NULL,
    events TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A held event and when it was stored (seconds since the epoch)."""

    event: Event
    stored_at: float


class PendingStore:
    """SQLite-backed pending state; ``path=None`` keeps it in memory (tests, dry runs)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path is not None else ":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def load(self, sensor: str) -> dict[str, dict[str, PendingEvent]]:
        """``{trigger: {dependency: PendingEvent}}`` for one sensor (``namespace/name``)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT trigger, dependency, event, stored_at FROM pending WHERE sensor = ?", (sensor,)
            ).fetchall()
        out: dict[str, dict[str, PendingEvent]] = {}
        for trigger, dependency, raw, stored_at in rows:
            try:
                event = Event.from_cloudevent(jsontree.loads(raw))
            except (ValueError, KeyError, TypeError):
                continue
            out.setdefault(trigger, {})[dependency] = PendingEvent(event, float(stored_at))
        return out

    def put(self, sensor: str, trigger: str, dependency: str, event: Event, stored_at: float | None = None) -> None:
        """Store (or replace) the held event of a dependency; durable when this returns."""
        payload = jsontree.dumps_text(_serializable(event), default=str)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO pending (sensor, trigger, dependency, event, stored_at) VALUES (?, ?, ?, ?, ?)",
                (sensor, trigger, dependency, payload, time.time() if stored_at is None else stored_at),
            )
            self._db.commit()

    def clear(self, sensor: str, trigger: str | None = None, *, before: float | None = None) -> int:
        """Delete a sensor's held rows (one trigger's, and only those stored before ``before``).

        Without ``trigger`` and ``before`` (the sensor was removed) its unfinished firings go too."""
        query = "DELETE FROM pending WHERE sensor = ?"
        args: list[object] = [sensor]
        if trigger is not None:
            query += " AND trigger = ?"
            args.append(trigger)
        if before is not None:
            query += " AND stored_at < ?"
            args.append(before)
        with self._lock:
            deleted = self._db.execute(query, args).rowcount
            if trigger is None and before is None:
                self._db.execute("DELETE FROM firing WHERE sensor = ?", (sensor,))
            self._db.commit()
        return int(deleted)

    def begin_firing(self, sensor: str, trigger: str, events: dict[str, Event]) -> int:
        """Move a trigger's held rows into one durable firing of ``events``; returns its id."""
        payload = jsontree.dumps_text({name: _serializable(event) for name, event in events.items()}, default=str)
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE sensor = ? AND trigger = ?", (sensor, trigger))
            cursor = self._db.execute(
                "INSERT INTO firing (sensor, trigger, events) VALUES (?, ?, ?)", (sensor, trigger, payload)
            )
            self._db.commit()
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def finish_firing(self, firing_id: int) -> None:
        """Forget a firing once its trigger ran (succeeded, or failed after retries and dlqTrigger)."""
        with self._lock:
            self._db.execute("DELETE FROM firing WHERE id = ?", (firing_id,))
            self._db.commit()

    def firings(self, sensor: str) -> list[tuple[int, str, dict[str, Event]]]:
        """Unfinished firings of a sensor, oldest first: ``(id, trigger, {dependency: event})``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, trigger, events FROM firing WHERE sensor = ? ORDER BY id", (sensor,)
            ).fetchall()
        out: list[tuple[int, str, dict[str, Event]]] = []
        for firing_id, trigger, raw in rows:
            try:
                events = {name: Event.from_cloudevent(doc) for name, doc in jsontree.loads(raw).items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            out.append((int(firing_id), str(trigger), events))
        return out

    def retain(self, sensor: str, keep: dict[str, frozenset[str]]) -> None:
        """Drop rows of triggers or dependencies a changed sensor no longer has."""
        with self._lock:
            rows = self._db.execute("SELECT trigger, dependency FROM pending WHERE sensor = ?", (sensor,)).fetchall()
            for trigger, dependency in rows:
                if dependency not in keep.get(trigger, frozenset()):
                    self._db.execute(
                        "DELETE FROM pending WHERE sensor = ? AND trigger = ? AND dependency = ?",
                        (sensor, trigger, dependency),
                    )
            for firing_id, trigger in self._db.execute(
                "SELECT id, trigger FROM firing WHERE sensor = ?", (sensor,)
            ).fetchall():
                if trigger not in keep:
                    self._db.execute("DELETE FROM firing WHERE id = ?", (firing_id,))
            self._db.commit()


def _serializable(event: Event) -> dict[str, object]:
    document = event.to_cloudevent()
    if isinstance(event.data, bytes | bytearray):
        document["data"] = bytes(event.data).decode(errors="replace")
    return document
