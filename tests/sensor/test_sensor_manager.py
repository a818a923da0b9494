"""The sensor engine end to end, on a real SqliteBus and SqliteStore in tmp_path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import NotFoundError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, SensorRecord
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.argo_workflow import ANNOTATION_EVENT_IDS, ANNOTATION_KEY

NS = "argo-events"


class NoReferences:
    """References with no Secrets or ConfigMaps (none of these sensors uses one)."""

    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


def workflow_sensor(
    name: str = "ci",
    *,
    filters: dict[str, Any] | None = None,
    dependencies: list[dict[str, Any]] | None = None,
    conditions: str | None = None,
    extra_trigger: dict[str, Any] | None = None,
) -> Sensor:
    dependency: dict[str, Any] = {"name": "push", "eventSourceName": "github", "eventName": "repo"}
    if filters is not None:
        dependency["filters"] = filters
    template: dict[str, Any] = {
        "name": "build",
        "argoWorkflow": {
            "operation": "submit",
            "source": {"resource": {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Workflow",
                "metadata": {"generateName": "build-"},
                "spec": {"entrypoint": "main",
                         "arguments": {"parameters": [{"name": "ref", "value": "unset"}]}},
            }},
            "parameters": [{"src": {"dependencyName": "push", "dataKey": "body.ref"},
                            "dest": "spec.arguments.parameters.0.value"}],
        },
    }
    if conditions is not None:
        template["conditions"] = conditions
    trigger: dict[str, Any] = {"template": template}
    if extra_trigger:
        trigger.update(extra_trigger)
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"dependencies": dependencies or [dependency], "triggers": [trigger]},
    })


def push(event_id: str, ref: str = "refs/heads/main", *, source: str = "github", subject: str = "repo",
         namespace: str = NS) -> Event:
    return Event(id=event_id, source=source, subject=subject, type="github", namespace=namespace,
                 data={"body": {"ref": ref}}, time=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))


class Recorder:
    """Collects SensorRecords and lets a test wait for a number of trigger executions."""

    def __init__(self) -> None:
        self.records: list[SensorRecord] = []
        self._changed = asyncio.Event()

    def __call__(self, record: SensorRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def triggers(self) -> list[SensorRecord]:
        return [record for record in self.records if record.kind == "trigger"]

    def filters(self) -> list[SensorRecord]:
        return [record for record in self.records if record.kind == "filter"]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(5.0):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    instance = SqliteBus(tmp_path / "bus.db")
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


async def workflows(store: SqliteStore) -> list[dict[str, Any]]:
    return await store.list("Workflow", NS)


async def test_event_creates_exactly_one_parameterized_workflow(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([workflow_sensor()])
        assert await bus.publish(push("delivery-1", "refs/heads/feature"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    [record] = recorder.triggers()
    assert record.ok, record.reason
    [workflow] = await workflows(store)
    metadata = workflow["metadata"]
    assert metadata["name"].startswith("build-") and len(metadata["name"]) == len("build-") + 10
    assert metadata["namespace"] == NS
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "refs/heads/feature"
    assert metadata["labels"]["events.argoproj.io/sensor"] == "ci"
    assert metadata["labels"]["events.argoproj.io/trigger"] == "build"
    assert metadata["labels"]["events.argoproj.io/action-timestamp"].isdigit()
    assert json.loads(metadata["annotations"][ANNOTATION_EVENT_IDS]) == ["delivery-1"]
    assert len(metadata["annotations"][ANNOTATION_KEY]) == 64
    assert metadata["name"] == "build-" + metadata["annotations"][ANNOTATION_KEY][:10]


async def test_replaying_the_same_events_creates_no_second_workflow(
    bus: SqliteBus, store: SqliteStore
) -> None:
    first = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=first) as manager:
        await manager.apply([workflow_sensor()])
        await bus.publish(push("d1"))
        await bus.publish(push("d2"))
        await first.wait_for(lambda: len(first.triggers()) == 2)
    assert len(await workflows(store)) == 2

    replay = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=replay,
                             group_prefix="replay", from_start=True) as manager:
        await manager.apply([workflow_sensor()])
        await replay.wait_for(lambda: len(replay.triggers()) == 2)
    assert all(record.ok for record in replay.triggers())
    assert all(record.outcome is not None and record.outcome.replayed for record in replay.triggers())
    assert len(await workflows(store)) == 2


async def test_two_events_at_the_same_instant_both_fire(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([workflow_sensor()])
        results = await asyncio.gather(bus.publish(push("same-a", "refs/heads/a")),
                                       bus.publish(push("same-b", "refs/heads/b")))
        assert list(results) == [True, True]
        await recorder.wait_for(lambda: len(recorder.triggers()) == 2)
    refs = sorted(wf["spec"]["arguments"]["parameters"][0]["value"] for wf in await workflows(store))
    assert refs == ["refs/heads/a", "refs/heads/b"]


async def test_filtered_out_event_does_not_fire(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    sensor = workflow_sensor(filters={"data": [{"path": "body.ref", "type": "string", "value": ["main"]}]})
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor])
        await bus.publish(push("dev-1", "refs/heads/dev"))
        await bus.publish(push("main-1", "refs/heads/main"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    dropped, kept = recorder.filters()
    assert not dropped.ok
    assert dropped.reason == "data filter 0: body.ref: 'refs/heads/dev' does not match 'main'"
    assert kept.ok
    [workflow] = await workflows(store)
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "refs/heads/main"


async def test_events_of_other_sources_or_namespaces_are_ignored(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([workflow_sensor()])
        await bus.publish(push("other-source", source="gitlab"))
        await bus.publish(push("other-name", subject="other"))
        await bus.publish(push("other-ns", namespace="elsewhere"))
        await bus.publish(push("match"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    assert [record.event_ids for record in recorder.records] == [("match",), ("match",)]


async def test_restart_resumes_from_the_cursor(tmp_path: Path, store: SqliteStore) -> None:
    path = tmp_path / "restart-bus.db"
    bus = SqliteBus(path)
    await bus.start()
    first = Recorder()
    manager = SensorManager(bus, store, NoReferences(), on_record=first)
    await manager.apply([workflow_sensor()])
    await bus.publish(push("before-1"))
    await first.wait_for(lambda: len(first.triggers()) == 1)
    await manager.stop()
    await bus.publish(push("while-down"))  # published while the sensor is not running
    await bus.stop()

    bus = SqliteBus(path)
    await bus.start()
    try:
        second = Recorder()
        async with SensorManager(bus, store, NoReferences(), on_record=second) as manager:
            await manager.apply([workflow_sensor()])
            await bus.publish(push("after-1"))
            await second.wait_for(lambda: len(second.triggers()) == 2)
            await asyncio.sleep(0.1)  # nothing else may arrive
        assert [record.event_ids for record in second.triggers()] == [("while-down",), ("after-1",)]
    finally:
        await bus.stop()
    assert len(await workflows(store)) == 3


async def test_and_conditions_wait_for_every_dependency_and_keep_latest(
    bus: SqliteBus, store: SqliteStore
) -> None:
    recorder = Recorder()
    dependencies = [
        {"name": "push", "eventSourceName": "github", "eventName": "repo"},
        {"name": "approve", "eventSourceName": "github", "eventName": "approval"},
    ]
    sensor = workflow_sensor(dependencies=dependencies)  # no conditions: all dependencies AND'ed
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor])
        await bus.publish(push("p1", "refs/heads/old"))
        await bus.publish(push("p2", "refs/heads/new"))  # replaces p1
        await recorder.wait_for(lambda: len(recorder.filters()) == 2)
        assert recorder.triggers() == []
        await bus.publish(push("a1", subject="approval"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    [record] = recorder.triggers()
    assert record.ok and record.event_ids == ("a1", "p2")
    [workflow] = await workflows(store)
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "refs/heads/new"


async def test_pending_and_state_is_rebuilt_after_restart(tmp_path: Path, store: SqliteStore) -> None:
    dependencies = [
        {"name": "push", "eventSourceName": "github", "eventName": "repo"},
        {"name": "approve", "eventSourceName": "github", "eventName": "approval"},
    ]
    sensor = workflow_sensor(dependencies=dependencies, conditions="push && approve")
    path = tmp_path / "pending-bus.db"
    bus = SqliteBus(path)
    await bus.start()
    first = Recorder()
    manager = SensorManager(bus, store, NoReferences(), on_record=first)
    await manager.apply([sensor])
    await bus.publish(push("p1"))
    await first.wait_for(lambda: len(first.filters()) == 1)
    await manager.stop()
    await bus.stop()

    bus = SqliteBus(path)
    await bus.start()
    try:
        second = Recorder()
        async with SensorManager(bus, store, NoReferences(), on_record=second) as manager:
            await manager.apply([sensor])
            await bus.publish(push("a1", subject="approval"))
            await second.wait_for(lambda: len(second.triggers()) == 1)
        assert second.triggers()[0].event_ids == ("a1", "p1")
    finally:
        await bus.stop()


async def test_or_conditions_fire_per_event(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    dependencies = [
        {"name": "push", "eventSourceName": "github", "eventName": "repo"},
        {"name": "approve", "eventSourceName": "github", "eventName": "approval"},
    ]
    sensor = workflow_sensor(dependencies=dependencies, conditions="push || approve")
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor])
        await bus.publish(push("a1", subject="approval"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    [record] = recorder.triggers()
    # the "push" parameter has no event and no value: it is skipped, the default stays
    assert record.ok
    [workflow] = await workflows(store)
    assert workflow["spec"]["arguments"]["parameters"][0]["value"] == "unset"


async def test_conflicting_fixed_name_is_a_permanent_failure_and_event_is_acked(
    bus: SqliteBus, store: SqliteStore
) -> None:
    await store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                        "metadata": {"name": "fixed", "namespace": NS}, "spec": {}})
    sensor = workflow_sensor(extra_trigger={"retryStrategy": {"steps": 3, "duration": "10ms"}})
    template = sensor.spec.triggers[0].template
    assert template is not None and template.argo_workflow is not None
    assert template.argo_workflow.source is not None and template.argo_workflow.source.resource is not None
    template.argo_workflow.source.resource["metadata"] = {"name": "fixed"}
    recorder = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor])
        await bus.publish(push("x1"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
        await bus.publish(push("x2"))  # the sensor is not blocked by the failure
        await recorder.wait_for(lambda: len(recorder.triggers()) == 2)
    assert [record.ok for record in recorder.triggers()] == [False, False]
    assert "already exists" in recorder.triggers()[0].reason
    offsets = await bus.group_offsets()
    assert offsets[f"sensor:{NS}/ci"] == bus.head


async def test_apply_restarts_changed_and_stops_removed_sensors(bus: SqliteBus, store: SqliteStore) -> None:
    recorder = Recorder()
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([workflow_sensor("ci"), workflow_sensor("other")])
        assert manager.sensors == [f"{NS}/ci", f"{NS}/other"]
        changed = workflow_sensor("ci", filters={"data": [{"path": "body.ref", "type": "string",
                                                           "value": ["release"]}]})
        await manager.apply([changed])
        assert manager.sensors == [f"{NS}/ci"]
        await bus.publish(push("main-ref"))
        await bus.publish(push("rel", "refs/heads/release-1"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    assert recorder.triggers()[0].event_ids == ("rel",)


async def test_log_trigger_and_trigger_level_parameters(
    bus: SqliteBus, store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    sensor = Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": "logger", "namespace": NS},
        "spec": {
            "dependencies": [{"name": "push", "eventSourceName": "github", "eventName": "repo"}],
            "triggers": [{
                "template": {"name": "print", "log": {}},
                "parameters": [{"src": {"dependencyName": "push", "dataKey": "body.ref"},
                                "dest": "name", "operation": "append"}],
            }],
        },
    })
    recorder = Recorder()
    caplog.set_level("INFO", logger="eventbridge.triggers.log")
    async with SensorManager(bus, store, NoReferences(), on_record=recorder) as manager:
        await manager.apply([sensor])
        await bus.publish(push("l1", "refs/heads/x"))
        await recorder.wait_for(lambda: len(recorder.triggers()) == 1)
    assert recorder.triggers()[0].ok
    [message] = [r.getMessage() for r in caplog.records if r.name == "eventbridge.triggers.log"]
    assert "trigger printrefs/heads/x fired" in message
    assert '"ref": "refs/heads/x"' in message
