"""The calendar source with a virtual clock (and once with the real one) against a real SqliteBus."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.models.eventsource import EventSource
from eventbridge.sources.base import BusDispatch, SourceContext
from eventbridge.sources.calendar import CalendarSource
from eventbridge.sources.http import HttpRouter
from eventbridge.sources.manager import SourceManager

T0 = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)  # a Monday


class VirtualClock:
    """Time moves only when the source sleeps; past ``until`` the source is parked."""

    def __init__(self, start: datetime, until: datetime) -> None:
        self.time = start
        self.until = until
        self.parked = asyncio.Event()

    def now(self) -> datetime:
        return self.time

    async def sleep(self, seconds: float) -> None:
        target = self.time + timedelta(seconds=seconds)
        if target > self.until:
            self.time = self.until
            self.parked.set()
            await asyncio.Event().wait()  # until the source is stopped
        self.time = target
        await asyncio.sleep(0)


def calendar_es(**spec: Any) -> EventSource:
    return make_eventsource("cron", calendar={"tick": spec})


async def run(
    bus: SqliteBus, state_dir: Path | None, spec: dict[str, Any], start: datetime, until: datetime
) -> CalendarSource:
    """Run the source from ``start`` until the virtual clock reaches ``until``; return it stopped."""
    es = calendar_es(**spec)
    context = SourceContext(es, "calendar", DictReferences(), BusDispatch(bus, es, "calendar"), HttpRouter(), state_dir)
    clock = VirtualClock(start, until)
    source = CalendarSource(context, "tick", es.spec.calendar["tick"], clock=clock)  # type: ignore[index]
    await source.start()
    try:
        await asyncio.wait_for(clock.parked.wait(), 10)
    finally:
        await source.stop()
    return source


async def fires(bus: SqliteBus) -> list[tuple[str, str]]:
    return [(d.event.id, d.event.data["eventTime"]) for d in await bus.list_events(limit=10000)]


async def test_cron_in_a_timezone_with_an_exclusion_date(bus: SqliteBus, state_dir: Path) -> None:
    spec = {
        "schedule": "0 9 * * 1-5",
        "timezone": "America/New_York",
        "exclusionDates": ["EXDATE:20240508T000000Z"],
        "metadata": {"job": "report"},
    }
    await run(bus, state_dir, spec, T0, T0 + timedelta(days=7))
    assert await fires(bus) == [
        ("2024-05-06T13:00:00Z", "2024-05-06T09:00:00-04:00"),
        ("2024-05-07T13:00:00Z", "2024-05-07T09:00:00-04:00"),
        # Wednesday the 8th is excluded
        ("2024-05-09T13:00:00Z", "2024-05-09T09:00:00-04:00"),
        ("2024-05-10T13:00:00Z", "2024-05-10T09:00:00-04:00"),
    ]
    (first, *_) = await bus.list_events()
    assert first.event.data == {"eventTime": "2024-05-06T09:00:00-04:00", "metadata": {"job": "report"}}
    assert (first.event.type, first.event.subject) == ("calendar", "tick")


async def test_interval_in_go_syntax(bus: SqliteBus, state_dir: Path) -> None:
    await run(bus, state_dir, {"interval": "1h30m"}, T0 + timedelta(seconds=0.7), T0 + timedelta(hours=5))
    assert [t for _, t in await fires(bus)] == [
        "2024-05-06T01:30:00Z",
        "2024-05-06T03:00:00Z",
        "2024-05-06T04:30:00Z",
    ]


async def test_catch_up_replays_missed_fires_once_each_across_a_restart(bus: SqliteBus, state_dir: Path) -> None:
    spec = {"interval": "1h", "persistence": {"catchup": {"enabled": True}}}
    first = await run(bus, state_dir, spec, T0, T0 + timedelta(hours=3, minutes=10))
    assert first.last_fire == T0 + timedelta(hours=3)
    # down from 03:10 to 06:30: the 04:00, 05:00 and 06:00 fires are published on restart, then 07:00
    await run(bus, state_dir, spec, T0 + timedelta(hours=6, minutes=30), T0 + timedelta(hours=7, minutes=1))
    assert [t for _, t in await fires(bus)] == [f"2024-05-06T0{h}:00:00Z" for h in range(1, 8)]


async def test_a_fire_published_but_not_recorded_is_not_doubled(bus: SqliteBus, state_dir: Path) -> None:
    spec = {"interval": "1h", "persistence": {"catchup": {"enabled": True}}}
    source = await run(bus, state_dir, spec, T0, T0 + timedelta(hours=2, minutes=5))
    assert source.state_file is not None
    # as if the process died after publishing 02:00 but before writing its state
    source.state_file.write_text(json.dumps({"lastFire": "2024-05-06T01:00:00Z"}))
    await run(bus, state_dir, spec, T0 + timedelta(hours=2, minutes=30), T0 + timedelta(hours=3, minutes=5))
    ids = [i for i, _ in await fires(bus)]
    assert ids == ["2024-05-06T01:00:00Z", "2024-05-06T02:00:00Z", "2024-05-06T03:00:00Z"]


async def test_catch_up_is_bounded_by_max_duration_and_off_without_catch_up(bus: SqliteBus, state_dir: Path) -> None:
    bounded = {"interval": "1h", "persistence": {"catchup": {"enabled": True, "maxDuration": "2h"}}}
    await run(bus, state_dir, bounded, T0, T0 + timedelta(minutes=61))
    await run(bus, state_dir, bounded, T0 + timedelta(hours=10), T0 + timedelta(hours=10, minutes=1))
    assert [t for _, t in await fires(bus)] == [
        "2024-05-06T01:00:00Z",
        "2024-05-06T09:00:00Z",  # 10:00 - 2h = 08:00, so 09:00 and 10:00
        "2024-05-06T10:00:00Z",
    ]


async def test_without_catch_up_a_restart_starts_from_now(bus: SqliteBus, state_dir: Path) -> None:
    await run(bus, state_dir, {"schedule": "0 * * * *"}, T0, T0 + timedelta(minutes=61))
    await run(bus, state_dir, {"schedule": "0 * * * *"}, T0 + timedelta(hours=5, minutes=30), T0 + timedelta(hours=6))
    assert [t for _, t in await fires(bus)] == ["2024-05-06T01:00:00Z", "2024-05-06T06:00:00Z"]


async def test_failed_fire_is_retried_until_the_bus_works_with_catch_up(tmp_path: Path, state_dir: Path) -> None:
    bus = SqliteBus(tmp_path / "late.db")  # not started yet: publishing fails
    es = calendar_es(interval="1h", persistence={"catchup": {"enabled": True}})
    context = SourceContext(es, "calendar", DictReferences(), BusDispatch(bus, es, "calendar"), HttpRouter(), state_dir)
    clock = VirtualClock(T0, T0 + timedelta(hours=1, minutes=30))
    source = CalendarSource(context, "tick", es.spec.calendar["tick"], clock=clock)  # type: ignore[index]
    await source.start()
    try:
        await wait_for(lambda: clock.time >= T0 + timedelta(hours=1))
        await asyncio.sleep(0.3)  # a few retries in real time
        assert source.last_fire is None and clock.time == T0 + timedelta(hours=1)  # not moved on
        await bus.start()
        await asyncio.wait_for(clock.parked.wait(), 10)
        assert [t for _, t in await fires(bus)] == ["2024-05-06T01:00:00Z"]
    finally:
        await source.stop()
        await bus.stop()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"schedule": "0 0 2 * * *"}, "has 6 fields; the calendar source takes exactly 5"),
        ({"schedule": "@daily"}, "descriptors like @daily are not accepted"),
        ({"schedule": "61 * * * *"}, "not a valid cron expression"),
        ({"interval": "1d"}, "not a Go duration"),
        ({}, "needs a schedule"),
        ({"interval": "1h", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"interval": "1h", "exclusionDates": ["EXDATE:2024-05-06"]}, "20060102T150405Z"),
    ],
)
async def test_invalid_calendars_do_not_start(manager: SourceManager, spec: dict[str, Any], fragment: str) -> None:
    es = calendar_es(**spec)
    assert any(fragment in f.message and f.severity == "error" for f in es.check())
    await manager.apply([es])
    (status,) = manager.status()
    assert status.state == "failed" and fragment in (status.error or "")


async def test_real_clock_interval_through_the_manager(
    manager: SourceManager, bus: SqliteBus, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        await manager.apply([calendar_es(interval="1s", persistence={"catchup": {"enabled": True}})])
        await wait_for(bus.list_events, within=5)
    (stored,) = (await bus.list_events())[:1]
    assert stored.event.id == stored.event.data["eventTime"]  # UTC: id and eventTime agree
    state_file = state_dir / "team/cron/calendar.tick.json"
    for _ in range(500):  # the catch-up state is saved after the publish (a thread writes it)
        if state_file.exists():
            break
        await asyncio.sleep(0.01)
    state = json.loads(state_file.read_text())
    assert state["lastFire"] >= stored.event.id


class CountingBus:
    """The real bus, counting the batches it was given."""

    def __init__(self, inner: SqliteBus) -> None:
        self.inner = inner
        self.batches: list[int] = []

    async def publish(self, event: Any) -> bool:
        self.batches.append(1)
        return await self.inner.publish(event)

    async def publish_many(self, events: Any) -> Any:
        self.batches.append(len(events))
        return await self.inner.publish_many(events)


async def test_schedules_sharing_a_clock_fire_together_in_one_batch_and_stop_alone(
    bus: SqliteBus, state_dir: Path
) -> None:
    """All calendar events on one clock share one scheduler: fires due at the same instant reach
    the bus as one batch, a filter drops its fire without stopping the schedule, and stopping one
    source leaves the others firing."""
    spec = {
        "hourly": {"interval": "1h"},
        "also": {"interval": "1h", "metadata": {"team": "b"}},
        "half": {"interval": "30m", "filter": {"expression": "false"}},
        "slow": {"interval": "2h"},
    }
    es = make_eventsource("cron", calendar=spec)
    counting = CountingBus(bus)
    dispatch = BusDispatch(counting, es, "calendar")  # type: ignore[arg-type]
    clock = VirtualClock(T0, T0 + timedelta(hours=2, minutes=10))
    sources = {
        name: CalendarSource(
            SourceContext(es, "calendar", DictReferences(), dispatch, HttpRouter(), state_dir), name, body, clock=clock
        )
        for name, body in es.spec.calendar.items()  # type: ignore[union-attr]
    }
    for source in sources.values():
        await source.start()
    try:
        await asyncio.wait_for(clock.parked.wait(), 10)
    finally:
        for source in sources.values():
            await source.stop()
    events = [(d.event.subject, d.event.id) for d in await bus.list_events()]
    assert sorted(events) == [
        ("also", "2024-05-06T01:00:00Z"), ("also", "2024-05-06T02:00:00Z"),
        ("hourly", "2024-05-06T01:00:00Z"), ("hourly", "2024-05-06T02:00:00Z"),
        ("slow", "2024-05-06T02:00:00Z"),
    ]  # fmt: skip
    assert sorted(counting.batches) == [2, 3]  # 01:00 (hourly, also), 02:00 (hourly, also, slow)
    assert sources["half"].last_fire == T0 + timedelta(hours=2)  # filtered fires still advance it
    # Stopping one source: the others go on (a new run continues from a later virtual time).
    clock.until = T0 + timedelta(hours=4, minutes=10)
    clock.parked.clear()
    for name in ("hourly", "also"):
        await sources[name].start()
    await sources["also"].stop()
    try:
        await asyncio.wait_for(clock.parked.wait(), 10)
    finally:
        await sources["hourly"].stop()
    later = [d.event.subject for d in await bus.list_events(limit=100)][len(events):]
    assert later and set(later) == {"hourly"}


async def test_a_failed_fire_without_catch_up_is_skipped_and_the_schedule_goes_on(
    tmp_path: Path, state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = SqliteBus(tmp_path / "late.db")  # not started: every publish fails
    es = calendar_es(interval="1h")
    context = SourceContext(es, "calendar", DictReferences(), BusDispatch(bus, es, "calendar"), HttpRouter(), state_dir)
    clock = VirtualClock(T0, T0 + timedelta(hours=3, minutes=30))
    source = CalendarSource(context, "tick", es.spec.calendar["tick"], clock=clock)  # type: ignore[index]
    with caplog.at_level(logging.ERROR):
        await source.start()
        try:
            await asyncio.wait_for(clock.parked.wait(), 10)
        finally:
            await source.stop()
    assert source.last_fire is None  # nothing was published
    failures = [r.getMessage() for r in caplog.records if "failed to publish" in r.getMessage()]
    assert len(failures) == 1 and "skipping it" in failures[0]  # logged once, not once per fire
