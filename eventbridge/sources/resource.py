"""The ``resource`` event source: changes of Kubernetes objects of one resource.

Behaviour (Argo's, differences marked):

* ``group``/``version``/``resource`` name the resource as in the API path (``""``/``v1``/
  ``configmaps``, ``apps``/``v1``/``deployments``, custom resources too); ``namespace`` empty means
  all namespaces (the credentials must allow that).
* The Kubernetes client comes from ``$KUBECONFIG`` or, in a Pod, the service account (cluster mode
  and embedded mode alike); without either the source does not start and says why.
* Like Argo's informer, the source lists first, so every existing object gives an ``ADD`` (use
  ``filter.afterStart`` to skip those), then follows changes. ``eventTypes`` (``ADD``, ``UPDATE``,
  ``DELETE``) selects what is published; an update that does not change the resourceVersion is not
  published.
* Event data exactly as Argo's: ``{"type", "body", "oldBody", "group", "version", "resource",
  "metadata"}``: ``body`` is the object, ``oldBody`` its previous state for an ``UPDATE`` (else
  ``null``), ``metadata`` only when set.
* Event id: ``<uid>:<resourceVersion>`` (``:DELETE`` appended for deletions), so the objects a
  restart or a relist reports again are stored once by the bus.
* ``filter``: ``prefix`` of the object's name; ``labels`` (Kubernetes label selector operations
  ``=``, ``==``, ``!=``, ``in``, ``notin`` with comma-separated values, ``exists``, ``!``, ``gt``,
  ``lt``) are sent to the API server; ``fields`` are gjson paths whose string value must match (``=``,
  ``==``) or not match (``!=``) the regular expression ``value`` (a path that is missing drops the
  event; as in Argo a non-string value is matched as the empty string; *difference*: an empty
  ``operation`` means ``==`` as Argo documents, where Argo's code drops the event); ``createdBy``:
  only objects created before that time; ``afterStart``: only changes after the source started (the
  change time is the creation for ``ADD``, the last update in ``managedFields`` for ``UPDATE``, the
  deletion time for ``DELETE``; *difference*: the API server's times are whole seconds, so a change
  seen live by the watch in the very second of the start counts as after it, where Argo drops it;
  objects found by the first list are never after the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eventbridge.errors import EventBridgeError, InvalidError
from eventbridge.expr.paths import lookup
from eventbridge.expr.regex import UserPattern, compile_user_regex
from eventbridge.models.eventsource import ResourceEventSource, ResourceSelector, parse_kube_time
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, validated_spec
from eventbridge.store.objects import ObjectEvent, Objects, ObjectWatch, resource_version

if TYPE_CHECKING:
    from eventbridge.store.kube_objects import KubeObjects

log = logging.getLogger(__name__)

_TYPES = {"ADDED": "ADD", "MODIFIED": "UPDATE", "DELETED": "DELETE"}
_DISPATCH_ATTEMPTS = 3
_REWATCH_SECONDS = 5.0


def label_selector(selectors: list[ResourceSelector]) -> str:
    """The Kubernetes label selector string for Argo's ``filter.labels``."""
    parts: list[str] = []
    for selector in selectors:
        key, operation, value = selector.key, selector.operation or "=", selector.value
        if operation in ("in", "notin"):
            parts.append(f"{key} {operation} ({','.join(v.strip() for v in value.split(','))})")
        elif operation == "exists":
            parts.append(key)
        elif operation == "!":
            parts.append(f"!{key}")
        elif operation in ("gt", "lt"):
            parts.append(f"{key}{'>' if operation == 'gt' else '<'}{value}")
        else:
            parts.append(f"{key}{operation}{value}")
    return ",".join(parts)


def _time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        return parse_kube_time(str(text))
    except ValueError:
        return None


def event_time(obj: dict[str, Any], event_type: str) -> datetime:
    """When the change happened, as Argo's ``getEventTime`` reads it from the object."""
    metadata = obj.get("metadata") or {}
    created = _time(metadata.get("creationTimestamp")) or datetime.now(UTC)
    if event_type == "DELETE":
        return _time(metadata.get("deletionTimestamp")) or datetime.now(UTC)
    if event_type == "UPDATE":
        latest = created
        for entry in metadata.get("managedFields") or []:
            when = _time(entry.get("time")) if entry.get("operation") == "Update" else None
            if when is not None and when > latest:
                latest = when
        return latest
    return created


