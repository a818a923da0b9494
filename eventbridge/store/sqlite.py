"""The embedded Store: Argo objects as JSON rows in one SQLite file (WAL), with in-process watch.

All SQLite calls run in one dedicated thread. Writes that arrive together are committed in one
transaction (group commit), each caller released after the commit that holds its change, so many
concurrent workflow updates cost one fsync. Watchers are fed after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import string
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.jsontree import clone
from eventbridge.store.base import Object, WatchEvent

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_WATCH_QUEUE_LIMIT = 10_000


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(obj: Object) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace") or "default"), str(meta.get("name", ""))


def _labels_match(obj: Object, labels: dict[str, str] | None) -> bool:
    if not labels:
        return True
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


@dataclass
class _Write:
    op: Literal["create", "update", "delete"]
    obj: Object
    done: asyncio.Future[Object]
    loop: asyncio.AbstractEventLoop
    result: Object | BaseException | None = None


@dataclass
class _Watcher:
    kind: str
    namespace: str | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=lambda: asyncio.Queue(_WATCH_QUEUE_LIMIT))


class SqliteStore:
    """Store protocol on SQLite. ``writes`` counts committed object writes (for benchmarks)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[_Write] = []
        self._lock = threading.Lock()
        self._flush_scheduled = False
        self._watchers: list[_Watcher] = []
        self._rv = 0
        self.writes = 0

    # lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await self._call(self._open)

    async def stop(self) -> None:
        if self._conn is not None:
            await self._call(self._close)
        self._thread.shutdown(wait=True)

    async def __aenter__(self) -> SqliteStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self._rv = int(row[0]) if row else 0
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    # reads ---------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not started")
        return self._conn

    def _get(self, kind: str, namespace: str, name: str) -> Object:
        row = (
            self._db()
            .execute("SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
            .fetchone()
        )
        if row is None:
            raise NotFoundError(f"{kind} {namespace}/{name} not found")
        result: Object = json.loads(row[0])
        return result

    def _list(self, kind: str, namespace: str | None) -> list[Object]:
        if namespace is None:
            rows = (
                self._db().execute("SELECT body FROM objects WHERE kind=? ORDER BY namespace, name", (kind,)).fetchall()
            )
        else:
            rows = (
                self._db()
                .execute("SELECT body FROM objects WHERE kind=? AND namespace=? ORDER BY name", (kind, namespace))
                .fetchall()
            )
        return [json.loads(r[0]) for r in rows]

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        result: Object = await self._call(self._get, kind, namespace, name)
        return result

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[Object]:
        objects: list[Object] = await self._call(self._list, kind, namespace)
        return [o for o in objects if _labels_match(o, labels)]

    # writes --------------------------------------------------------------------------------

    async def create(self, obj: Object) -> Object:
        return await self._submit("create", obj)

    async def update(self, obj: Object) -> Object:
        return await self._submit("update", obj)

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        await self._submit("delete", {"kind": kind, "metadata": {"namespace": namespace, "name": name}})

    async def _submit(self, op: Literal["create", "update", "delete"], obj: Object) -> Object:
        loop = asyncio.get_running_loop()
        write = _Write(op, obj, loop.create_future(), loop)
        with self._lock:
            self._pending.append(write)
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._thread.submit(self._flush)
        return await write.done

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        if not batch:
            return
        conn = self._db()
        rv_before = self._rv
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in batch:
                try:
                    write.result = self._apply(conn, write)
                except (AlreadyExistsError, ConflictError, NotFoundError, InvalidError) as exc:
                    write.result = exc
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('rv', ?)", (self._rv,))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._rv = rv_before
            log.error("store commit failed: %s", exc)
            for write in batch:
                write.result = exc
        for write in batch:
            write.loop.call_soon_threadsafe(self._settle, write)

    def _settle(self, write: _Write) -> None:
        result = write.result
        if isinstance(result, BaseException):
            if not write.done.done():
                write.done.set_exception(result)
            return
        assert result is not None
        self.writes += 1
        kind, namespace, _ = _key(result)
        event_type: Literal["ADDED", "MODIFIED", "DELETED"] = (
            "ADDED" if write.op == "create" else "MODIFIED" if write.op == "update" else "DELETED"
        )
        for watcher in self._watchers:
            if watcher.kind == kind and watcher.namespace in (None, namespace):
                try:
                    watcher.queue.put_nowait(WatchEvent(event_type, result))
                except asyncio.QueueFull:
                    log.warning("a %s watcher is too slow; dropping a change event", kind)
        if not write.done.done():
            write.done.set_result(result)

    def _apply(self, conn: sqlite3.Connection, write: _Write) -> Object:
        obj = write.obj
        if write.op == "delete":
            kind, namespace, name = _key(obj)
            row = conn.execute(
                "SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"{kind} {namespace}/{name} not found")
            conn.execute("DELETE FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name))
            deleted: Object = json.loads(row[0])
            return deleted
        obj = clone(obj)  # a private deep copy
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise InvalidError("metadata must be an object")
        meta["namespace"] = meta.get("namespace") or "default"
        if write.op == "create":
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise InvalidError("metadata.name or metadata.generateName is required")
                meta["name"] = self._free_name(conn, str(obj.get("kind", "")), meta["namespace"], prefix)
            kind, namespace, name = _key(obj)
            exists = conn.execute(
                "SELECT 1 FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
            if exists:
                raise AlreadyExistsError(f"{kind} {namespace}/{name} already exists")
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
        else:
            kind, namespace, name = _key(obj)
            row = conn.execute(
                "SELECT rv, body FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"{kind} {namespace}/{name} not found")
            given = meta.get("resourceVersion")
            if given is not None and str(given) != str(row[0]):
                raise ConflictError(
                    f"{kind} {namespace}/{name} was modified (resourceVersion {given} is stale, now {row[0]})"
                )
            old_meta = json.loads(row[1]).get("metadata", {})
            meta["uid"] = old_meta.get("uid")
            meta["creationTimestamp"] = old_meta.get("creationTimestamp")
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        conn.execute(
            "INSERT OR REPLACE INTO objects(kind, namespace, name, rv, body) VALUES (?, ?, ?, ?, ?)",
            (kind, namespace, name, self._rv, json.dumps(obj, separators=(",", ":"))),
        )
        stored: Object = obj
        return stored

    @staticmethod
    def _free_name(conn: sqlite3.Connection, kind: str, namespace: str, prefix: str) -> str:
        for _ in range(20):
            name = prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
            taken = conn.execute(
                "SELECT 1 FROM objects WHERE kind=? AND namespace=? AND name=?", (kind, namespace, name)
            ).fetchone()
            if not taken:
                return name
        raise AlreadyExistsError(f"could not find a free name for generateName {prefix!r}")

    # watch ---------------------------------------------------------------------------------

    def watch(self, kind: str, namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Changes to objects of ``kind`` committed after this call (registered at once)."""
        watcher = _Watcher(kind, namespace)
        self._watchers.append(watcher)
        return _WatchStream(self._watchers, watcher)


class _WatchStream:
    """Async iterator over one watcher's queue; ``aclose()`` unregisters it."""

    def __init__(self, watchers: list[_Watcher], watcher: _Watcher) -> None:
        self._watchers = watchers
        self._watcher = watcher

    def __aiter__(self) -> _WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        return await self._watcher.queue.get()

    async def aclose(self) -> None:
        if self._watcher in self._watchers:
            self._watchers.remove(self._watcher)
