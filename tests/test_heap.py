"""The janitor that gives memory back once a burst has drained, against a real SqliteBus and store."""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
from collections.abc import Callable
from pathlib import Path

import pytest

from eventbridge import heap
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.events import Event
from eventbridge.store.sqlite import SqliteStore


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition did not become true in time")


class Depth:
    """A backlog the test sets by hand, and a releaser that counts its calls."""

    def __init__(self) -> None:
        self.value = 0
        self.released = 0

    def __call__(self) -> int:
        return self.value

    async def release(self) -> None:
        self.released += 1


async def test_it_releases_once_a_deep_backlog_is_back_to_zero() -> None:
    depth = Depth()
    janitor = heap.Janitor(depth, [depth.release], threshold=100, interval=0.01)
    janitor.start()
    try:
        depth.value = 99  # shallow: no burst
        await asyncio.sleep(0.05)
        depth.value = 0
        await asyncio.sleep(0.05)
        assert janitor.releases == 0 and depth.released == 0
        depth.value = 5_000  # a burst, still queued: nothing yet
        await asyncio.sleep(0.05)
        assert janitor.releases == 0
        depth.value = 0
        await until(lambda: janitor.releases == 1)
        assert janitor.releases == 1 and depth.released == 1
        await asyncio.sleep(0.05)  # drained and released: nothing more until the next burst
        assert janitor.releases == 1
    finally:
        await janitor.stop()


async def test_a_failing_releaser_is_logged_and_the_next_burst_still_releases(
    caplog: pytest.LogCaptureFixture,
) -> None:
    depth = Depth()
    calls: list[str] = []

    async def broken() -> None:
        calls.append("broken")
        raise OSError("disk gone")

    janitor = heap.Janitor(depth, [broken], threshold=10, interval=0.01)
    janitor.start()
    try:
        with caplog.at_level(logging.ERROR, logger="eventbridge.heap"):
            depth.value = 10
            await asyncio.sleep(0.05)
            depth.value = 0
            await until(lambda: bool(calls))
            await asyncio.sleep(0.05)
        assert "backlog of 10 events failed" in caplog.text
        depth.value = 20
        await asyncio.sleep(0.05)
        depth.value = 0
        await until(lambda: len(calls) == 2)
        assert calls == ["broken", "broken"]
    finally:
        await janitor.stop()


# Not missing infrastructure: the trim is a glibc call (the janitor documents it as absent on other
# C libraries). CI and every machine we ship for run glibc, so there this test always runs.
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_allocator_hands_freed_heap_pages_back() -> None:
    """Freed blocks in the middle of the C heap stay resident until malloc_trim returns them."""
    blocks = [bytes(4096) for _ in range(12_000)]  # ~48 MiB from the C allocator (not pymalloc)
    keep = blocks[-1]  # pins the top of the heap, so free() alone cannot shrink it
    del blocks
    gc.collect()
    before = heap.resident_bytes()
    heap.trim_allocator()
    after = heap.resident_bytes()
    assert keep and before - after > 20 * 2**20, (before, after)


async def test_the_bus_and_store_release_their_caches_and_keep_working(tmp_path: Path) -> None:
    """The janitor over a real bus: a backlog of 1,200 events drains, the bus and store drop their
    page caches, and both still read and write afterwards."""
    async with SqliteBus(tmp_path / "events.db") as bus, SqliteStore(tmp_path / "store.db") as store:
        subscription = bus.subscribe("g")
        janitor = heap.Janitor(lambda: bus.backlog, [bus.release_memory, store.release_memory],
                               threshold=1_000, interval=0.02)  # fmt: skip
        janitor.start()
        try:
            events = [Event(id=f"e{n}", source="s", subject="t", type="webhook", data={"n": n}) for n in range(1_200)]
            await asyncio.gather(*(bus.publish(event) for event in events))
            assert bus.backlog == 1_200
            await asyncio.sleep(0.1)
            assert janitor.releases == 0  # not while the backlog waits
            seen = 0
            async for delivery in subscription:
                await subscription.ack(delivery)
                seen += 1
                if seen == 1_200:
                    break
            await until(lambda: janitor.releases == 1)
            await bus.publish(Event(id="after", source="s", subject="t", type="webhook", data={}))
            assert (await asyncio.wait_for(subscription.__anext__(), 5.0)).event.id == "after"
            created = await store.create({"kind": "Workflow", "metadata": {"name": "w", "namespace": "ns"}})
            assert (await store.get("Workflow", "ns", "w")) == created
        finally:
            await janitor.stop()
            await subscription.close()


def test_settling_freezes_the_start_up_heap_and_collects_the_young_less_often() -> None:
    before = gc.get_threshold()
    assert before[0] != heap.YOUNG_THRESHOLD
    heap.settle_after_start()
    try:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, *before[1:])
        heap.settle_after_start()  # settling twice (a cluster role's timer after a restart) keeps the first saved
    finally:
        heap.unsettle()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