class ResourceSource:
    """One ``spec.resource.<event name>`` watch. ``objects`` overrides the client from the environment."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any, *, objects: Objects | None = None) -> None:
        spec = validated_spec(ResourceEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.labels = context.labels(event_name)
        spec_filter = spec.filter
        self._prefix = (spec_filter.prefix if spec_filter else None) or ""
        self._selector = label_selector(spec_filter.labels or []) if spec_filter else ""
        self._created_by = parse_kube_time(spec_filter.created_by) if spec_filter and spec_filter.created_by else None
        self._after_start = bool(spec_filter and spec_filter.after_start)
        self._fields: list[tuple[str, bool, UserPattern]] = []
        for selector in (spec_filter.fields if spec_filter else None) or []:
            try:
                pattern = compile_user_regex(selector.value)
            except re.error as exc:
                raise InvalidError(f"spec.resource.{event_name}.filter.fields: {selector.value!r}: {exc}") from None
            self._fields.append((selector.key, (selector.operation or "==") != "!=", pattern))
        self._given = objects
        self._owned: KubeObjects | None = None
        self._watch: ObjectWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = datetime.now(UTC)

    async def start(self) -> None:
        objects = self._given
        if objects is None:
            # Imported here: the kubernetes client is large, and only this source type needs it.
            from eventbridge.store.kube import api_client_from_environment
            from eventbridge.store.kube_objects import KubeObjects

            try:
                self._owned = KubeObjects(api_client_from_environment(), max_workers=2, max_watches=1)
            except InvalidError as exc:
                raise InvalidError(f"the resource event source needs a Kubernetes API: {exc}") from None
            objects = self._owned
        spec = self.spec
        info = await objects.resource(spec.group, spec.version, spec.resource)
        self._started = datetime.now(UTC)
        self._watch = objects.watch(info, spec.namespace or None, label_selector=self._selector or None)
        self._task = asyncio.get_running_loop().create_task(
            self._run(objects, info), name=f"resource {self.event_name}"
        )
        await self._watch.synced()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._watch is not None:
            with contextlib.suppress(Exception):
                await self._watch.aclose()
            self._watch = None
        if self._owned is not None:
            with contextlib.suppress(Exception):
                await self._owned.close()
            self._owned = None

    def accepts(self, event_type: str, obj: dict[str, Any], *, existing: bool = False) -> bool:
        """Argo's ``passFilters`` (see the module docstring); ``existing``: found by the first list."""
        metadata = obj.get("metadata") or {}
        if self._prefix and not str(metadata.get("name") or "").startswith(self._prefix):
            return False
        if self._after_start:
            when = event_time(obj, event_type)
            same_second = when >= self._started.replace(microsecond=0)
            if when < self._started and (existing or not same_second):
                return False
        created = _time(metadata.get("creationTimestamp"))
        if self._created_by is not None and created is not None and created > self._created_by:
            return False
        for path, must_match, pattern in self._fields:
            try:
                found, value = lookup(obj, path)
            except EventBridgeError:
                return False
            if not found:
                return False
            matched = pattern.search(value if isinstance(value, str) else "") is not None
            if matched != must_match:
                return False
        return True

    def data(self, event: ObjectEvent, event_type: str) -> dict[str, Any]:
        """Argo's ResourceEventData."""
        spec = self.spec
        data: dict[str, Any] = {
            "type": event_type,
            "body": event.object,
            "oldBody": event.old if event_type == "UPDATE" else None,
            "group": spec.group,
            "version": spec.version,
            "resource": spec.resource,
        }
        if spec.metadata:
            data["metadata"] = spec.metadata
        return data

    async def _run(self, objects: Objects, info: Any) -> None:
        while True:
            watch = self._watch
            assert watch is not None
            try:
                async for event in watch:
                    await self._handle(event)
            except EventBridgeError as exc:
                log.error("watching %s failed: %s; trying again in %gs", info.plural, exc, _REWATCH_SECONDS,
                          extra=self.labels)  # fmt: skip
            with contextlib.suppress(Exception):
                await watch.aclose()
            await asyncio.sleep(_REWATCH_SECONDS)
            self._watch = objects.watch(info, self.spec.namespace or None, label_selector=self._selector or None)

    async def _handle(self, event: ObjectEvent) -> None:
        event_type = _TYPES[event.type]
        if event_type not in (self.spec.event_types or []):
            return
        if (
            event_type == "UPDATE"
            and event.old is not None
            and resource_version(event.old) == resource_version(event.object)
        ):
            return
        if not self.accepts(event_type, event.object, existing=event.existing):
            return
        metadata = event.object.get("metadata") or {}
        event_id = f"{metadata.get('uid') or metadata.get('name')}:{resource_version(event.object)}"
        if event_type == "DELETE":
            event_id += ":DELETE"
        data = self.data(event, event_type)
        for attempt in range(1, _DISPATCH_ATTEMPTS + 1):
            try:
                await self.context.dispatch(self.event_name, data, event_id=event_id)
                return
            except Exception as exc:  # noqa: BLE001  (a failed publish must not end the watch)
                if attempt == _DISPATCH_ATTEMPTS:
                    log.error("failed to record %s of %s: %s", event_type, metadata.get("name"), exc,
                              extra=self.labels)  # fmt: skip
                    return
                await asyncio.sleep(0.2 * attempt)


SOURCE_TYPES.register("resource")(ResourceSource)

__all__ = ["ResourceSource", "event_time", "label_selector"]
