"""The memory of a long-running process: the garbage collector after start-up, and giving memory
back to the system once a burst of events has drained."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import resource
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

#: A backlog at least this deep is a burst worth giving memory back after.
RELEASE_AFTER_BACKLOG = 1_000
#: How often the janitor looks at the backlog, in seconds.
JANITOR_INTERVAL_S = 1.0


#: The collector's first-generation threshold while a service runs (CPython's default is 700).
YOUNG_THRESHOLD = 10_000

_saved_threshold: tuple[int, int, int] | None = None


def settle_after_start() -> None:
    """Collect once, move every object alive now out of the collector's view (``gc.freeze``), and
    collect the young generation less often (:data:`YOUNG_THRESHOLD`).

    After start-up the process holds tens of thousands of long-lived objects (modules, models,
    the running sources and sensors). Each full collection walked them all, about 20 ms with the
    event loop stopped, which showed as the slowest webhook answers (docs/performance.md, B1).
    Frozen, they are no longer walked. The price: an object alive now that later dies in a
    reference cycle is never freed; objects freed by reference counting (nearly all) are.

    The threshold: each event in flight holds a few hundred container objects (its data, the
    trigger's resource, futures, traces). At 700 the collector ran every few events and walked
    every event still in flight each time: 7-20 us per event of B2's pipeline (more for the ones
    that do more). At 10,000 a collection is rare and still short (a few ms); nearly everything
    is freed by reference counting before one runs."""
    global _saved_threshold
    gc.collect()
    gc.freeze()
    if _saved_threshold is None:
        _saved_threshold = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, *_saved_threshold[1:])


def unsettle() -> None:
    """Give the frozen objects back to the collector and restore its thresholds (when the service
    stops: in one process that starts and stops services many times, as tests do, nothing then
    stays frozen or tuned for good)."""
    global _saved_threshold
    gc.unfreeze()
    if _saved_threshold is not None:
        gc.set_threshold(*_saved_threshold)
        _saved_threshold = None


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def resident_bytes() -> int:
    """This process's resident set size (0 where ``/proc`` is not there)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * resource.getpagesize()


def trim_allocator() -> None:
    """Ask the C allocator to hand its free pages back to the system: glibc's ``malloc_trim(0)``,
    which also returns free pages inside its heaps; nothing where the C library has no such call.
    Blocking (a few milliseconds on a 100 MiB heap) and safe from any thread: run it in one."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Janitor:
    """Gives memory back once a burst has drained.

    Every ``interval`` seconds it reads ``backlog()`` (events accepted but not yet processed).
    When the backlog, after reaching ``threshold`` since the last release, is back to zero, it
    awaits each of ``releasers`` (for example SQLite connections dropping the page caches the
    burst filled), collects, and runs :func:`trim_allocator` in a thread. Memory that the burst's
    objects used but no longer do is then the system's again instead of staying in the process
    as free allocator space (``docs/performance.md``, B6)."""

    def __init__(
        self,
        backlog: Callable[[], int],
        releasers: Sequence[Callable[[], Awaitable[None]]] = (),
        *,
        threshold: int = RELEASE_AFTER_BACKLOG,
        interval: float = JANITOR_INTERVAL_S,
    ) -> None:
        self._backlog = backlog
        self._releasers = list(releasers)
        self.threshold = threshold
        self.interval = interval
        self.releases = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="memory janitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        peak = 0
        while True:
            await asyncio.sleep(self.interval)
            depth = self._backlog()
            peak = max(peak, depth)
            if depth or peak < self.threshold:
                continue
            before = resident_bytes()
            try:
                await self.release()
            except Exception:  # a failed release must not stop the next one
                log.exception("giving memory back after a backlog of %d events failed", peak)
            else:
                after = resident_bytes()
                log.info("a backlog of %d events drained: gave %.1f MiB back to the system (resident now %.1f MiB)",
                         peak, max(0, before - after) / 2**20, after / 2**20)  # fmt: skip
            peak = 0

    async def release(self) -> None:
        """Release now: the releasers, then a full collection (in this thread: finalizers of asyncio
        objects must run on the loop's), then the C allocator's trim in a worker thread."""
        for releaser in self._releasers:
            await releaser()
        gc.collect()
        await asyncio.to_thread(trim_allocator)
        self.releases += 1


__all__ = ["Janitor", "resident_bytes", "settle_after_start", "trim_allocator", "unsettle"]
