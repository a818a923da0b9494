"""A group's view of the embedded bus (:class:`SqliteSubscription`): deliveries from the tail or
the file, acks, and the durable cursor (see bus/sqlite.py for the whole design)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from eventbridge.bus.base import Delivery

if TYPE_CHECKING:
    from eventbridge.bus.sqlite import SqliteBus


class SqliteSubscription:
    """One group's view of the log: iterate for deliveries, ``ack`` each when handled."""

    def __init__(self, bus: SqliteBus, group: str, ready: asyncio.Future[int]) -> None:
        self.group = group
        self._bus = bus
        self._ready = ready
        self._position: int | None = None  # highest offset read from the log
        self._buffer: deque[Delivery] = deque()
        self._outstanding: deque[int] = deque()  # delivered, in order, not yet past the cursor
        self._delivered: set[int] = set()
        self._acked: set[int] = set()
        self._cursor: int | None = None  # in-memory cursor (contiguous acked prefix)
        self._saved: int | None = None  # last cursor value handed to the writer
        self._flush_handle: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._closed = False

    def __aiter__(self) -> SqliteSubscription:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                delivery = self._buffer.popleft()
                self._outstanding.append(delivery.offset)
                self._delivered.add(delivery.offset)
                return delivery
            if self._position is None:
                start = await self._ready
                self._position = start
                self._cursor = self._saved = start
                continue
            if self._position < self._bus.head:
                batch = self._bus._from_tail(self._position, self._bus.read_batch)
                if batch is None:
                    batch = await self._bus._read_after(self._position, self._bus.read_batch)
                if batch:
                    self._buffer.extend(batch)
                    self._position = batch[-1].offset
                else:
                    self._position = self._bus.head
                self._bus._trim_tail()
                continue
            self._wake.clear()
            if self._position < self._bus.head or self._closed:
                continue
            await self._wake.wait()

    async def ack(self, delivery: Delivery) -> None:
        """Mark ``delivery`` handled; the durable cursor moves over the contiguous acked prefix."""
        offset = delivery.offset
        if offset not in self._delivered:
            if self._cursor is not None and offset <= self._cursor:
                return  # already behind the cursor
            raise ValueError(f"offset {offset} was not delivered to group {self.group!r}")
        self._delivered.discard(offset)
        self._acked.add(offset)
        advanced = False
        while self._outstanding and self._outstanding[0] in self._acked:
            head = self._outstanding.popleft()
            self._acked.discard(head)
            self._cursor = head
            advanced = True
        if advanced and self._flush_handle is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(self._bus.cursor_flush_delay, self._flush_soon)

    @property
    def cursor(self) -> int | None:
        """The in-memory cursor (durable within a few ms); ``None`` before the first read."""
        return self._cursor

    def _lag(self, head: int) -> int:
        """Events after this group's cursor (0 until its start offset is known)."""
        cursor = self._cursor
        if cursor is None:
            if not self._ready.done() or self._ready.cancelled() or self._ready.exception() is not None:
                return 0
            cursor = self._ready.result()
        return max(0, head - cursor)

    def _flush_soon(self) -> None:
        self._flush_handle = None
        if self._cursor is not None and self._cursor != self._saved and self._bus._running:
            self._saved = self._cursor
            self._bus._save_cursor(self.group, self._cursor, None)

    async def close(self) -> None:
        """Write the cursor durably, end the iteration and release the group."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        try:
            if self._bus._running and self._cursor is not None and self._cursor != self._saved:
                loop = asyncio.get_running_loop()
                done: asyncio.Future[Any] = loop.create_future()
                self._saved = self._cursor
                self._bus._save_cursor(self.group, self._cursor, done)
                await done
        finally:
            self._bus._forget(self)


__all__ = ["SqliteSubscription"]
