"""SqliteBus: durability, ordering, dedup, cursors, group commit, wake-ups."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eventbridge.bus.base import Bus, Delivery, publish_all
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import ConflictError, EventBridgeError
from eventbridge.events import Event

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_event(n: int | str, *, subject: str = "ev", source: str = "es") -> Event:
    return Event(id=f"id-{n}", source=source, subject=subject, type="webhook", data={"n": n})


async def take(subscription: object, count: int, within: float = 5.0) -> list[Delivery]:
    out: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:  # type: ignore[attr-defined]
            out.append(delivery)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), within)
    return out


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    b = SqliteBus(tmp_path / "bus.db")
    await b.start()
    yield b
    await b.stop()


def test_is_a_bus(tmp_path: Path) -> None:
    bus: Bus = SqliteBus(tmp_path / "x.db")
    assert bus is not None


async def test_publish_then_read_in_order(bus: SqliteBus) -> None:
    for n in range(20):
        assert await bus.publish(make_event(n)) is True
    sub = bus.subscribe("g", from_start=True)
    got = await take(sub, 20)
    assert [d.event.data["n"] for d in got] == list(range(20))
    offsets = [d.offset for d in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == 20
    assert got[0].event.id == "id-0" and got[0].event.source == "es" and got[0].event.subject == "ev"
    assert bus.head == offsets[-1]


async def test_new_group_starts_at_end_of_log(bus: SqliteBus) -> None:
    await bus.publish(make_event("old"))
    sub = bus.subscribe("late")
    # published right after subscribe() but before iterating: must be delivered
    await bus.publish(make_event("new"))
    got = await take(sub, 1)
    assert got[0].event.id == "id-new"


async def test_dedup_on_namespace_source_subject_id(bus: SqliteBus) -> None:
    assert await bus.publish(make_event(1)) is True
    assert await bus.publish(make_event(1)) is False
    # same id under another subject or source is a different event
    assert await bus.publish(make_event(1, subject="other")) is True
    assert await bus.publish(make_event(1, source="other-es")) is True
    # duplicates inside one group-committed batch
    results = await asyncio.gather(*(bus.publish(make_event(7)) for _ in range(10)))
    assert sorted(results) == [False] * 9 + [True]
    events = await bus.list_events()
    assert [(d.event.source, d.event.subject, d.event.id) for d in events] == [
        ("es", "ev", "id-1"),
        ("es", "other", "id-1"),
        ("other-es", "ev", "id-1"),
        ("es", "ev", "id-7"),
    ]


async def test_offsets_stay_exact_when_duplicates_use_up_row_ids(bus: SqliteBus) -> None:
    """An ignored duplicate still uses up an AUTOINCREMENT value, so a statement's new rows are not
    always consecutive; the head the bus reports (which subscribers read up to) must still be the
    newest stored offset, and every new event must reach a subscriber, in every chunk size."""
    sub = bus.subscribe("g")
    expected: list[str] = []
    known: set[str] = set()
    for round_ in range(6):
        names = [f"{round_}-{n}" for n in range(37)]
        # duplicates of stored events and of each other, first, in the middle and last
        batch = [f"{round_ - 1}-3" if round_ else "0-0", *names[:20], names[5], *names[20:], names[0], "0-1"]
        answers = await bus.publish_many([make_event(name) for name in batch])
        for name, answer in zip(batch, answers, strict=True):
            assert answer is (name not in known), (name, answer)
            if name not in known:
                known.add(name)
                expected.append(f"id-{name}")
        stored = await bus.list_events(limit=10_000)
        assert [d.event.id for d in stored] == expected
        assert bus.head == stored[-1].offset
    got = await take(sub, len(expected))
    assert [d.event.id for d in got] == expected


async def test_subscribers_that_keep_up_read_the_tail_and_the_rest_read_the_file(
    bus: SqliteBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber that keeps up gets what was just committed from memory (no read of the file);
    one further behind than the tail reaches gets the same events, in order, from the file; and
    once every subscriber has read them the tail lets go of the bodies."""
    import eventbridge.bus.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "TAIL_LIMIT", 50)
    bus.read_batch = 16  # the slow one crosses from the file to the tail between two reads
    file_reads: list[int] = []
    read_after = bus._read_after

    async def counted(offset: int, limit: int) -> list[Delivery]:
        file_reads.append(offset)
        return await read_after(offset, limit)

    monkeypatch.setattr(bus, "_read_after", counted)
    await bus.publish(make_event("before"))
    fast, slow = bus.subscribe("fast"), bus.subscribe("slow")
    expected: list[str] = []
    for round_ in range(4):
        names = [f"{round_}-{n}" for n in range(30)]
        await bus.publish_many([make_event(name) for name in names])
        expected += [f"id-{name}" for name in names]
        got = await take(fast, 30)
        assert [d.event.id for d in got] == expected[-30:]
        for delivery in got:
            await fast.ack(delivery)
    assert file_reads == []  # the fast one never read the file
    assert len(bus._tail.offsets) <= 50  # bounded while "slow" lags
    got = await take(slow, 120)  # 120 events behind: the first ones only in the file
    assert [d.event.id for d in got] == expected
    assert file_reads and [d.offset for d in got] == sorted(d.offset for d in got)
    assert bus._tail.bodies == [] and bus._tail.size == 0  # both have read everything: nothing kept
    await bus.publish(make_event("after"))
    assert [d.event.id for d in await take(slow, 1)] == ["id-after"]
    assert [d.event.id for d in await take(fast, 1)] == ["id-after"]


