"""Optional OpenTelemetry tracing: one trace follows an event from its source through the bus and
the sensor to the workflow it creates. Install the ``tracing`` extra to use it.

* **Source span** (``publish <eventsource>.<event>``, kind PRODUCER) around the bus publish; the
  event carries its W3C ``traceparent`` as a CloudEvents extension attribute (``traceparent``,
  from the Distributed Tracing extension). An event that arrives with a ``traceparent`` already
  continues that trace.
* **Trigger span** (``trigger <sensor>.<trigger>``, kind CONSUMER) whose parent is the first
  event's traceparent (by dependency name); the other events of an ``&&`` firing are span links.
* The workflow an ``argoWorkflow`` trigger creates gets the annotation
  ``eventbridge.io/traceparent`` (the trigger span's, else the event's).

Switched on by ``EVENTBRIDGE_TRACING``: ``otlp`` (needs ``opentelemetry-exporter-otlp``; the
standard ``OTEL_EXPORTER_OTLP_*`` variables apply), ``console``, ``memory`` (tests) or
``global`` (use the process's global TracerProvider, e.g. under ``opentelemetry-instrument``);
unset or ``off``: off, unless ``OTEL_TRACES_EXPORTER`` is ``otlp`` or ``console``. Without the
``opentelemetry`` packages everything here is a no-op, and an event's ``traceparent`` is still
carried to the workflow annotation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from eventbridge.events import Event
from eventbridge.models.sensor import Sensor, Trigger

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Tracer

log = logging.getLogger(__name__)

ENV_MODE = "EVENTBRIDGE_TRACING"
TRACEPARENT = "traceparent"  # the CloudEvents extension attribute (and the W3C header)
ANNOTATION_TRACEPARENT = "eventbridge.io/traceparent"
MODES = ("off", "otlp", "console", "memory", "global")
_SCOPE = "eventbridge"

_lock = threading.Lock()
_configured = False
_tracer: Tracer | None = None


def _mode_from_env(env: Mapping[str, str]) -> str:
    mode = env.get(ENV_MODE, "").strip().lower()
    if mode:
        return mode
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    return exporter if exporter in ("otlp", "console") else "off"


def configure(mode: str | None = None, env: Mapping[str, str] | None = None) -> InMemorySpanExporter | None:
    """Set tracing up for ``mode`` (default: from the environment); returns the exporter for ``memory``.

    May be called again to switch (tests do); ``off`` switches tracing off. An unknown mode or a
    missing package logs a warning and leaves tracing off.
    """
    global _configured, _tracer
    chosen = mode if mode is not None else _mode_from_env(os.environ if env is None else env)
    with _lock:
        _configured, _tracer = True, None
        if chosen == "off":
            return None
        if chosen not in MODES:
            log.warning("%s=%r is not one of %s; tracing is off", ENV_MODE, chosen, ", ".join(MODES))
            return None
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                ConsoleSpanExporter,
                SimpleSpanProcessor,
                SpanExporter,
            )
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        except ImportError:
            log.warning("tracing %s needs the opentelemetry packages (pip install 'eventbridge[tracing]')", chosen)
            return None
        if chosen == "global":
            _tracer = trace.get_tracer(_SCOPE)
            return None
        memory: InMemorySpanExporter | None = None
        exporter: SpanExporter
        if chosen == "memory":
            exporter = memory = InMemorySpanExporter()
        elif chosen == "console":
            exporter = ConsoleSpanExporter()
        else:
            try:  # an optional package: imported by name, so type checks pass without it
                otlp = importlib.import_module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
            except ImportError:
                log.warning("tracing otlp needs opentelemetry-exporter-otlp-proto-http; tracing is off")
                return None
            exporter = otlp.OTLPSpanExporter()
        provider = TracerProvider(
            resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", _SCOPE)})
        )
        processor = SimpleSpanProcessor(exporter) if memory is not None else BatchSpanProcessor(exporter)
        provider.add_span_processor(processor)
        _tracer = provider.get_tracer(_SCOPE)
        return memory


def _get_tracer() -> Tracer | None:
    if not _configured:
        configure()
    return _tracer


def enabled() -> bool:
    """Whether spans are made (configured from the environment on first use)."""
    return _get_tracer() is not None


def event_traceparent(events: Mapping[str, Event]) -> str | None:
    """The ``traceparent`` of the first event (by dependency name) that has one."""
    for name in sorted(events):
        value = events[name].extensions.get(TRACEPARENT)
        if value:
            return value
    return None


def current_traceparent() -> str | None:
    """The active span's W3C ``traceparent``; None when tracing is off or no span is active."""
    if _get_tracer() is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get(TRACEPARENT)


@contextlib.contextmanager
def publish_span(event: Event) -> Iterator[Event]:
    """A source span around publishing ``event``; yields the event carrying the span's traceparent.

    With tracing off the event is yielded unchanged.
    """
    tracer = _get_tracer()
    if tracer is None:
        yield event
        return
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    upstream = event.extensions.get(TRACEPARENT)
    parent = propagator.extract({TRACEPARENT: upstream}) if upstream else None
    attributes = {
        "eventbridge.namespace": event.namespace,
        "eventbridge.eventsource": event.source,
        "eventbridge.event_name": event.subject,
        "eventbridge.event_type": event.type,
        "cloudevents.event_id": event.id,
    }
    with tracer.start_as_current_span(
        f"publish {event.source}.{event.subject}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        carrier: dict[str, str] = {}
        propagator.inject(carrier)
        traceparent = carrier.get(TRACEPARENT)
        if traceparent and traceparent != upstream:
            event = dataclasses.replace(event, extensions={**event.extensions, TRACEPARENT: traceparent})
        yield event


@contextlib.contextmanager
def trigger_span(sensor: Sensor, trigger: Trigger, events: Mapping[str, Event]) -> Iterator[None]:
    """A span around one trigger execution, child of the events' trace (see the module docstring).

    Exceptions propagate; the span records them and is marked as an error.
    """
    tracer = _get_tracer()
    if tracer is None:
        yield
        return
    from opentelemetry.trace import Link, SpanKind, get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    contexts = []
    for name in sorted(events):
        value = events[name].extensions.get(TRACEPARENT)
        if value:
            span_context = get_current_span(propagator.extract({TRACEPARENT: value})).get_span_context()
            if span_context.is_valid:
                contexts.append((value, span_context))
    parent = propagator.extract({TRACEPARENT: contexts[0][0]}) if contexts else None
    links = [Link(span_context) for _, span_context in contexts[1:]]
    attributes = {
        "eventbridge.namespace": sensor.namespace,
        "eventbridge.sensor": sensor.name,
        "eventbridge.trigger": trigger.name,
        "cloudevents.event_ids": sorted(event.id for event in events.values()),
    }
    with tracer.start_as_current_span(
        f"trigger {sensor.name}.{trigger.name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ):
        yield
