"""Prometheus collectors with Argo's metric names and labels, for every part of eventbridge.

Argo Events (``pkg/metrics``): the same names and label keys, so existing dashboards keep working.
Argo Events gives ``namespace`` as a constant label of each process; eventbridge runs many
namespaces in one process, so ``namespace`` is an ordinary label with the same key.

=====================================================  =========  ==========================================
name                                                   type       labels
=====================================================  =========  ==========================================
argo_events_event_service_running_total                gauge      namespace, eventsource_name
argo_events_events_sent_total                          counter    namespace, eventsource_name, event_name
argo_events_events_sent_failed_total                   counter    namespace, eventsource_name, event_name
argo_events_events_processing_failed_total             counter    namespace, eventsource_name, event_name
argo_events_event_processing_duration_milliseconds     summary    namespace, eventsource_name, event_name
argo_events_action_triggered_total                     counter    namespace, sensor_name, trigger_name
argo_events_action_failed_total                        counter    namespace, sensor_name, trigger_name
argo_events_action_retries_failed_total                counter    namespace, sensor_name, trigger_name
argo_events_action_duration_milliseconds               summary    namespace, sensor_name, trigger_name
eventbridge_sensor_events_filtered_total               counter    namespace, sensor_name, dependency_name
argo_workflows_count                                   gauge      status  (workflows by phase)
argo_workflows_queue_depth_count                       gauge      queue_name
argo_workflows_operation_duration_seconds              histogram  (one reconcile pass of a workflow)
argo_workflows_cronworkflows_triggered_total           counter    namespace, name
eventbridge_executor_spawn_seconds                     histogram  executor  (step asked -> process running)
eventbridge_build_info                                 gauge      version
=====================================================  =========  ==========================================

Sources, sensors and the controller call the small functions below; the server exposes
:data:`REGISTRY` at ``/metrics`` with :func:`exposition`. This module imports nothing from
eventbridge except errors, so any layer may use it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
    generate_latest,
)

REGISTRY = CollectorRegistry()
"""The registry served at ``/metrics`` (process and platform metrics included)."""

ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

_SOURCE = ("namespace", "eventsource_name", "event_name")
_TRIGGER = ("namespace", "sensor_name", "trigger_name")

EVENT_SERVICE_RUNNING = Gauge(
    "argo_events_event_service_running_total",
    "How many configured events in the EventSource object are actively running.",
    ("namespace", "eventsource_name"),
    registry=REGISTRY,
)
EVENTS_SENT = Counter(
    "argo_events_events_sent", "How many events have been sent successfully.", _SOURCE, registry=REGISTRY
)
EVENTS_SENT_FAILED = Counter(
    "argo_events_events_sent_failed", "How many events failed to send to EventBus.", _SOURCE, registry=REGISTRY
)
EVENTS_PROCESSING_FAILED = Counter(
    "argo_events_events_processing_failed",
    "Number of events failed to process, it includes argo_events_events_sent_failed_total.",
    _SOURCE,
    registry=REGISTRY,
)
EVENT_PROCESSING_DURATION = Summary(
    "argo_events_event_processing_duration_milliseconds",
    "Summary of durations of event processing.",
    _SOURCE,
    registry=REGISTRY,
)
ACTION_TRIGGERED = Counter(
    "argo_events_action_triggered", "How many actions have been triggered successfully.", _TRIGGER, registry=REGISTRY
)
ACTION_FAILED = Counter("argo_events_action_failed", "How many actions failed.", _TRIGGER, registry=REGISTRY)
ACTION_RETRIES_FAILED = Counter(
    "argo_events_action_retries_failed",
    "How many actions failed after the retries have been exhausted.",
    _TRIGGER,
    registry=REGISTRY,
)
ACTION_DURATION = Summary(
    "argo_events_action_duration_milliseconds",
    "Summary of durations of triggering actions.",
    _TRIGGER,
    registry=REGISTRY,
)
EVENTS_FILTERED = Counter(
    "eventbridge_sensor_events_filtered",
    "Events a sensor dependency rejected (its filters did not pass).",
    ("namespace", "sensor_name", "dependency_name"),
    registry=REGISTRY,
)
WORKFLOWS_BY_PHASE = Gauge(
    "argo_workflows_count", "Number of workflows currently known, by status (phase).", ("status",), registry=REGISTRY
)
QUEUE_DEPTH = Gauge(
    "argo_workflows_queue_depth_count",
    "Depth of the queue of workflows or cron workflows waiting to be processed.",
    ("queue_name",),
    registry=REGISTRY,
)
OPERATION_DURATION = Histogram(
    "argo_workflows_operation_duration_seconds",
    "Histogram of durations of operations (one reconcile of one workflow).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CRON_TRIGGERED = Counter(
    "argo_workflows_cronworkflows_triggered",
    "Workflows created by CronWorkflows.",
    ("namespace", "name"),
    registry=REGISTRY,
)
SPAWN_LATENCY = Histogram(
    "eventbridge_executor_spawn_seconds",
    "Time from a step being handed to the executor until its process (or Pod) runs.",
    ("executor",),
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
BUILD_INFO = Gauge("eventbridge_build_info", "Constant 1, labelled by version.", ("version",), registry=REGISTRY)

WORKFLOW_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")


# --------------------------------------------------------------------------- event sources


def event_service_running(namespace: str, eventsource: str, delta: int) -> None:
    """An event of ``eventsource`` started (+1) or stopped (-1)."""
    EVENT_SERVICE_RUNNING.labels(namespace, eventsource).inc(delta)


# The labelled children of the per-event metrics, looked up once per label set: ``labels()`` takes
# a lock and builds a key on every call, a measurable share of a webhook request (nothing here ever
# removes a label set, so a cached child stays the exported one).
@functools.lru_cache(maxsize=4096)
def _sent(namespace: str, eventsource: str, event: str) -> Any:
    return EVENTS_SENT.labels(namespace, eventsource, event)


@functools.lru_cache(maxsize=4096)
def _duration(namespace: str, eventsource: str, event: str) -> Any:
    return EVENT_PROCESSING_DURATION.labels(namespace, eventsource, event)


def event_sent(namespace: str, eventsource: str, event: str) -> None:
    _sent(namespace, eventsource, event).inc()


def event_sent_failed(namespace: str, eventsource: str, event: str) -> None:
    """Publishing to the bus failed (also counts as a processing failure, as in Argo)."""
    EVENTS_SENT_FAILED.labels(namespace, eventsource, event).inc()
    EVENTS_PROCESSING_FAILED.labels(namespace, eventsource, event).inc()


def event_processing_failed(namespace: str, eventsource: str, event: str) -> None:
    EVENTS_PROCESSING_FAILED.labels(namespace, eventsource, event).inc()


def event_processing_duration(namespace: str, eventsource: str, event: str, milliseconds: float) -> None:
    _duration(namespace, eventsource, event).observe(milliseconds)


# --------------------------------------------------------------------------- sensors


def action_triggered(namespace: str, sensor: str, trigger: str) -> None:
    ACTION_TRIGGERED.labels(namespace, sensor, trigger).inc()


def action_failed(namespace: str, sensor: str, trigger: str) -> None:
    ACTION_FAILED.labels(namespace, sensor, trigger).inc()


def action_retries_failed(namespace: str, sensor: str, trigger: str) -> None:
    ACTION_RETRIES_FAILED.labels(namespace, sensor, trigger).inc()


def action_duration(namespace: str, sensor: str, trigger: str, milliseconds: float) -> None:
    ACTION_DURATION.labels(namespace, sensor, trigger).observe(milliseconds)


def event_filtered(namespace: str, sensor: str, dependency: str) -> None:
    """A dependency's filters rejected an event (Argo has no such metric)."""
    EVENTS_FILTERED.labels(namespace, sensor, dependency).inc()