async def test_the_tail_is_bounded_in_bytes_too(bus: SqliteBus, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventbridge.bus.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "TAIL_BYTES", 3000)
    lagging = bus.subscribe("lagging")
    await bus.publish_many([make_event(n) for n in range(100)])
    assert 0 < bus._tail.size <= 3000 and bus._tail.size == sum(map(len, bus._tail.bodies))
    assert len(bus._tail.bodies) < 100
    assert [d.event.id for d in await take(lagging, 100)] == [f"id-{n}" for n in range(100)]


async def test_publish_many_answers_per_event_in_order(bus: SqliteBus) -> None:
    """publish_many (the calendar's batch) answers like publish, per event, and through the
    generic helper a bus without it publishes them one by one with the same answers."""
    assert await bus.publish(make_event("known")) is True
    batch = [make_event(n) for n in range(300)] + [make_event("known"), make_event(5)]
    assert await bus.publish_many(batch) == [True] * 300 + [False, False]
    assert [d.event.id for d in await bus.list_events(limit=1000)] == ["id-known"] + [f"id-{n}" for n in range(300)]

    class PlainBus:  # no publish_many: publish_all falls back to publish
        async def publish(self, event: Event) -> bool:
            if event.id == "id-bad":
                raise EventBridgeError("refused")
            return await bus.publish(event)

    answers = await publish_all(PlainBus(), [make_event("x"), make_event("bad"), make_event("x")])  # type: ignore[arg-type]
    assert answers[0] is True and isinstance(answers[1], EventBridgeError) and answers[2] is False


async def test_subscriber_is_woken_by_commit(bus: SqliteBus) -> None:
    sub = bus.subscribe("g")
    reader = asyncio.create_task(take(sub, 3, within=2.0))
    await asyncio.sleep(0.05)
    assert not reader.done()
    for n in range(3):
        await bus.publish(make_event(n))
    got = await reader
    assert [d.event.id for d in got] == ["id-0", "id-1", "id-2"]


