"""Runs the event sources of a set of EventSources and keeps them in line with new versions.

``apply(eventsources)`` is declarative: events that are new start, events whose spec changed
restart, events that disappeared stop. Each event (``spec.<type>.<event name>``) is one
:class:`~eventbridge.sources.base.Source`; one that fails to start is logged, kept in
:meth:`SourceManager.status` with its error, retried on the next ``apply``, and never stops the others.
``argo_events_event_service_running_total`` counts the running events of each EventSource.
With tracing on (:mod:`eventbridge.tracing`), each publish is a source span and the event carries
its ``traceparent``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import eventbridge.sources as sources_package
from eventbridge import metrics, tracing
from eventbridge.bus.base import Bus, Subscription, publish_all, settled
from eventbridge.events import Event
from eventbridge.models.base import ArgoModel, References
from eventbridge.models.eventsource import EventSource
from eventbridge.sources.base import SOURCE_TYPES, BusDispatch, ConfigMapStates, Source, SourceContext
from eventbridge.sources.http import HttpRouter

log = logging.getLogger(__name__)

_NOT_SOURCE_MODULES = frozenset({"base", "http", "manager"})


def load_source_types() -> list[str]:
    """Import every source module of this package (each registers itself); returns the type keys."""
    for module in pkgutil.iter_modules(sources_package.__path__):
        if module.name not in _NOT_SOURCE_MODULES and not module.name.startswith("_"):
            importlib.import_module(f"{sources_package.__name__}.{module.name}")
    return list(SOURCE_TYPES)


@dataclass(frozen=True, slots=True, order=True)
class SourceKey:
    """Identity of one running event."""

    namespace: str
    eventsource: str
    type_key: str
    event_name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.eventsource}/{self.type_key}/{self.event_name}"


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """For the API/UI: ``state`` is ``running``, ``retrying`` (started, but its server cannot be
    reached right now; ``error`` says why) or ``failed`` (did not start; ``error`` says why)."""

    key: SourceKey
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """An open webhook-style endpoint (``bound_port`` differs from ``port`` only for port 0)."""

    key: SourceKey
    port: int
    bound_port: int
    endpoint: str
    method: str


@dataclass(slots=True)
class _Entry:
    source: Source
    fingerprint: str


@dataclass(frozen=True, slots=True)
class _Wanted:
    eventsource: EventSource
    spec: Any
    fingerprint: str


class _TracedBus:
    """The bus as sources see it: with tracing on, each publish is a source span and the event
    carries the span's ``traceparent`` extension attribute; otherwise it is the bus itself."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def start(self) -> None:
        await self._bus.start()

    async def stop(self) -> None:
        await self._bus.stop()

    async def publish(self, event: Event) -> bool:
        if not tracing.enabled():
            return await self._bus.publish(event)
        with tracing.publish_span(event) as traced:
            return await self._bus.publish(traced)

    async def publish_many(self, events: Sequence[Event]) -> list[bool | Exception]:
        if not tracing.enabled():
            return await publish_all(self._bus, events)
        return await settled([self.publish(event) for event in events])

    def subscribe(self, group: str, *, from_start: bool = False) -> Subscription:
        return self._bus.subscribe(group, from_start=from_start)


def _fingerprint(eventsource: EventSource, spec: Any) -> str:
    dumped = spec.dump() if isinstance(spec, ArgoModel) else spec
    return json.dumps([eventsource.spec.event_bus_name, dumped], sort_keys=True, default=str)


