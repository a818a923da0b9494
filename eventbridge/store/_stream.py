"""The asyncio side of a list+watch loop that runs in a thread (both Kubernetes watch streams)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")


class ThreadFedStream(Generic[T]):
    """An async iterator over items a watch thread puts on an asyncio queue; an exception put
    there is raised to the reader. :meth:`_shut` stops the thread and shuts the HTTP response it
    may be blocked reading (the thread keeps it in ``_response`` under ``_lock``)."""

    def __init__(self, queue_limit: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[T | BaseException] = asyncio.Queue(queue_limit)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    @contextlib.contextmanager
    def _reading(self, response: Any) -> Iterator[None]:
        """Thread side: while ``response`` is read, :meth:`_shut` can end it; released afterwards."""
        with self._lock:
            self._response = response
        if self._stopping.is_set():
            response.shutdown()
        try:
            yield
        finally:
            with self._lock:
                self._response = None
            with contextlib.suppress(Exception):
                response.release_conn()

    def _shut(self) -> None:
        """Mark closed, tell the thread to stop, and end the response it is reading."""
        self._closed = True
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()


__all__ = ["ThreadFedStream"]
