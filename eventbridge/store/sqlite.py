"""The embedded Store: Argo objects as JSON rows in one SQLite file (WAL), with in-process watch.

All SQLite calls run in one dedicated thread. Writes that arrive together are committed in one
transaction (group commit), each caller released after the commit that holds its change, so many
concurrent workflow updates cost one fsync. Within a batch, the writes are decided in Python
against one read of the rows they touch and written back with one multi-row statement, so the
thread does not give up and retake the GIL per write. Watchers are fed after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import string
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from eventbridge import jsontree
from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.sqlitekit import WalCheckpointer, chunks, placeholders, shrink_memory
from eventbridge.store.base import Object, WatchEvent

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    body TEXT NOT NULL,
    uid TEXT,
    created TEXT,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# uid and creationTimestamp have columns of their own so that an update needs no parse of the old body.
_ADDED_COLUMNS = ("uid", "created")

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
#: Random bytes below this (a multiple of the alphabet's size) make every character equally likely.
_UNBIASED_BELOW = 256 - 256 % len(_SUFFIX_ALPHABET)
_WATCH_QUEUE_LIMIT = 10_000


_now_cache: tuple[int, str] = (0, "")


def _now() -> str:
    """The current second in RFC 3339 (what Kubernetes puts in ``creationTimestamp``)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _now_cache[1]


Key = tuple[str, str, str]


@dataclass(slots=True)
class _Row:
    """What a batch needs to know of a stored object (``body``: set once this batch wrote it)."""

    rv: int
    uid: str | None
    created: str | None
    body: str | None = None


def _key(obj: Object) -> Key:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind", "")), str(meta.get("namespace") or "default"), str(meta.get("name", ""))


def _labels_match(obj: Object, labels: dict[str, str] | None) -> bool:
    if not labels:
        return True
    have = (obj.get("metadata") or {}).get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items())


def _named(obj: Object) -> bool:
    meta = obj.get("metadata")
    return isinstance(meta, dict) and bool(meta.get("name"))


_READ_ROWS_SQL = (
    "WITH k(kind, namespace, name) AS (VALUES {values}) "
    "SELECT o.kind, o.namespace, o.name, o.rv, o.uid, o.created FROM k "
    "JOIN objects o ON o.kind = k.kind AND o.namespace = k.namespace AND o.name = k.name"
)
_DELETE_SQL = "DELETE FROM objects WHERE (kind, namespace, name) IN (VALUES {values})"
_UPSERT_SQL = "INSERT OR REPLACE INTO objects(kind, namespace, name, rv, body, uid, created) VALUES {values}"


def _random_suffix() -> str:
    """Five random characters of the suffix alphabet from one read of the system's random source
    (``secrets.choice`` reads it once per character: 10 µs a name, in the store's thread)."""
    while True:
        picks = [byte for byte in os.urandom(8) if byte < _UNBIASED_BELOW]
        if len(picks) >= 5:
            return "".join(_SUFFIX_ALPHABET[byte % len(_SUFFIX_ALPHABET)] for byte in picks[:5])


def _proposed_name(write: _Write) -> Key | None:
    """For a create by ``generateName``: a key with a random name, to be read with the batch
    (instead of one query per name); ``None`` for every other write."""
    meta = write.obj.get("metadata")
    if write.op != "create" or not isinstance(meta, dict) or meta.get("name") or not meta.get("generateName"):
        return None
    name = str(meta["generateName"]) + _random_suffix()
    return str(write.obj.get("kind", "")), str(meta.get("namespace") or "default"), name


def _read_rows(conn: sqlite3.Connection, keys: set[Key]) -> dict[Key, _Row | None]:
    """The stored rows of ``keys`` (``None`` for the missing ones), in one query per chunk."""
    rows: dict[Key, _Row | None] = dict.fromkeys(keys)
    for chunk in chunks(list(keys)):
        sql = _READ_ROWS_SQL.format(values=placeholders(3, len(chunk)))
        for kind, namespace, name, rv, uid, created in conn.execute(sql, [part for key in chunk for part in key]):
            rows[(kind, namespace, name)] = _Row(int(rv), uid, created)
    return rows