class SourceManager:
    """Starts, restarts and stops sources; owns the shared HTTP servers.

    ``state_dir`` keeps source state in files (embedded mode); ``states`` in ConfigMaps (cluster mode)."""

    def __init__(
        self,
        bus: Bus,
        references: References,
        *,
        host: str = "0.0.0.0",
        start_timeout: float = 30.0,
        state_dir: Path | None = None,
        states: ConfigMapStates | None = None,
    ) -> None:
        self.bus = bus
        self._publish_bus = _TracedBus(bus)
        self.references = references
        self.state_dir = state_dir
        self.states = states
        self.router = HttpRouter(host, pressure=getattr(bus, "pressure", None))  # back-pressure (SqliteBus)
        self.start_timeout = start_timeout
        self._running: dict[SourceKey, _Entry] = {}
        self._failed: dict[SourceKey, tuple[str, str]] = {}  # key -> (fingerprint, error)
        self._lock = asyncio.Lock()
        load_source_types()

    async def apply(self, eventsources: Sequence[EventSource]) -> None:
        """Make the running sources match ``eventsources`` (start new, restart changed, stop removed)."""
        async with self._lock:
            wanted = self._wanted(eventsources)
            for key in sorted(self._running):
                entry = self._running[key]
                target = wanted.get(key)
                if target is None or target.fingerprint != entry.fingerprint:
                    await self._stop_one(key, entry, "removed" if target is None else "changed")
            self._failed = {k: v for k, v in self._failed.items() if k in wanted}
            for key in wanted:  # in the order given: on a route clash the first one wins
                if key not in self._running:
                    await self._start_one(key, wanted[key])
            await self.router.close_idle()

    async def stop(self) -> None:
        """Stop every source and close the HTTP servers."""
        async with self._lock:
            for key in sorted(self._running):
                await self._stop_one(key, self._running[key], "shutting down")
            self._failed.clear()
            await self.router.stop()

    def status(self) -> list[SourceStatus]:
        """Every known event with its state."""
        out: list[SourceStatus] = []
        for key, entry in self._running.items():
            problem = getattr(entry.source, "problem", None)
            if isinstance(problem, str) and problem:
                out.append(SourceStatus(key, "retrying", problem))
            else:
                out.append(SourceStatus(key, "running"))
        out += [SourceStatus(key, "failed", error) for key, (_, error) in self._failed.items()]
        return sorted(out, key=lambda s: s.key)

    def endpoints(self) -> list[EndpointInfo]:
        """Open HTTP endpoints of running sources."""
        out: list[EndpointInfo] = []
        for key, entry in sorted(self._running.items()):
            source = entry.source
            endpoint = getattr(source, "endpoint", None)
            bound_port = getattr(source, "bound_port", None)
            if isinstance(endpoint, str) and isinstance(bound_port, int):
                port = getattr(source, "port", bound_port)
                method = getattr(source, "method", "")
                out.append(EndpointInfo(key, int(port), bound_port, endpoint, str(method)))
        return out

    def _wanted(self, eventsources: Sequence[EventSource]) -> dict[SourceKey, _Wanted]:
        wanted: dict[SourceKey, _Wanted] = {}
        for eventsource in eventsources:
            for type_key, event_name, spec in eventsource.spec.sources():
                key = SourceKey(eventsource.namespace, eventsource.name, type_key, event_name)
                if key in wanted:
                    log.warning("event %s is defined twice; keeping the first", key, extra=_labels(key))
                    continue
                wanted[key] = _Wanted(eventsource, spec, _fingerprint(eventsource, spec))
        return wanted

    async def _start_one(self, key: SourceKey, target: _Wanted) -> None:
        previous = self._failed.get(key)
        factory = SOURCE_TYPES.get(key.type_key)
        try:
            if factory is None:
                raise LookupError(f"event source type {key.type_key} is not supported yet")
            context = SourceContext(
                eventsource=target.eventsource,
                type_key=key.type_key,
                references=self.references,
                dispatch=BusDispatch(self._publish_bus, target.eventsource, key.type_key),
                router=self.router,
                state_dir=self.state_dir,
                states=self.states,
            )
            source = factory(context, key.event_name, target.spec)
            try:
                await asyncio.wait_for(source.start(), self.start_timeout)
            except BaseException:
                await self._safe_stop(key, source)
                raise
        except Exception as exc:  # noqa: BLE001
            error = str(exc) or type(exc).__name__
            self._failed[key] = (target.fingerprint, error)
            if previous != (target.fingerprint, error):  # do not repeat the same complaint on every apply
                log.error("event source %s did not start: %s", key, error, extra=_labels(key))
            return
        self._failed.pop(key, None)
        self._running[key] = _Entry(source, target.fingerprint)
        metrics.event_service_running(key.namespace, key.eventsource, 1)
        log.info("event source %s started", key, extra=_labels(key))

    async def _stop_one(self, key: SourceKey, entry: _Entry, why: str) -> None:
        del self._running[key]
        metrics.event_service_running(key.namespace, key.eventsource, -1)
        await self._safe_stop(key, entry.source)
        log.info("event source %s stopped (%s)", key, why, extra=_labels(key))

    @staticmethod
    async def _safe_stop(key: SourceKey, source: Source) -> None:
        try:
            await source.stop()
        except Exception as exc:  # noqa: BLE001
            log.error("event source %s did not stop cleanly: %s", key, exc, extra=_labels(key))


def _labels(key: SourceKey) -> dict[str, str]:
    return {
        "namespace": key.namespace,
        "eventSourceName": key.eventsource,
        "eventSourceType": key.type_key,
        "eventName": key.event_name,
    }
