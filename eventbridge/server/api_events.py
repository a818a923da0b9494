"""The event side, which argo-server does not have: event sources, sensors, the event log, traces.

* ``GET /api/v1/event-sources/{namespace}[/{name}]`` and ``GET /api/v1/sensors/{namespace}[/{name}]``
  answer the loaded manifests (argo-server's EventSourceService/SensorService paths). Event sources
  carry ``status.events``: each event's state (running / retrying / failed), error and endpoint.
* ``GET /api/v1/sensors/{namespace}/{name}/traces?limit=`` the sensor's recent decisions.
* ``GET /api/v1/event-log`` searches the bus, newest first: ``namespace``, ``source`` (EventSource),
  ``subject`` (event name), ``type``, ``since``/``until`` (RFC 3339), ``q`` (text in the event),
  ``limit``, ``before`` (an offset: the page after). ``GET /api/v1/event-log/{offset}`` one event;
  ``POST /api/v1/event-log/{offset}/replay`` publishes a copy with a new id (extension
  ``eventbridgereplayof`` = the original id), so sensors see it as a new event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiohttp import web

from eventbridge.bus.base import Delivery
from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.events import new_event_id, parse_time
from eventbridge.models.eventsource import EventSource
from eventbridge.models.sensor import Sensor
from eventbridge.server.context import (
    ApiContext,
    EventLog,
    allowed_namespaces,
    context,
    event_json,
    jsonable,
    maybe_await,
    name_param,
    namespace_param,
    query_int,
)

REPLAY_EXTENSION = "eventbridgereplayof"
SCAN_WINDOW = 500
MAX_SCAN = 50_000


def _visible(request: web.Request, namespace: str | None, item_namespace: str) -> bool:
    allowed = allowed_namespaces(request)
    if allowed is not None and item_namespace not in allowed:
        return False
    return namespace is None or namespace == item_namespace


# --------------------------------------------------------------------------- event sources


def source_events(ctx: ApiContext, eventsource: EventSource) -> list[dict[str, Any]]:
    """Each event of ``eventsource`` with its type, state, error and endpoint (when it has one)."""
    states = {}
    endpoints = {}
    if ctx.sources is not None:
        states = {
            (s.key.type_key, s.key.event_name): s
            for s in ctx.sources.status()
            if (s.key.namespace, s.key.eventsource) == (eventsource.namespace, eventsource.name)
        }
        endpoints = {
            (e.key.type_key, e.key.event_name): e
            for e in ctx.sources.endpoints()
            if (e.key.namespace, e.key.eventsource) == (eventsource.namespace, eventsource.name)
        }
    out: list[dict[str, Any]] = []
    for type_key, event_name, _spec in eventsource.spec.sources():
        entry: dict[str, Any] = {"type": type_key, "name": event_name, "state": "unknown"}
        status = states.get((type_key, event_name))
        if status is not None:
            entry["state"] = status.state
            if status.error:
                entry["error"] = status.error
        endpoint = endpoints.get((type_key, event_name))
        if endpoint is not None:
            entry.update(
                {"endpoint": endpoint.endpoint, "port": endpoint.bound_port, "method": endpoint.method or "POST"}
            )
        out.append(entry)
    return out


def eventsources(ctx: ApiContext) -> Sequence[EventSource]:
    return list(ctx.eventsources()) if ctx.eventsources is not None else []


def sensors(ctx: ApiContext) -> Sequence[Sensor]:
    return list(ctx.sensors()) if ctx.sensors is not None else []


def eventsource_json(ctx: ApiContext, eventsource: EventSource) -> dict[str, Any]:
    document = eventsource.dump()
    document.setdefault("metadata", {})["namespace"] = eventsource.namespace
    document["status"] = {"events": source_events(ctx, eventsource)}
    return document


async def list_eventsources(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = namespace_param(request)
    items = [eventsource_json(ctx, e) for e in eventsources(ctx) if _visible(request, namespace, e.namespace)]
    return web.json_response({"metadata": {}, "items": items})


def find_eventsource(ctx: ApiContext, namespace: str, name: str) -> EventSource:
    for eventsource in eventsources(ctx):
        if (eventsource.namespace, eventsource.name) == (namespace, name):
            return eventsource
    raise NotFoundError(f"EventSource {namespace}/{name} not found")


async def get_eventsource(request: web.Request) -> web.Response:
    ctx = context(request)
    found = find_eventsource(ctx, name_param(request, "namespace"), name_param(request, "name"))
    return web.json_response(eventsource_json(ctx, found))


# --------------------------------------------------------------------------- sensors


def sensor_json(sensor: Sensor) -> dict[str, Any]:
    document = sensor.dump()
    document.setdefault("metadata", {})["namespace"] = sensor.namespace
    return document


def find_sensor(ctx: ApiContext, namespace: str, name: str) -> Sensor:
    for sensor in sensors(ctx):
        if (sensor.namespace, sensor.name) == (namespace, name):
            return sensor
    raise NotFoundError(f"Sensor {namespace}/{name} not found")


async def list_sensors(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = namespace_param(request)
    items = [sensor_json(s) for s in sensors(ctx) if _visible(request, namespace, s.namespace)]
    return web.json_response({"metadata": {}, "items": items})


async def get_sensor(request: web.Request) -> web.Response:
    ctx = context(request)
    return web.json_response(
        sensor_json(find_sensor(ctx, name_param(request, "namespace"), name_param(request, "name")))
    )


async def sensor_traces(ctx: ApiContext, namespace: str, name: str, limit: int = 100) -> list[Any]:
    """The sensor's recent decisions as JSON values (empty without a trace log)."""
    if ctx.traces is None:
        return []
    found = await maybe_await(ctx.traces.traces(namespace, name, limit))
    return [jsonable(item) for item in list(found or [])[:limit]]


