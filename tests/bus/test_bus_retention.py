"""SqliteBus retention: old events go once every open subscription acknowledged them."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_bus_sqlite import make_event, take

import eventbridge.bus.sqlite as bus_module
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import EventBridgeError
from eventbridge.events import Event


def aged(n: int, hours: float) -> Event:
    return dataclasses.replace(make_event(n), time=datetime.now(UTC) - timedelta(hours=hours))


async def stored_ids(bus: SqliteBus) -> list[str]:
    return [delivery.event.id for delivery in await bus.list_events(limit=1000)]


async def test_old_events_go_once_every_open_subscription_acknowledged_them(tmp_path: Path) -> None:
    async with SqliteBus(tmp_path / "bus.db", max_age=3600, max_events=0) as bus:
        for event in (aged(1, 3), aged(2, 2), aged(3, 2), make_event(4)):
            assert await bus.publish(event)
        fast, slow = bus.subscribe("fast", from_start=True), bus.subscribe("slow", from_start=True)
        for delivery in await take(fast, 4):
            await fast.ack(delivery)
        deliveries = await take(slow, 4)
        for delivery in deliveries[:2]:  # id-3 (old) and id-4 (new) not yet handled by "slow"
            await slow.ack(delivery)
        assert await bus.prune() == 2
        assert await stored_ids(bus) == ["id-3", "id-4"]
        assert await bus.prune() == 0
        # a stopped sensor does not hold old events back (as a JetStream consumer does not)
        await slow.close()
        assert await bus.prune() == 1
        assert await stored_ids(bus) == ["id-4"]
        assert await bus.publish(aged(1, 3)), "the id of a removed event is new again"


async def test_at_most_max_events_are_kept_removed_in_small_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module, "PRUNE_CHUNK", 2)
    async with SqliteBus(tmp_path / "bus.db", max_age=0, max_events=3) as bus:
        subscription = bus.subscribe("g", from_start=True)
        for n in range(8):
            await bus.publish(make_event(n))
        for delivery in await take(subscription, 8):
            await subscription.ack(delivery)
        assert await bus.prune() == 5
        assert await stored_ids(bus) == ["id-5", "id-6", "id-7"]


async def test_nothing_goes_while_a_subscription_has_not_started_or_retention_is_off(tmp_path: Path) -> None:
    async with SqliteBus(tmp_path / "bus.db", max_age=60, max_events=0) as bus:
        await bus.publish(aged(1, 1))
        bus.subscribe("new", from_start=True)  # its start offset is not known yet
        assert await bus.prune() == 0
    async with SqliteBus(tmp_path / "bus.db", max_age=0, max_events=0) as bus:
        assert await bus.prune() == 0
        assert await stored_ids(bus) == ["id-1"]


def test_retention_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bus = SqliteBus(tmp_path / "bus.db")
    assert (bus.max_age, bus.max_events) == (72 * 3600, 1_000_000)  # JetStream's stream defaults
    monkeypatch.setenv("EVENTBRIDGE_BUS_MAX_AGE", "1h30m")
    monkeypatch.setenv("EVENTBRIDGE_BUS_MAX_EVENTS", "0")
    bus = SqliteBus(tmp_path / "bus.db")
    assert (bus.max_age, bus.max_events) == (5400, 0)
    monkeypatch.setenv("EVENTBRIDGE_BUS_MAX_AGE", "3d")
    with pytest.raises(EventBridgeError, match=r"EVENTBRIDGE_BUS_MAX_AGE='3d'.*Go duration"):
        SqliteBus(tmp_path / "bus.db")


def test_an_event_bus_manifest_sets_the_retention_unless_a_variable_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SqliteBus(tmp_path / "bus.db")
    bus.retain(max_age=600, max_events=0)
    assert (bus.max_age, bus.max_events) == (600, 0)
    bus.retain()  # the manifest is gone: back to the defaults
    assert (bus.max_age, bus.max_events) == (72 * 3600, 1_000_000)
    monkeypatch.setenv("EVENTBRIDGE_BUS_MAX_EVENTS", "50")
    bus.retain(max_age=600, max_events=7)
    assert (bus.max_age, bus.max_events) == (600, 50)  # the operator's variable wins over the manifest


async def test_a_bus_started_without_bounds_prunes_once_a_manifest_sets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module, "PRUNE_INTERVAL", 0.05)
    async with SqliteBus(tmp_path / "bus.db", max_age=0, max_events=0) as bus:
        await bus.publish(aged(1, 1))
        await bus.publish(make_event(2))
        await asyncio.sleep(0.2)
        assert await stored_ids(bus) == ["id-1", "id-2"]
        bus.retain(max_age=60, max_events=0)
        for _ in range(100):
            if await stored_ids(bus) == ["id-2"]:
                break
            await asyncio.sleep(0.02)
        assert await stored_ids(bus) == ["id-2"]


async def test_the_bus_prunes_by_itself_every_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "PRUNE_INTERVAL", 0.05)
    async with SqliteBus(tmp_path / "bus.db", max_age=60, max_events=0) as bus:
        await bus.publish(aged(1, 1))
        await bus.publish(make_event(2))
        for _ in range(100):
            if await stored_ids(bus) == ["id-2"]:
                break
            await asyncio.sleep(0.02)
        assert await stored_ids(bus) == ["id-2"]


async def test_a_pass_goes_in_log_order_and_stops_at_a_window_with_nothing_to_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each delete looks only at the oldest events left, so a pass never scans the whole log; an
    old-dated event behind newer ones waits until they go."""
    monkeypatch.setattr(bus_module, "PRUNE_CHUNK", 2)
    async with SqliteBus(tmp_path / "bus.db", max_age=3600, max_events=0) as bus:
        subscription = bus.subscribe("g", from_start=True)
        for event in (aged(1, 5), aged(2, 4), aged(3, 3), make_event(4), make_event(5), aged(6, 9)):
            await bus.publish(event)
        for delivery in await take(subscription, 6):
            await subscription.ack(delivery)
        assert await bus.prune() == 3
        assert await stored_ids(bus) == ["id-4", "id-5", "id-6"]