async def test_out_of_order_ack_advances_only_over_contiguous_prefix(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = SqliteBus(path)
    await bus.start()
    for n in range(6):
        await bus.publish(make_event(n))
    sub = bus.subscribe("g", from_start=True)
    d = await take(sub, 6)
    await sub.ack(d[2])
    await sub.ack(d[1])
    assert sub.cursor == 0  # offset of d[0] not acked yet
    await sub.ack(d[0])
    assert sub.cursor == d[2].offset
    await sub.ack(d[4])
    assert sub.cursor == d[2].offset
    await asyncio.sleep(0.1)  # batched cursor write lands
    assert (await bus.group_offsets())["g"] == d[2].offset
    await bus.stop()

    again = SqliteBus(path)
    await again.start()
    sub2 = again.subscribe("g")
    got = await take(sub2, 3)
    # d[3] was never acked: it and everything after it are redelivered (d[4] too: at-least-once)
    assert [x.event.id for x in got] == ["id-3", "id-4", "id-5"]
    await again.stop()


async def test_cursor_resumes_after_restart_and_new_events(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    async with SqliteBus(path) as bus:
        sub = bus.subscribe("g")
        for n in range(5):
            await bus.publish(make_event(n))
        for d in await take(sub, 5):
            await sub.ack(d)
        await bus.publish(make_event(5))  # published, not consumed
    async with SqliteBus(path) as bus:
        await bus.publish(make_event(6))
        got = await take(bus.subscribe("g"), 2)
        assert [d.event.id for d in got] == ["id-5", "id-6"]
        # from_start is ignored for an existing group
        await bus.subscribe("g2", from_start=True).close()


async def test_two_groups_are_independent(bus: SqliteBus) -> None:
    a = bus.subscribe("a")
    b = bus.subscribe("b")
    for n in range(4):
        await bus.publish(make_event(n))
    got_a = await take(a, 4)
    for d in got_a:
        await a.ack(d)
    got_b = await take(b, 2)
    await b.ack(got_b[0])
    await a.close()
    await b.close()
    offsets = await bus.group_offsets()
    assert offsets["a"] == got_a[-1].offset
    assert offsets["b"] == got_b[0].offset
    assert [d.event.id for d in got_a] == [f"id-{n}" for n in range(4)]


async def test_concurrent_publishers_all_durable_and_ordered_per_publisher(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    async with SqliteBus(path) as bus:

        async def publisher(p: int) -> None:
            for n in range(40):
                assert await bus.publish(make_event(f"{p}-{n}", source=f"p{p}"))

        await asyncio.gather(*(publisher(p) for p in range(64)))
    async with SqliteBus(path) as bus:
        events = await bus.list_events(limit=10_000)
        assert len(events) == 64 * 40
        for p in range(64):
            mine = [d.event.id for d in events if d.event.source == f"p{p}"]
            assert mine == [f"id-{p}-{n}" for n in range(40)]
        only = await bus.list_events(source="p3", limit=5)
        assert [d.event.id for d in only] == [f"id-3-{n}" for n in range(5)]
        found = await bus.get_event("default", "p9", "ev", "id-9-39")
        assert found is not None and found.event.data == {"n": "9-39"}
        assert await bus.get_event("default", "p9", "ev", "nope") is None


async def test_event_round_trips_through_the_log(bus: SqliteBus) -> None:
    event = Event(
        id="abc",
        source="es",
        subject="ev",
        type="webhook",
        data={"header": {"X": ["1"]}, "body": [1, "two", None]},
        namespace="team-a",
        extensions={"traceparent": "00-1-2-01"},
    )
    await bus.publish(event)
    (stored,) = await bus.list_events()
    assert stored.event == event


async def test_one_open_subscription_per_group_and_close_ends_iteration(bus: SqliteBus) -> None:
    sub = bus.subscribe("g")
    with pytest.raises(ConflictError):
        bus.subscribe("g")
    reader = asyncio.create_task(take(sub, 1, within=2.0))
    await asyncio.sleep(0.02)
    await sub.close()
    assert await reader == []
    bus.subscribe("g")  # free again


async def test_ack_of_unknown_offset_is_rejected(bus: SqliteBus) -> None:
    await bus.publish(make_event(1))
    sub = bus.subscribe("g", from_start=True)
    (d,) = await take(sub, 1)
    with pytest.raises(ValueError, match="not delivered"):
        await sub.ack(Delivery(d.event, d.offset + 100))
    await sub.ack(d)
    await sub.ack(d)  # a second ack of an offset behind the cursor is harmless


async def test_not_running_bus_refuses(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "bus.db")
    with pytest.raises(EventBridgeError, match="not running"):
        await bus.publish(make_event(1))
    await bus.start()
    await bus.stop()
    with pytest.raises(EventBridgeError, match="not running"):
        await bus.publish(make_event(1))


async def test_open_failure_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bus = SqliteBus(blocker / "bus.db")  # parent is a file
    with pytest.raises(OSError):
        await bus.start()


PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from eventbridge.bus.sqlite import SqliteBus
    from eventbridge.events import Event

    async def main() -> None:
        bus = SqliteBus(Path(sys.argv[1]))
        await bus.start()
        print("ready", flush=True)

        async def publisher(p: int) -> None:
            n = 0
            while True:
                event_id = f"{p}-{n}"
                await bus.publish(Event(id=event_id, source="es", subject="ev", type="t", data={"n": n}))
                sys.stdout.write(event_id + "\\n")
                sys.stdout.flush()
                n += 1

        await asyncio.gather(*(publisher(p) for p in range(16)))

    asyncio.run(main())
    """
)


def test_acked_events_survive_sigkill_of_the_writer_process(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(path)],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    acked: list[str] = []
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        while len(acked) < 1500:
            line = proc.stdout.readline()
            assert line, "publisher died early"
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        # whatever it printed before dying was acknowledged too
        acked.extend(line.strip() for line in proc.stdout if line.strip())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    async def read_back() -> set[str]:
        async with SqliteBus(path) as bus:
            return {d.event.id for d in await bus.list_events(limit=1_000_000)}

    stored = asyncio.run(read_back())
    missing = [event_id for event_id in acked if event_id not in stored]
    assert missing == []
    assert len(stored) >= len(acked)


async def test_a_failing_write_fails_alone_and_the_batch_still_commits(bus: SqliteBus) -> None:
    def broken(conn: object) -> None:
        raise ValueError("broken write")

    results = await asyncio.gather(
        bus.publish(make_event("a")),
        bus._call(broken, write=True),  # lands in the same group-committed batch
        bus.publish(make_event("b")),
        return_exceptions=True,
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], ValueError)
    assert [d.event.id for d in await bus.list_events()] == ["id-a", "id-b"]


async def test_the_wal_is_checkpointed_off_the_commit_path(tmp_path: Path) -> None:
    """Commits never checkpoint (auto-checkpoint is off); the checkpointer thread does, so the WAL
    does not keep growing while events stream in."""
    path = tmp_path / "bus.db"
    async with SqliteBus(path) as bus:
        body = "x" * 4000
        wal = path.with_name(path.name + "-wal")
        sizes = []
        for round_ in range(12):
            await bus.publish_many(
                [Event(id=f"{round_}-{n}", source="es", subject="ev", type="webhook", data=body) for n in range(500)]
            )
            await asyncio.sleep(0.3)  # the checkpointer runs at most every 0.02 s (sqlitekit.WalCheckpointer)
            sizes.append(wal.stat().st_size)
        written = 12 * 500 * 4000
        # without checkpoints the WAL would hold every page ever written (> 24 MB)
        assert max(sizes[-4:]) < written / 3, sizes
        assert len(await bus.list_events(limit=10000)) == 6000