def _new_uids(count: int) -> Iterator[str]:
    """``count`` random (version 4) UUIDs from one read of the system's random source."""
    random = bytearray(os.urandom(16 * count))
    # RFC 4122 version 4: version nibble 4 in byte 6, variant bits 10 in byte 8 (as uuid.uuid4();
    # formatted here because building uuid.UUID objects cost three times as much).
    random[6::16] = bytes((byte & 0x0F) | 0x40 for byte in random[6::16])
    random[8::16] = bytes((byte & 0x3F) | 0x80 for byte in random[8::16])
    text = random.hex()
    for start in range(0, len(text), 32):
        uid = text[start : start + 32]
        yield f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:]}"


def _read_body(conn: sqlite3.Connection, key: Key) -> str:
    row = conn.execute("SELECT body FROM objects WHERE kind=? AND namespace=? AND name=?", key).fetchone()
    return str(row[0])


def _add_columns(conn: sqlite3.Connection) -> None:
    """Bring a store written by an earlier version up to the current schema (uid, created)."""
    have = {str(row[1]) for row in conn.execute("PRAGMA table_info(objects)")}
    missing = [column for column in _ADDED_COLUMNS if column not in have]
    if not missing:
        return
    with conn:
        for column in missing:
            conn.execute(f"ALTER TABLE objects ADD COLUMN {column} TEXT")
        for kind, namespace, name, body in conn.execute("SELECT kind, namespace, name, body FROM objects").fetchall():
            meta = jsontree.loads(body).get("metadata") or {}
            conn.execute(
                "UPDATE objects SET uid = ?, created = ? WHERE kind = ? AND namespace = ? AND name = ?",
                (meta.get("uid"), meta.get("creationTimestamp"), kind, namespace, name),
            )


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
        self._checkpointer: WalCheckpointer | None = None
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
        WalCheckpointer.writer_pragmas(conn)
        conn.executescript(_SCHEMA)
        _add_columns(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='rv'").fetchone()
        self._rv = int(row[0]) if row else 0
        self._conn = conn
        self._checkpointer = WalCheckpointer(self._path)
        self._checkpointer.start()

    def _close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
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
        result: Object = jsontree.loads(row[0])
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
        return [jsontree.loads(r[0]) for r in rows]

    async def release_memory(self) -> None:
        """Let SQLite free its page cache (see :class:`eventbridge.heap.Janitor`)."""
        await self._call(lambda: shrink_memory(self._db()))

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
            self._apply_batch(conn, batch)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('rv', ?)", (self._rv,))
            conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.poke()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._rv = rv_before
            log.error("store commit failed: %s", exc)
            for write in batch:
                write.result = exc
        # One wake-up of each waiting loop per batch, not one per write (each is a syscall).
        by_loop: dict[asyncio.AbstractEventLoop, list[_Write]] = {}
        for write in batch:
            by_loop.setdefault(write.loop, []).append(write)
        for loop, writes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(self._settle_all, writes)

    def _settle_all(self, writes: Sequence[_Write]) -> None:
        for write in writes:
            self._settle(write)

    def _settle(self, write: _Write) -> None:
        result = write.result
        if isinstance(result, BaseException):
            if not write.done.done():
                write.done.set_exception(result)
            return
        assert result is not None
        self.writes += 1
        if self._watchers:
            self._notify(write.op, result)
        if not write.done.done():
            write.done.set_result(result)

    def _notify(self, op: Literal["create", "update", "delete"], result: Object) -> None:
        kind, namespace, _ = _key(result)
        event_type: Literal["ADDED", "MODIFIED", "DELETED"] = (
            "ADDED" if op == "create" else "MODIFIED" if op == "update" else "DELETED"
        )
        for watcher in self._watchers:
            if watcher.kind == kind and watcher.namespace in (None, namespace):
                try:
                    watcher.queue.put_nowait(WatchEvent(event_type, result))
                except asyncio.QueueFull:
                    log.warning("a %s watcher is too slow; dropping a change event", kind)

    def _apply_batch(self, conn: sqlite3.Connection, batch: Sequence[_Write]) -> None:
        """Decide every write of ``batch`` in order (each sees the ones before it), then write the
        outcome with one DELETE and one multi-row INSERT per chunk. Sets each ``write.result``."""
        proposed = [_proposed_name(w) for w in batch]
        rows = _read_rows(conn, {_key(w.obj) for w in batch if _named(w.obj)} | {k for k in proposed if k is not None})
        deleted: set[Key] = set()
        uids = _new_uids(sum(1 for w in batch if w.op == "create"))
        for write, proposal in zip(batch, proposed, strict=True):
            try:
                write.result = self._decide(conn, write, rows, deleted, uids, proposal)
            except (AlreadyExistsError, ConflictError, NotFoundError, InvalidError) as exc:
                write.result = exc
        gone = [key for key in deleted if rows.get(key) is None]
        for keys in chunks(gone):
            conn.execute(_DELETE_SQL.format(values=placeholders(3, len(keys))), [part for key in keys for part in key])
        written = [(key, row) for key, row in rows.items() if row is not None and row.body is not None]
        for chunk in chunks(written):
            params: list[Any] = []
            for (kind, namespace, name), row in chunk:
                params += (kind, namespace, name, row.rv, row.body, row.uid, row.created)
            conn.execute(_UPSERT_SQL.format(values=placeholders(7, len(chunk))), params)

    def _decide(
        self,
        conn: sqlite3.Connection,
        write: _Write,
        rows: dict[Key, _Row | None],
        deleted: set[Key],
        uids: Iterator[str],
        proposed: Key | None,
    ) -> Object:
        """One write against ``rows`` (the batch's view of the table, updated in place);
        ``proposed``: the generated name read with the batch (see :func:`_proposed_name`)."""
        if write.op == "delete":
            key = _key(write.obj)
            row = rows.get(key)
            if row is None:
                raise NotFoundError(f"{key[0]} {key[1]}/{key[2]} not found")
            body = row.body if row.body is not None else _read_body(conn, key)
            rows[key] = None
            deleted.add(key)
            result: Object = jsontree.loads(body)
            return result
        obj = dict(write.obj)  # the caller's object is never changed; the result is parsed anew
        meta = obj.get("metadata", {})
        if not isinstance(meta, dict):
            raise InvalidError("metadata must be an object")
        meta = obj["metadata"] = dict(meta)
        meta["namespace"] = meta.get("namespace") or "default"
        if write.op == "create":
            if not meta.get("name"):
                prefix = meta.get("generateName")
                if not prefix:
                    raise InvalidError("metadata.name or metadata.generateName is required")
                if proposed is not None and proposed in rows and rows[proposed] is None:
                    meta["name"] = proposed[2]
                else:  # taken (one chance in 60 million), or another write of the batch has it
                    meta["name"] = self._free_name(conn, str(obj.get("kind", "")), meta["namespace"], prefix, rows)
            key = _key(obj)
            if rows.get(key) is not None:
                raise AlreadyExistsError(f"{key[0]} {key[1]}/{key[2]} already exists")
            uid: str | None = next(uids)
            created: str | None = _now()
        else:
            key = _key(obj)
            row = rows.get(key)
            if row is None:
                raise NotFoundError(f"{key[0]} {key[1]}/{key[2]} not found")
            given = meta.get("resourceVersion")
            if given is not None and str(given) != str(row.rv):
                raise ConflictError(
                    f"{key[0]} {key[1]}/{key[2]} was modified (resourceVersion {given} is stale, now {row.rv})"
                )
            uid, created = row.uid, row.created
        meta["uid"] = uid
        meta["creationTimestamp"] = created
        meta["resourceVersion"] = str(self._rv + 1)
        try:
            body = jsontree.dumps_text(obj)
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"{key[0]} {key[1]}/{key[2]} is not JSON: {exc}") from None
        self._rv += 1
        rows[key] = _Row(self._rv, uid, created, body)
        stored: Object = jsontree.loads(body)
        return stored

    @staticmethod
    def _free_name(
        conn: sqlite3.Connection, kind: str, namespace: str, prefix: str, rows: dict[Key, _Row | None]
    ) -> str:
        """``prefix`` + 5 random characters, free in the table and in this batch."""
        for _ in range(20):
            name = prefix + _random_suffix()
            key = (kind, namespace, name)
            if key in rows:
                if rows[key] is None:
                    return name  # deleted earlier in this batch
                continue
            taken = conn.execute("SELECT 1 FROM objects WHERE kind=? AND namespace=? AND name=?", key).fetchone()
            if not taken:
                rows[key] = None
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
