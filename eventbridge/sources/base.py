"""The event source driver interface, the dispatch callable and the registry of source types.

A source type is one module in this package that registers a factory under Argo's spec key::

    SOURCE_TYPES.register("webhook")(WebhookSource)

The manager calls ``factory(context, event_name, spec)`` once per event (``spec.<type>.<event
name>``) and drives the result with ``start()`` / ``stop()``. A source turns what it receives into
``await context.dispatch(event_name, data)``, which returns only once the event is durable on the
bus; a source must acknowledge its origin (HTTP answer, SQS delete, Kafka commit) only after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from eventbridge import metrics
from eventbridge.bus.base import Bus, publish_all
from eventbridge.errors import InvalidError
from eventbridge.events import Event, new_event_id
from eventbridge.models.base import ArgoModel, Finding, References
from eventbridge.models.eventsource import EventSource, SecretKeySelector
from eventbridge.registry import Registry
from eventbridge.sources.http import HttpRouter


class Source(Protocol):
    """One running event of an EventSource (``spec.<type>.<event name>``)."""

    async def start(self) -> None:
        """Begin receiving; raise if the source cannot run (the manager logs it)."""
        ...

    async def stop(self) -> None:
        """Stop receiving and release ports, connections and tasks. Must not raise."""
        ...


class Dispatch(Protocol):
    """Wraps ``data`` in a CloudEvent, publishes it and returns it once it is durable."""

    async def __call__(self, event_name: str, data: Any, *, event_id: str | None = None) -> Event: ...

    async def many(self, items: Sequence[tuple[str, Any, str | None]]) -> list[Event | Exception]:
        """Dispatch several ``(event_name, data, event_id)`` at once (one bus write where the bus
        groups them); each item's result is its Event, or the exception that publishing it raised."""
        ...


class BusDispatch:
    """The :class:`Dispatch` of one source type of one EventSource.

    CloudEvent attributes as Argo sets them: ``id`` random 32 hex unless the origin gives a stable
    id, ``source`` = EventSource name, ``subject`` = event name, ``type`` = source type key,
    ``namespace`` = EventSource namespace. A duplicate (already on the bus) counts as durable.

    Metrics as Argo's event sources count them: ``argo_events_events_sent_total`` when the bus took
    the event, ``argo_events_events_sent_failed_total`` when publishing raised, and the time of
    both in ``argo_events_event_processing_duration_milliseconds``.
    """

    def __init__(self, bus: Bus, eventsource: EventSource, type_key: str) -> None:
        self._bus = bus
        self._source = eventsource.name
        self._namespace = eventsource.namespace
        self._type = type_key

    def _event(self, event_name: str, data: Any, event_id: str | None) -> Event:
        return Event(
            id=event_id or new_event_id(),
            source=self._source,
            subject=event_name,
            type=self._type,
            data=data,
            namespace=self._namespace,
        )

    async def __call__(self, event_name: str, data: Any, *, event_id: str | None = None) -> Event:
        event = self._event(event_name, data, event_id)
        start = time.perf_counter()
        try:
            await self._bus.publish(event)
        except BaseException:
            metrics.event_sent_failed(self._namespace, self._source, event_name)
            raise
        else:
            metrics.event_sent(self._namespace, self._source, event_name)
        finally:
            elapsed = (time.perf_counter() - start) * 1000.0
            metrics.event_processing_duration(self._namespace, self._source, event_name, elapsed)
        return event

    async def many(self, items: Sequence[tuple[str, Any, str | None]]) -> list[Event | Exception]:
        events = [self._event(name, data, event_id) for name, data, event_id in items]
        start = time.perf_counter()
        outcomes = await publish_all(self._bus, events)
        elapsed = (time.perf_counter() - start) * 1000.0
        results: list[Event | Exception] = []
        for event, outcome in zip(events, outcomes, strict=True):
            if isinstance(outcome, Exception):
                metrics.event_sent_failed(self._namespace, self._source, event.subject)
                results.append(outcome)
            else:
                metrics.event_sent(self._namespace, self._source, event.subject)
                results.append(event)
            metrics.event_processing_duration(self._namespace, self._source, event.subject, elapsed)
        return results


class SourceState(Protocol):
    """Small text records a source keeps across restarts, by key (a calendar's last fire)."""

    async def load(self, key: str) -> str | None:
        """The record, or None when there is none."""
        ...

    async def save(self, key: str, value: str) -> None:
        """Write the record (other keys are kept)."""
        ...


class ConfigMapStates(Protocol):
    """Source state kept in the cluster's ConfigMaps (cluster mode gives one to the SourceManager)."""

    def config_map_state(self, namespace: str, name: str, *, create: bool) -> SourceState:
        """Records kept as keys of ConfigMap ``namespace/name``, created on the first write when
        ``create`` (else a write to a missing ConfigMap fails)."""
        ...


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source may use: its EventSource, secrets, the dispatch, the shared HTTP router, a
    directory for state that must survive restarts (``None``: nothing is persisted) and, in cluster
    mode, ConfigMaps for such state (``states``)."""

    eventsource: EventSource
    type_key: str
    references: References
    dispatch: Dispatch
    router: HttpRouter
    state_dir: Path | None = None
    states: ConfigMapStates | None = None

    def secret(self, selector: SecretKeySelector) -> str:
        """The value of a Secret key in the EventSource's namespace (NotFoundError if missing)."""
        return self.references.secret(self.eventsource.namespace, selector.name, selector.key)

    def state_path(self, event_name: str, suffix: str) -> Path | None:
        """A file for this event's state: ``<state_dir>/<namespace>/<eventsource>/<type>.<event><suffix>``
        (its folder is created), or ``None`` without a state directory."""
        if self.state_dir is None:
            return None
        folder = self.state_dir / self.eventsource.namespace / self.eventsource.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.type_key}.{event_name}{suffix}"

    def config_map_state(self, name: str, *, create: bool) -> SourceState | None:
        """Records in ConfigMap ``name`` of the EventSource's namespace when the runtime keeps source
        state in the cluster (``states``), else None."""
        if self.states is None:
            return None
        return self.states.config_map_state(self.eventsource.namespace, name, create=create)

    def labels(self, event_name: str) -> dict[str, str]:
        """Argo's logging labels for ``extra=``."""
        return {
            "namespace": self.eventsource.namespace,
            "eventSourceName": self.eventsource.name,
            "eventSourceType": self.type_key,
            "eventName": event_name,
        }


SourceFactory = Callable[[SourceContext, str, Any], Source]

SpecT = TypeVar("SpecT", bound=ArgoModel)


def validated_spec(model: type[SpecT], spec: Any, context: SourceContext, event_name: str) -> SpecT:
    """``spec`` as ``model``; InvalidError naming every error its ``check_spec`` finds under
    ``spec.<type>.<event name>`` (warnings are lint's business)."""
    value = spec if isinstance(spec, model) else model.model_validate(spec)
    check = cast(Callable[[str], list[Finding]] | None, getattr(value, "check_spec", None))
    findings = check(f"spec.{context.type_key}.{event_name}") if check is not None else []
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise InvalidError("; ".join(f"{f.path}: {f.message}" for f in errors))
    return value


#: Argo spec key (``webhook``, ``github``...) -> factory of one running event.
SOURCE_TYPES: Registry[SourceFactory] = Registry("event source type")
