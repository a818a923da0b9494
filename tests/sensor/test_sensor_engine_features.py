"""Durable && state, conditionsReset, traces, debounce and dlqTrigger, on a real SqliteBus and
SqliteStore in tmp_path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import NotFoundError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.engine import ResetSchedule
from eventbridge.sensor.manager import SensorManager, SensorRecord, next_tick, previous_tick
from eventbridge.sensor.state import PendingStore
from eventbridge.sensor.traces import TraceLog
from eventbridge.store.sqlite import SqliteStore

NS = "argo-events"
DEPENDENCIES = [
    {"name": "push", "eventSourceName": "github", "eventName": "repo"},
    {"name": "approve", "eventSourceName": "github", "eventName": "approval"},
]


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


class Recorder:
    def __init__(self) -> None:
        self.records: list[SensorRecord] = []
        self._changed = asyncio.Event()

    def __call__(self, record: SensorRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def triggers(self, name: str | None = None) -> list[SensorRecord]:
        return [r for r in self.records if r.kind == "trigger" and (name is None or r.name == name)]

    def filters(self) -> list[SensorRecord]:
        return [r for r in self.records if r.kind == "filter"]

    async def wait_for(self, predicate: Callable[[], bool], limit: float = 5.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


def sensor(
    *,
    conditions: str | None = "push && approve",
    trigger_extra: dict[str, Any] | None = None,
    template_extra: dict[str, Any] | None = None,
    filters: dict[str, Any] | None = None,
    workflow_name: dict[str, str] | None = None,
) -> Sensor:
    dependencies = [dict(d) for d in DEPENDENCIES]
    if filters:
        dependencies[0]["filters"] = filters
    template: dict[str, Any] = {
        "name": "build",
        "argoWorkflow": {"source": {"resource": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": workflow_name or {"generateName": "build-"},
            "spec": {"arguments": {"parameters": [{"name": "ref", "value": "unset"}]}},
        }}, "parameters": [{"src": {"dependencyName": "push", "dataKey": "body.ref", "value": "none"},
                            "dest": "spec.arguments.parameters.0.value"}]},
    }
    if conditions is not None:
        template["conditions"] = conditions
    template.update(template_extra or {})
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": "ci", "namespace": NS},
        "spec": {"dependencies": dependencies, "triggers": [{"template": template, **(trigger_extra or {})}]},
    })


def event(event_id: str, subject: str = "repo", ref: str = "refs/heads/main") -> Event:
    return Event(id=event_id, source="github", subject=subject, type="github", namespace=NS,
                 data={"body": {"ref": ref}}, time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    instance = SqliteBus(tmp_path / "bus.db")
    await instance.start()
    yield instance
    await instance.stop()


async def test_durable_state_acks_held_events_and_survives_restart(tmp_path: Path, store: SqliteStore) -> None:
    bus_path, state_path = tmp_path / "bus2.db", tmp_path / "state" / "sensors.db"
    bus = SqliteBus(bus_path)
    await bus.start()
    first = Recorder()
    manager = SensorManager(bus, store, NoReferences(), on_record=first, state_path=state_path)
    await manager.apply([sensor()])
    await bus.publish(event("p1", ref="refs/heads/old"))
    await bus.publish(event("p2", ref="refs/heads/new"))  # replaces p1
    await first.wait_for(lambda: len(first.filters()) == 2)
    await asyncio.sleep(0.05)
    # held events are durable, so the cursor moved past them
    assert (await bus.group_offsets())[f"sensor:{NS}/ci"] == bus.head
    await manager.stop()
    held = PendingStore(state_path).load(f"{NS}/ci")
    assert {dep: item.event.id for dep, item in held["build"].items()} == {"push": "p2"}
    await bus.stop()

    bus = SqliteBus(bus_path)
    await bus.start()
    try:
        second = Recorder()
        async with SensorManager(bus, store, NoReferences(), on_record=second, state_path=state_path) as manager:
            await manager.apply([sensor()])
            await bus.publish(event("a1", subject="approval"))
            await second.wait_for(lambda: len(second.triggers()) == 1)
            # no replay of p1/p2 after the restart: only the new event was delivered
            assert [r.event_ids for r in second.filters()] == [("a1",)]
        assert second.triggers()[0].event_ids == ("a1", "p2")
    finally:
        await bus.stop()
    [workflow] = await store.list("Workflow", NS)
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "refs/heads/new"
    assert PendingStore(state_path).load(f"{NS}/ci") == {}


def test_pending_store_clear_before_and_retain(tmp_path: Path) -> None:
    state = PendingStore(tmp_path / "s.db")
    state.put("ns/s", "t", "a", event("e1"), stored_at=100.0)
    state.put("ns/s", "t", "b", event("e2", subject="approval"), stored_at=200.0)
    state.put("ns/s", "gone", "a", event("e3"), stored_at=200.0)
    assert state.clear("ns/s", "t", before=150.0) == 1
    state.retain("ns/s", {"t": frozenset({"b"})})
    loaded = state.load("ns/s")
    assert list(loaded) == ["t"] and list(loaded["t"]) == ["b"] and loaded["t"]["b"].stored_at == 200.0


@pytest.mark.parametrize(
    ("cron", "zone", "now", "previous", "following"),
    [
        ("0 * * * *", "UTC", datetime(2024, 5, 1, 10, 30, tzinfo=UTC), "2024-05-01T10:00:00+00:00",
         "2024-05-01T11:00:00+00:00"),
        # midnight in Berlin (UTC+2 in May) is 22:00 UTC
        ("0 0 * * *", "Europe/Berlin", datetime(2024, 5, 1, 23, 0, tzinfo=UTC), "2024-05-02T00:00:00+02:00",
         "2024-05-03T00:00:00+02:00"),
    ],
)
def test_reset_ticks_honour_the_timezone(cron: str, zone: str, now: datetime, previous: str,
                                         following: str) -> None:
    schedule = ResetSchedule(cron, zone)
    assert previous_tick(schedule, now).isoformat() == previous
    assert next_tick(schedule, now).isoformat() == following


async def test_conditions_reset_at_start_clears_events_older_than_the_previous_tick(
    tmp_path: Path, bus: SqliteBus, store: SqliteStore
) -> None:
    state_path = tmp_path / "sensors.db"
    state = PendingStore(state_path)
    state.put(f"{NS}/ci", "build", "push", event("old"), stored_at=datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    state.close()
    recorder = Recorder()
    reset = {"conditionsReset": [{"byTime": {"cron": "0 0 * * *", "timezone": "UTC"}}]}
    async with SensorManager(bus, store, NoReferences(), on_record=recorder, state_path=state_path) as manager:
        await manager.apply([sensor(template_extra=reset)])
        await bus.publish(event("a1", subject="approval"))
        await recorder.wait_for(lambda: len(recorder.filters()) == 1)
        await asyncio.sleep(0.05)
        assert recorder.triggers() == []  # "old" was cleared, so approve alone waits
        [trace] = manager.traces(NS, "ci", 1)
        assert trace["triggers"][0]["status"] == "waiting"
        assert trace["triggers"][0]["state"] == {"approve": "a1", "push": None}


async def test_traces_explain_filters_conditions_and_results(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    filters = {"data": [{"path": "body.ref", "type": "string", "value": ["main$"]}]}
    log = TraceLog(max_per_sensor=3)
    async with SensorManager(bus, store, NoReferences(), on_record=recorder, trace_log=log) as manager:
        await manager.apply([sensor(filters=filters)])
        await bus.publish(event("dev", ref="refs/heads/dev"))
        await bus.publish(event("p1"))
        await bus.publish(event("a1", subject="approval"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
        await bus.publish(event("unrelated", subject="nobody-listens"))
        await asyncio.sleep(0.05)
        fired, waiting, dropped = manager.traces(NS, "ci", 10)
    assert dropped["event"]["id"] == "dev"
    [dependency] = dropped["dependencies"]
    assert dependency["matched"] is False and "does not match" in dependency["reason"]
    assert dependency["filters"][0]["kind"] == "data" and dependency["filters"][0]["passed"] is False
    assert dropped["triggers"][0]["status"] == "skipped"
    assert waiting["triggers"][0] == {"name": "build", "conditions": "push && approve", "status": "waiting",
                                      "result": "waiting for approve", "state": {"approve": None, "push": "p1"}}
    entry = fired["triggers"][0]
    assert entry["status"] == "fired" and entry["events"] == ["a1", "p1"]
    assert entry["objects"][0].startswith(f"Workflow {NS}/build-") and entry["replayed"] is False
    assert entry["state"] == {"approve": "a1", "push": "p1"}
    assert log.traces(NS, "other", 5) == []


def test_trace_log_is_bounded_by_count_and_age() -> None:
    log = TraceLog(max_per_sensor=2, max_age_seconds=3600)
    for index in range(5):
        log.record("ns", "s", {"n": index})
    assert [t["n"] for t in log.traces("ns", "s", 10)] == [4, 3]
    assert [t["n"] for t in log.traces("ns", "s", 1)] == [4]
    aged = TraceLog(max_age_seconds=0.0)
    aged.record("ns", "s", {"n": 1})
    assert aged.traces("ns", "s") == []


async def test_debounce_coalesces_a_burst_into_one_firing_with_the_latest_event(
    bus: SqliteBus, store: SqliteStore
) -> None:
    recorder = Recorder()
    debounce = {"eventbridgeDebounce": {"window": "300ms"}}
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor(conditions="push", trigger_extra=debounce)])
        for index in range(4):
            await bus.publish(event(f"p{index}", ref=f"refs/heads/b{index}"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
        await asyncio.sleep(0.4)
        assert len(recorder.triggers()) == 1
        assert (await bus.group_offsets())[f"sensor:{NS}/ci"] == bus.head
        traces = manager.traces(NS, "ci", 10)
    [workflow] = await store.list("Workflow", NS)
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "refs/heads/b3"
    assert recorder.triggers()[0].event_ids == ("p3",)
    assert traces[0]["kind"] == "firing" and "3 earlier firing(s) coalesced" in traces[0]["triggers"][0]["result"]
    assert [t["triggers"][0]["status"] for t in traces[1:]] == ["debounced"] * 4


async def test_dlq_trigger_runs_after_the_last_retry(bus: SqliteBus, store: SqliteStore) -> None:
    await store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                        "metadata": {"name": "taken", "namespace": NS}, "spec": {}})
    recorder = Recorder()
    extra = {
        "retryStrategy": {"steps": 2, "duration": "10ms"},
        "dlqTrigger": {"template": {"name": "dead-letter", "argoWorkflow": {"source": {"resource": {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "dlq-"},
            "spec": {}}}}}},
    }
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor(conditions="push", trigger_extra=extra, workflow_name={"name": "taken"})])
        await bus.publish(event("x1"))
        await recorder.wait_for(lambda: len(recorder.triggers("dead-letter")) == 1)
        [trace] = manager.traces(NS, "ci", 1)
    assert not recorder.triggers("build")[0].ok
    assert recorder.triggers("dead-letter")[0].ok
    entry = trace["triggers"][0]
    assert entry["status"] == "failed" and entry["dlq"]["ok"] is True
    names = sorted(wf["metadata"]["name"] for wf in await store.list("Workflow", NS))
    assert names[0].startswith("dlq-") and names[1] == "taken"