@contextmanager
def timed_action(namespace: str, sensor: str, trigger: str) -> Iterator[None]:
    """Time one trigger execution: success counts ``action_triggered``, an exception ``action_failed``."""
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        action_failed(namespace, sensor, trigger)
        raise
    else:
        action_triggered(namespace, sensor, trigger)
    finally:
        action_duration(namespace, sensor, trigger, (time.perf_counter() - start) * 1000.0)


# --------------------------------------------------------------------------- controller


def set_workflow_phases(counts: Mapping[str, int]) -> None:
    """Set the workflows-by-phase gauge; phases not in ``counts`` are set to 0."""
    for phase in {*WORKFLOW_PHASES, *counts}:
        WORKFLOWS_BY_PHASE.labels(phase).set(counts.get(phase, 0))


def set_queue_depth(queue: str, depth: int) -> None:
    QUEUE_DEPTH.labels(queue).set(depth)


def observe_operation(seconds: float) -> None:
    OPERATION_DURATION.observe(seconds)


def cron_triggered(namespace: str, name: str) -> None:
    CRON_TRIGGERED.labels(namespace, name).inc()


def observe_spawn(executor: str, seconds: float) -> None:
    SPAWN_LATENCY.labels(executor).observe(seconds)


def set_build_info(version: str) -> None:
    BUILD_INFO.labels(version).set(1)


def exposition() -> tuple[bytes, str]:
    """The text exposition of :data:`REGISTRY` and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
