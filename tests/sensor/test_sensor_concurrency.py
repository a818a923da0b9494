"""Firings run concurrently, bounded per sensor; a stop mid-firing loses nothing.

The trigger is the http trigger calling a real local aiohttp server that holds each request until
the test lets it go, so the tests see exactly how many firings are in flight at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, firing_concurrency
from eventbridge.sensor.state import PendingStore
from eventbridge.store.sqlite import SqliteStore

NS = "argo-events"


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


class GatedServer:
    """Counts requests in flight; each waits until ``open`` is set."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.bodies: list[str] = []
        self.arrived = asyncio.Condition()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        async with self.arrived:
            self.bodies.append(body)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.arrived.notify_all()
        try:
            await self.open.wait()
        finally:
            self.in_flight -= 1
        return web.Response(text="ok")

    async def wait_arrived(self, count: int, limit: float = 5.0) -> None:
        async with asyncio.timeout(limit), self.arrived:
            await self.arrived.wait_for(lambda: len(self.bodies) >= count)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.open.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[GatedServer]:
    instance = GatedServer()
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


def http_sensor(port: int, conditions: str = "push || approve") -> Sensor:
    template: dict[str, Any] = {
        "name": "call",
        "http": {
            "url": f"http://127.0.0.1:{port}/hook",
            "method": "POST",
            "timeout": 30,
            "payload": [{"src": {"dependencyName": "push", "dataKey": "body.n"}, "dest": "n"}],
        },
    }
    template["conditions"] = conditions
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": "ci", "namespace": NS},
        "spec": {
            "dependencies": [
                {"name": "push", "eventSourceName": "github", "eventName": "repo"},
                {"name": "approve", "eventSourceName": "github", "eventName": "approval"},
            ],
            "triggers": [{"template": template}],
        },
    })  # fmt: skip


def event(number: int, subject: str = "repo") -> Event:
    return Event(id=f"e{number}-{subject}", source="github", subject=subject, type="github", namespace=NS,
                 data={"body": {"n": number}}, time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))  # fmt: skip


async def cursor(bus: SqliteBus) -> int:
    return (await bus.group_offsets()).get(f"sensor:{NS}/ci", 0)


async def test_events_fire_concurrently_up_to_the_bound(
    tmp_path: Path, store: SqliteStore, server: GatedServer
) -> None:
    bus = SqliteBus(tmp_path / "bus.db")
    await bus.start()
    try:
        async with SensorManager(bus, store, NoReferences(), concurrency=3) as manager:
            await manager.apply([http_sensor(server.port)])
            for number in range(6):
                await bus.publish(event(number))
            await server.wait_arrived(3)  # one at a time would stop at 1: the server holds each request
            await asyncio.sleep(0.2)
            assert server.in_flight == 3  # never more than the bound
            assert await cursor(bus) == 0  # nothing acknowledged while its trigger runs
            server.open.set()
            await server.wait_arrived(6)
            for _ in range(100):
                if await cursor(bus) == bus.head:
                    break
                await asyncio.sleep(0.02)
            assert await cursor(bus) == bus.head
            assert server.most_in_flight == 3
            assert sorted(server.bodies) == sorted(f'{{"n":"{n}"}}' for n in range(6))
    finally:
        await bus.stop()


async def test_a_stop_mid_firing_redelivers_the_event(tmp_path: Path, store: SqliteStore, server: GatedServer) -> None:
    bus_path = tmp_path / "bus.db"
    bus = SqliteBus(bus_path)
    await bus.start()
    manager = SensorManager(bus, store, NoReferences())
    await manager.apply([http_sensor(server.port)])
    await bus.publish(event(1))
    await server.wait_arrived(1)
    await manager.stop()  # cancels the firing: the event must not be acknowledged
    assert await cursor(bus) == 0
    await bus.stop()

    bus = SqliteBus(bus_path)
    await bus.start()
    try:
        server.open.set()
        async with SensorManager(bus, store, NoReferences()) as manager:
            await manager.apply([http_sensor(server.port)])
            await server.wait_arrived(2)
            assert server.bodies == ['{"n":"1"}', '{"n":"1"}']
    finally:
        await bus.stop()


async def test_a_durable_firing_cut_short_runs_again_after_a_restart(
    tmp_path: Path, store: SqliteStore, server: GatedServer
) -> None:
    bus = SqliteBus(tmp_path / "bus.db")
    state_path = tmp_path / "state" / "sensors.db"
    await bus.start()
    try:
        manager = SensorManager(bus, store, NoReferences(), state_path=state_path)
        await manager.apply([http_sensor(server.port, conditions="push && approve")])
        await bus.publish(event(7))
        await bus.publish(event(8, subject="approval"))
        await server.wait_arrived(1)
        await manager.stop()
        # both events were acknowledged (durable in the state table); the firing is stored
        assert await cursor(bus) == bus.head
        [(_, trigger, events)] = PendingStore(state_path).firings(f"{NS}/ci")
        assert (trigger, sorted(e.id for e in events.values())) == ("call", ["e7-repo", "e8-approval"])

        server.open.set()
        async with SensorManager(bus, store, NoReferences(), state_path=state_path) as manager:
            await manager.apply([http_sensor(server.port, conditions="push && approve")])
            await server.wait_arrived(2)
            for _ in range(100):
                if not PendingStore(state_path).firings(f"{NS}/ci"):
                    break
                await asyncio.sleep(0.02)
            assert PendingStore(state_path).firings(f"{NS}/ci") == []
            [trace] = manager.traces(NS, "ci", 1)
            assert trace["triggers"][0]["status"] == "fired"
        assert server.bodies == ['{"n":"7"}', '{"n":"7"}']
    finally:
        await bus.stop()


def test_the_bound_comes_from_the_environment() -> None:
    assert firing_concurrency({}) == 64
    assert firing_concurrency({"EVENTBRIDGE_SENSOR_CONCURRENCY": "5"}) == 5
    for bad in ("0", "-1", "many"):
        with pytest.raises(InvalidError, match="EVENTBRIDGE_SENSOR_CONCURRENCY"):
            firing_concurrency({"EVENTBRIDGE_SENSOR_CONCURRENCY": bad})
