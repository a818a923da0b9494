"""The event side of the API: event sources, sensors, traces, event log search and replay, with a real
SourceManager (webhook on 127.0.0.1), a real SensorManager and the real SqliteBus."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

import eventbridge.triggers.log  # noqa: F401  (registers the log trigger)
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.models.eventsource import EventSource
from eventbridge.models.kinds import parse_manifest
from eventbridge.models.references import ManifestReferences
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, SensorRecord
from eventbridge.sources.manager import SourceManager
from eventbridge.store.sqlite import SqliteStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordLog:
    """Keeps the SensorManager's records (its on_record hook) and answers traces() newest first."""

    def __init__(self) -> None:
        self.records: list[SensorRecord] = []

    def add(self, record: SensorRecord) -> None:
        self.records.append(record)

    def traces(self, namespace: str, sensor: str, limit: int = 100) -> list[SensorRecord]:
        mine = [r for r in self.records if r.sensor == f"{namespace}/{sensor}"]
        return list(reversed(mine))[:limit]


class World:
    def __init__(self, client: TestClient, port: int, bus: SqliteBus, log: RecordLog) -> None:
        self.client = client
        self.port = port
        self.bus = bus
        self.log = log

    async def send(self, body: dict[str, Any]) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{self.port}/hook", json=body) as response,
        ):
            assert response.status == 200


@pytest.fixture
async def world(make_client, bus: SqliteBus, store: SqliteStore) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    port = free_port()
    source = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "EventSource",
            "metadata": {"name": "hooks", "namespace": "default"},
            "spec": {"webhook": {"push": {"port": str(port), "endpoint": "/hook", "method": "POST"}}},
        }
    )
    sensor = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "picky", "namespace": "default"},
            "spec": {
                "dependencies": [
                    {
                        "name": "push",
                        "eventSourceName": "hooks",
                        "eventName": "push",
                        "filters": {"data": [{"path": "body.ok", "type": "bool", "value": ["true"]}]},
                    }
                ],
                "triggers": [{"template": {"name": "say", "log": {}}}],
            },
        }
    )
    assert isinstance(source, EventSource) and isinstance(sensor, Sensor)
    references = ManifestReferences([])
    log = RecordLog()
    sources = SourceManager(bus, references, host="127.0.0.1")
    sensors = SensorManager(bus, store, references, on_record=log.add)
    await sensors.apply([sensor])
    await sources.apply([source])
    client = await make_client(eventsources=lambda: [source], sensors=lambda: [sensor], sources=sources, traces=log)
    yield World(client, port, bus, log)
    await sources.stop()
    await sensors.stop()


async def until(predicate: Any, seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - polls state owned by other tasks
            await asyncio.sleep(0.02)


async def test_event_sources_show_each_event_state_and_endpoint(world: World) -> None:
    body = await (await world.client.get("/api/v1/event-sources/default")).json()
    [item] = body["items"]
    assert item["metadata"]["name"] == "hooks"
    assert item["status"]["events"] == [
        {
            "type": "webhook",
            "name": "push",
            "state": "running",
            "endpoint": "/hook",
            "port": world.port,
            "method": "POST",
        }
    ]
    one = await world.client.get("/api/v1/event-sources/default/hooks")
    assert one.status == 200
    assert (await world.client.get("/api/v1/event-sources/default/nope")).status == 404
    assert (await (await world.client.get("/api/v1/event-sources/other")).json())["items"] == []


async def test_sensors_and_their_traces_say_why_an_event_did_not_fire(world: World) -> None:
    listed = await (await world.client.get("/api/v1/sensors/default")).json()
    assert [s["metadata"]["name"] for s in listed["items"]] == ["picky"]
    sensor = await (await world.client.get("/api/v1/sensors/default/picky")).json()
    assert sensor["spec"]["dependencies"][0]["eventSourceName"] == "hooks"

    await world.send({"ok": False})
    await world.send({"ok": True})
    await until(lambda: any(r.kind == "trigger" for r in world.log.records))
    traces = (await (await world.client.get("/api/v1/sensors/default/picky/traces?limit=10")).json())["items"]
    rejected = [t for t in traces if t["kind"] == "filter" and not t["ok"]]
    fired = [t for t in traces if t["kind"] == "trigger" and t["ok"]]
    assert rejected and rejected[0]["name"] == "push" and rejected[0]["reason"]
    assert fired and fired[0]["name"] == "say"


async def test_event_log_search_by_source_name_text_and_time(world: World) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    for index in range(3):
        await world.send({"ok": True, "n": index, "note": "needle" if index == 1 else "hay"})
    client = world.client
    everything = await (await client.get("/api/v1/event-log?source=hooks&subject=push")).json()
    assert [item["event"]["data"]["body"]["n"] for item in everything["items"]] == [2, 1, 0]
    assert everything["items"][0]["offset"] > everything["items"][1]["offset"]

    text = await (await client.get("/api/v1/event-log?q=NEEDLE")).json()
    assert [item["event"]["data"]["body"]["n"] for item in text["items"]] == [1]

    since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = await (await client.get(f"/api/v1/event-log?since={since}&type=webhook")).json()
    assert len(recent["items"]) == 3
    old = await (await client.get(f"/api/v1/event-log?until={since}")).json()
    assert old["items"] == []
    assert (await (await client.get("/api/v1/event-log?source=other")).json())["items"] == []

    page = await (await client.get("/api/v1/event-log?limit=2")).json()
    assert len(page["items"]) == 2
    rest = await (await client.get(f"/api/v1/event-log?limit=2&before={page['metadata']['continue']}")).json()
    assert [i["event"]["data"]["body"]["n"] for i in rest["items"]] == [0]

    bad = await client.get("/api/v1/event-log?since=yesterday")
    assert bad.status == 400


async def test_replay_publishes_a_copy_the_sensor_sees_again(world: World) -> None:
    await world.send({"ok": True, "n": 7})
    await until(lambda: sum(r.kind == "trigger" for r in world.log.records) == 1)
    [item] = (await (await world.client.get("/api/v1/event-log")).json())["items"]
    offset = item["offset"]
    single = await (await world.client.get(f"/api/v1/event-log/{offset}")).json()
    assert single["event"]["id"] == item["event"]["id"]

    response = await world.client.post(f"/api/v1/event-log/{offset}/replay")
    assert response.status == 200
    replayed = await response.json()
    assert replayed["event"]["id"] != item["event"]["id"]
    assert replayed["event"]["eventbridgereplayof"] == item["event"]["id"]
    assert replayed["event"]["data"] == item["event"]["data"]
    await until(lambda: sum(r.kind == "trigger" for r in world.log.records) == 2)
    assert len((await (await world.client.get("/api/v1/event-log")).json())["items"]) == 2

    assert (await world.client.get("/api/v1/event-log/99999")).status == 404
    assert (await world.client.get("/api/v1/event-log/abc")).status == 400


async def test_without_a_bus_the_event_log_answers_501(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(bus=None)
    response = await client.get("/api/v1/event-log")
    assert response.status == 501 and "no event log" in (await response.json())["message"]
    traces = await (await client.get("/api/v1/sensors/default/x/traces")).json()
    assert traces["items"] == []
