"""OpenTelemetry tracing with the SDK's in-memory exporter: one event from a real webhook source
through the real SqliteBus and SensorManager to the Workflow an argoWorkflow trigger creates."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import eventbridge.triggers.argo_workflow  # noqa: F401  (registers the trigger)
from eventbridge import tracing
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.events import Event
from eventbridge.models.eventsource import EventSource
from eventbridge.models.kinds import parse_manifest
from eventbridge.models.references import ManifestReferences
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, make_call
from eventbridge.sources.manager import SourceManager
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.base import TriggerServices, action_for

NS = "default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = tracing.configure("memory")
    assert exporter is not None
    yield exporter
    tracing.configure("off")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.db")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    b = SqliteBus(tmp_path / "events.db")
    await b.start()
    yield b
    await b.stop()


def eventsource(port: int) -> EventSource:
    manifest = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "EventSource",
            "metadata": {"name": "hooks", "namespace": NS},
            "spec": {"webhook": {"push": {"port": str(port), "endpoint": "/hook", "method": "POST"}}},
        }
    )
    assert isinstance(manifest, EventSource)
    return manifest


def sensor(dependencies: tuple[str, ...] = ("push",)) -> Sensor:
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "traced-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
    }
    manifest = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Sensor",
            "metadata": {"name": "ci", "namespace": NS},
            "spec": {
                "dependencies": [{"name": d, "eventSourceName": "hooks", "eventName": d} for d in dependencies],
                "triggers": [
                    {"template": {"name": "build", "argoWorkflow": {"source": {"resource": workflow}}}},
                ],
            },
        }
    )
    assert isinstance(manifest, Sensor)
    return manifest


def parse_traceparent(value: str) -> tuple[int, int]:
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00" and int(flags, 16) & 1 and len(trace_id) == 32 and len(span_id) == 16  # sampled
    return int(trace_id, 16), int(span_id, 16)


def named(exporter: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


async def until_workflows(store: SqliteStore, seconds: float = 10.0) -> list[dict[str, Any]]:
    async with asyncio.timeout(seconds):
        while not (found := await store.list("Workflow", NS)):  # noqa: ASYNC110 - the sensor creates it
            await asyncio.sleep(0.05)
    return found


async def test_one_event_is_one_trace_from_source_to_workflow(
    spans: InMemorySpanExporter, bus: SqliteBus, store: SqliteStore
) -> None:
    port = free_port()
    references = ManifestReferences([])
    sources = SourceManager(bus, references, host="127.0.0.1")
    sensors = SensorManager(bus, store, references)
    await sensors.apply([sensor()])
    await sources.apply([eventsource(port)])
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/hook", json={"ref": "main"}) as response,
        ):
            assert response.status == 200
        workflows = await until_workflows(store)
    finally:
        await sources.stop()
        await sensors.stop()

    [source_span] = named(spans, "publish hooks.push")
    assert source_span.kind is SpanKind.PRODUCER and source_span.parent is None
    assert source_span.attributes is not None and source_span.attributes["eventbridge.eventsource"] == "hooks"
    # The event on the bus carries the source span's context as its CloudEvents extension.
    [delivery] = await bus.list_events(namespace=NS)
    assert parse_traceparent(delivery.event.extensions["traceparent"]) == (
        source_span.context.trace_id,
        source_span.context.span_id,
    )
    assert delivery.event.to_cloudevent()["traceparent"] == delivery.event.extensions["traceparent"]

    # The workflow carries the trace onward: same trace id, parent one of the trace's spans.
    [workflow] = workflows
    trace_id, parent_id = parse_traceparent(workflow["metadata"]["annotations"][tracing.ANNOTATION_TRACEPARENT])
    assert trace_id == source_span.context.trace_id
    in_trace = {s.context.span_id for s in spans.get_finished_spans() if s.context.trace_id == trace_id}
    assert parent_id in in_trace
    for trigger_span in named(spans, "trigger ci.build"):  # once the sensor wraps its triggers in trigger_span
        assert trigger_span.parent is not None and trigger_span.parent.span_id == source_span.context.span_id
        assert parent_id == trigger_span.context.span_id


async def test_trigger_span_is_the_child_of_the_event_and_the_workflow_annotation(
    spans: InMemorySpanExporter, store: SqliteStore
) -> None:
    the_sensor = sensor(("push", "tag"))
    trigger = the_sensor.spec.triggers[0]
    with tracing.publish_span(Event(id="e1", source="hooks", subject="push", type="webhook", data={})) as push:
        pass
    with tracing.publish_span(Event(id="e2", source="hooks", subject="tag", type="webhook", data={})) as tag:
        pass
    events = {"push": push, "tag": tag}
    action = action_for(the_sensor, trigger, TriggerServices(store, ManifestReferences([])))
    assert action is not None
    with tracing.trigger_span(the_sensor, trigger, events):
        outcome = await action.execute(make_call(the_sensor, trigger, events))
    assert outcome.summary.startswith("created Workflow default/traced-")

    [push_span] = named(spans, "publish hooks.push")
    [tag_span] = named(spans, "publish hooks.tag")
    [trigger_span] = named(spans, "trigger ci.build")
    assert trigger_span.kind is SpanKind.CONSUMER
    assert trigger_span.parent is not None and trigger_span.parent.span_id == push_span.context.span_id
    assert trigger_span.context.trace_id == push_span.context.trace_id
    assert [link.context.span_id for link in trigger_span.links] == [tag_span.context.span_id]
    assert trigger_span.attributes is not None
    assert list(trigger_span.attributes["cloudevents.event_ids"]) == ["e1", "e2"]  # type: ignore[arg-type]

    [workflow] = await store.list("Workflow", NS)
    annotation = workflow["metadata"]["annotations"][tracing.ANNOTATION_TRACEPARENT]
    assert parse_traceparent(annotation) == (trigger_span.context.trace_id, trigger_span.context.span_id)


async def test_a_failing_trigger_marks_its_span_as_an_error(spans: InMemorySpanExporter) -> None:
    the_sensor = sensor()
    with pytest.raises(RuntimeError, match="boom"), tracing.trigger_span(the_sensor, the_sensor.spec.triggers[0], {}):
        raise RuntimeError("boom")
    [span] = named(spans, "trigger ci.build")
    assert span.status.status_code is StatusCode.ERROR and span.parent is None
    assert [event.name for event in span.events] == ["exception"]


def test_an_upstream_traceparent_is_continued(spans: InMemorySpanExporter) -> None:
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = Event(id="e", source="s", subject="x", type="webhook", data=None, extensions={"traceparent": upstream})
    with tracing.publish_span(event) as traced:
        pass
    [span] = spans.get_finished_spans()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None and span.parent.span_id == 0xB7AD6B7169203331
    assert parse_traceparent(traced.extensions["traceparent"]) == (span.context.trace_id, span.context.span_id)
    assert Event.from_bytes(traced.to_bytes()) == traced  # the extension round-trips


async def test_off_is_a_no_op_but_an_event_traceparent_still_reaches_the_workflow(store: SqliteStore) -> None:
    tracing.configure("off")
    assert not tracing.enabled() and tracing.current_traceparent() is None
    event = Event(id="e1", source="hooks", subject="push", type="webhook", data={})
    with tracing.publish_span(event) as same:
        assert same is event
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    the_sensor = sensor()
    trigger = the_sensor.spec.triggers[0]
    carried = Event(
        id="e2", source="hooks", subject="push", type="webhook", data={}, extensions={"traceparent": upstream}
    )
    action = action_for(the_sensor, trigger, TriggerServices(store, ManifestReferences([])))
    assert action is not None
    with tracing.trigger_span(the_sensor, trigger, {"push": carried}):
        await action.execute(make_call(the_sensor, trigger, {"push": carried}))
    [workflow] = await store.list("Workflow", NS)
    assert workflow["metadata"]["annotations"][tracing.ANNOTATION_TRACEPARENT] == upstream


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, "off"),
        ({"EVENTBRIDGE_TRACING": "Console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "none"}, "off"),
        ({"EVENTBRIDGE_TRACING": "off", "OTEL_TRACES_EXPORTER": "console"}, "off"),
    ],
)
def test_mode_comes_from_the_environment(env: dict[str, str], mode: str) -> None:
    assert tracing._mode_from_env(env) == mode


def test_unknown_mode_warns_and_stays_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="eventbridge.tracing"):
        assert tracing.configure("jaeger") is None
    assert not tracing.enabled()
    assert "'jaeger' is not one of off, otlp, console, memory, global" in caplog.text
    tracing.configure("off")