async def get_sensor_traces(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = name_param(request, "namespace"), name_param(request, "name")
    limit = query_int(request, "limit", 100, minimum=1, maximum=10_000)
    if ctx.traces is None:
        return web.json_response({"items": [], "message": "sensor traces are not recorded by this server"})
    return web.json_response({"items": await sensor_traces(ctx, namespace, name, limit)})


# --------------------------------------------------------------------------- event log


def require_bus(ctx: ApiContext) -> EventLog:
    if ctx.bus is None:
        raise web.HTTPNotImplemented(reason="this server has no event log")
    return ctx.bus


def _time(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = parse_time(text)
    except ValueError:
        raise InvalidError(f"{what} must be an RFC 3339 time, not {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidError(f"{what} must include a timezone (Z or +hh:mm)")
    return moment


class EventQuery:
    """A search over the event log (see the module docstring for the parameters)."""

    def __init__(
        self,
        *,
        namespace: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str = "",
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.namespace = namespace
        self.source = source
        self.subject = subject
        self.type = type
        self.since = since
        self.until = until
        self.text = text.lower()
        self.allowed = allowed

    @classmethod
    def from_request(cls, request: web.Request) -> EventQuery:
        q = request.query
        return cls(
            namespace=q.get("namespace") or None,
            source=q.get("source") or None,
            subject=q.get("subject") or q.get("eventName") or None,
            type=q.get("type") or None,
            since=_time(q.get("since", ""), "since"),
            until=_time(q.get("until", ""), "until"),
            text=q.get("q", ""),
            allowed=allowed_namespaces(request),
        )

    def matches(self, delivery: Delivery) -> bool:
        event = delivery.event
        if self.allowed is not None and event.namespace not in self.allowed:
            return False
        if self.type and event.type != self.type:
            return False
        if self.since and event.time < self.since:
            return False
        if self.until and event.time > self.until:
            return False
        if self.text:
            haystack = json.dumps(event.to_cloudevent(), default=str).lower()
            if self.text not in haystack:
                return False
        return True

    async def run(self, bus: EventLog, *, limit: int = 50, before: int | None = None) -> tuple[list[Delivery], int]:
        """Matching events newest first, and the offset to continue from (0: no more)."""
        upper = bus.head if before is None else min(before - 1, bus.head)
        found: list[Delivery] = []
        scanned = 0
        while upper > 0 and len(found) < limit and scanned < MAX_SCAN:
            lower = max(0, upper - SCAN_WINDOW)
            batch = await bus.list_events(
                after=lower,
                limit=SCAN_WINDOW,
                namespace=self.namespace,
                source=self.source,
                subject=self.subject,
            )
            scanned += upper - lower
            for delivery in reversed(batch):
                if delivery.offset > upper:
                    continue
                if self.matches(delivery):
                    found.append(delivery)
                    if len(found) == limit:
                        return found, delivery.offset
            upper = lower
        return found, (upper if upper > 0 and scanned >= MAX_SCAN else 0)


async def search_events(request: web.Request) -> web.Response:
    bus = require_bus(context(request))
    limit = query_int(request, "limit", 50, minimum=1, maximum=1000)
    before_text = request.query.get("before", "")
    before = query_int(request, "before", 0, maximum=2**62) if before_text else None
    found, next_offset = await EventQuery.from_request(request).run(bus, limit=limit, before=before)
    metadata = {"continue": str(next_offset)} if next_offset else {}
    return web.json_response({"metadata": metadata, "items": [event_json(d) for d in found]})


async def event_at(bus: EventLog, offset: int) -> Delivery:
    found = await bus.list_events(after=offset - 1, limit=1)
    if not found or found[0].offset != offset:
        raise NotFoundError(f"no event at offset {offset} (it may have been removed by retention)")
    return found[0]


def _offset(request: web.Request) -> int:
    text = request.match_info["offset"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) < 1:  # SQLite 64-bit offsets
        raise InvalidError(f"invalid event offset {text!r}")
    return int(text)


async def get_event(request: web.Request) -> web.Response:
    ctx = context(request)
    delivery = await event_at(require_bus(ctx), _offset(request))
    allowed = allowed_namespaces(request)
    if allowed is not None and delivery.event.namespace not in allowed:
        raise NotFoundError(f"no event at offset {delivery.offset}")
    return web.json_response(event_json(delivery))


async def replay(ctx: ApiContext, offset: int, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    """Publish a copy of the event at ``offset`` with a new id; the new event as JSON."""
    bus = require_bus(ctx)
    original = (await event_at(bus, offset)).event
    if allowed is not None and original.namespace not in allowed:
        raise NotFoundError(f"no event at offset {offset}")
    extensions = dict(original.extensions)
    extensions[REPLAY_EXTENSION] = extensions.get(REPLAY_EXTENSION, original.id)
    copy = replace(original, id=new_event_id(), extensions=extensions)
    await bus.publish(copy)
    return {"replayOf": offset, "event": copy.to_cloudevent()}


async def replay_event(request: web.Request) -> web.Response:
    return web.json_response(await replay(context(request), _offset(request), allowed_namespaces(request)))


def add_routes(router: web.UrlDispatcher) -> None:
    r = router
    r.add_get("/api/v1/event-sources/", list_eventsources)
    r.add_get("/api/v1/event-sources/{namespace}", list_eventsources)
    r.add_get("/api/v1/event-sources/{namespace}/{name}", get_eventsource)
    r.add_get("/api/v1/sensors/", list_sensors)
    r.add_get("/api/v1/sensors/{namespace}", list_sensors)
    r.add_get("/api/v1/sensors/{namespace}/{name}", get_sensor)
    r.add_get("/api/v1/sensors/{namespace}/{name}/traces", get_sensor_traces)
    r.add_get("/api/v1/event-log", search_events)
    r.add_get("/api/v1/event-log/{offset}", get_event)
    r.add_post("/api/v1/event-log/{offset}/replay", replay_event)
