"""``eventbridge sensor test``: run a Sensor over given events without touching anything.

:func:`dry_run` feeds the events, in order, through the same logic the engine uses
(:mod:`.engine`: dependencies, transforms, filters, conditions with held events) and, for each
firing, asks the trigger for the object it *would* create (:meth:`TriggerAction.preview`), fully
parameterized. Nothing is created, sent or stored; secrets are not read.

Result (JSON-ready)::

    {"dependencies": [{"name": "push", "event": "<event id>", "matched": true,
                       "reason": "...", "filters": [{"kind", "passed", "reason"}]}],
     "triggers": [{"name": "build", "fired": true, "events": ["id", ...],
                   "resource": {...} | null, "reason": "..."}]}

Events are taken as coming from the sensor's namespace. Every (dependency, event) pair is
listed; one that does not listen to the event says why. A trigger that fires has one entry per
firing; one that never fires has a single entry with ``fired: false``, ``resource: null`` and
what it waits for.

:func:`parse_cloudevent_file` reads structured CloudEvents JSON (one object or a list);
:func:`format_report` renders a result for people.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventbridge.errors import EventBridgeError, InvalidError, NotFoundError, PermanentError
from eventbridge.events import Event, parse_time
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.engine import DependencyMatcher, offer, plan_trigger, why_not_listening
from eventbridge.sensor.manager import make_call
from eventbridge.store.base import Object, WatchEvent
from eventbridge.triggers import base as trigger_base
from eventbridge.triggers.base import TriggerServices

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type")


class _NoStore:
    """A Store that refuses everything: previews must not touch one."""

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def create(self, obj: Object) -> Object:
        raise PermanentError("dry run: nothing is created")

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        raise NotFoundError(f"dry run: {kind} {namespace}/{name} is not looked up")

    async def list(self, kind: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Object]:
        return []

    async def update(self, obj: Object) -> Object:
        raise PermanentError("dry run: nothing is updated")

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        raise PermanentError("dry run: nothing is deleted")

    async def watch(self, kind: str, namespace: str | None = None) -> Any:  # pragma: no cover - unused
        raise PermanentError("dry run: nothing is watched")
        yield WatchEvent("ADDED", {})


class _NoReferences:
    """Secrets and ConfigMaps are not read in a dry run."""

    def secret(self, namespace: str, name: str, key: str) -> str:
        return f"<secret {name}/{key}>"

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"dry run: ConfigMap {namespace}/{name} key {key} is not read")


async def dry_run_async(sensor: Sensor, events: list[Event]) -> dict[str, Any]:
    """:func:`dry_run` for callers that already run an event loop."""
    services = TriggerServices(store=_NoStore(), references=_NoReferences())
    plans = [plan_trigger(sensor, trigger) for trigger in sensor.spec.triggers]
    pending: dict[str, dict[str, Event]] = {plan.name: {} for plan in plans}
    dependencies: list[dict[str, Any]] = []
    firings: dict[str, list[dict[str, Any]]] = {plan.name: [] for plan in plans}
    matcher = DependencyMatcher(sensor)
    for given in events:
        # a dry run is about one sensor: the events are taken as coming from its namespace
        event = dataclasses.replace(given, namespace=sensor.namespace)
        decisions = {decision.name: decision for decision in matcher.match(event)}
        ignored = why_not_listening(sensor, event)
        for dependency in sensor.spec.dependencies:
            decision = decisions.get(dependency.name)
            if decision is None:
                dependencies.append({
                    "name": dependency.name, "event": event.id, "matched": False,
                    "reason": ignored.get(dependency.name, "not considered"), "filters": [],
                })  # fmt: skip
                continue
            dependencies.append({
                "name": dependency.name, "event": event.id, "matched": decision.matched,
                "reason": decision.reason, "filters": [check.as_dict() for check in decision.checks],
            })  # fmt: skip
        passed = {name: decision.event for name, decision in decisions.items() if decision.matched}
        for plan in plans:
            fired, _replaced = offer(plan, pending[plan.name], passed)
            for events_of_firing in fired:
                firings[plan.name].append(await _preview(sensor, plan.trigger, events_of_firing, services))
    triggers: list[dict[str, Any]] = []
    for plan in plans:
        if firings[plan.name]:
            triggers += [{"name": plan.name, **entry} for entry in firings[plan.name]]
            continue
        if plan.problem:
            reason = plan.problem
        else:
            waiting = plan.waiting_for(set(pending[plan.name]))
            reason = "waiting for " + ", ".join(waiting) if waiting else "no event satisfied its conditions"
        triggers.append({"name": plan.name, "fired": False, "events": [], "resource": None, "reason": reason})
    return {"dependencies": dependencies, "triggers": triggers}


async def _preview(sensor: Sensor, trigger: Any, events: dict[str, Event], services: TriggerServices) -> dict[str, Any]:
    ids = sorted(event.id for event in events.values())
    action = trigger_base.action_for(sensor, trigger, services)
    if action is None:
        keys = trigger.template.type_keys() if trigger.template else []
        reason = f"trigger type {', '.join(keys) or '(none)'} is not supported"
        return {"fired": True, "events": ids, "resource": None, "reason": reason}
    try:
        resource = await action.preview(make_call(sensor, trigger, events))
    except EventBridgeError as err:
        return {"fired": True, "events": ids, "resource": None, "reason": f"would fail: {err}"}
    finally:
        await action.close()
    return {"fired": True, "events": ids, "resource": resource, "reason": "conditions met"}


def dry_run(sensor: Sensor, events: list[Event]) -> dict[str, Any]:
    """Evaluate ``events`` (in order) against ``sensor``; see the module docstring for the shape."""
    import asyncio

    return asyncio.run(dry_run_async(sensor, events))


# ---------------------------------------------------------------------------------------------
# CloudEvents input
# ---------------------------------------------------------------------------------------------


def _event_from(obj: Any, where: str, namespace: str) -> Event:
    if not isinstance(obj, dict):
        raise InvalidError(f"{where}: a CloudEvent must be a JSON object")
    missing = [key for key in REQUIRED_ATTRIBUTES if not obj.get(key)]
    if missing:
        raise InvalidError(f"{where}: missing CloudEvents attribute(s) {', '.join(missing)}")
    if str(obj["specversion"]) != "1.0":
        raise InvalidError(f'{where}: specversion must be "1.0", got {obj["specversion"]!r}')
    for key in ("id", "source", "type", "subject", "datacontenttype", "time"):
        if key in obj and not isinstance(obj[key], str):
            raise InvalidError(f"{where}: attribute {key} must be a string")
    if "data_base64" in obj:
        raise InvalidError(f"{where}: data_base64 is not supported; give JSON data in 'data'")
    moment = datetime.now(UTC)
    if obj.get("time"):
        try:
            moment = parse_time(obj["time"])
        except ValueError:
            raise InvalidError(f"{where}: time {obj['time']!r} is not RFC 3339") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    content_type = obj.get("datacontenttype") or "application/json"
    known = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data", "namespace"}
    return Event(
        id=obj["id"],
        source=obj["source"],
        subject=obj.get("subject") or "",
        type=obj["type"],
        data=obj.get("data"),
        time=moment,
        namespace=str(obj.get("namespace") or namespace),
        datacontenttype=content_type,
        extensions={key: str(value) for key, value in obj.items() if key not in known},
    )


def parse_cloudevents(text: str, where: str = "<input>", namespace: str = "default") -> list[Event]:
    """Structured-mode CloudEvents JSON (one object or a list) -> events; InvalidError if bad.

    ``source`` is the EventSource name and ``subject`` the event name, as Argo sets them. An
    event without a ``namespace`` extension gets ``namespace`` (the sensor's, for ``sensor test``).
    """
    try:
        document = json.loads(text)
    except ValueError as err:
        raise InvalidError(f"{where}: not JSON: {err}") from None
    items = document if isinstance(document, list) else [document]
    if not items:
        raise InvalidError(f"{where}: no events")
    return [
        _event_from(item, f"{where}[{index}]" if isinstance(document, list) else where, namespace)
        for index, item in enumerate(items)
    ]


def parse_cloudevent_file(path: Path | str, namespace: str = "default") -> list[Event]:
    """Read a CloudEvents JSON file (see :func:`parse_cloudevents`); InvalidError if unreadable or bad."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidError(f"{file_path}: cannot read: {err}") from None
    return parse_cloudevents(text, str(file_path), namespace)


# ---------------------------------------------------------------------------------------------
# Human report
# ---------------------------------------------------------------------------------------------


def format_report(result: dict[str, Any]) -> str:
    """A readable rendering of a :func:`dry_run` result."""
    lines = ["Dependencies:"]
    for item in result.get("dependencies", []):
        mark = "PASS" if item.get("matched") else "FAIL"
        lines.append(f"  [{mark}] {item['name']} <- event {item['event']}: {item.get('reason', '')}")
        for check in item.get("filters", []):
            sign = "ok" if check.get("passed") else "no"
            lines.append(f"         {check['kind']}: {sign}: {check.get('reason', '')}")
    lines.append("Triggers:")
    for item in result.get("triggers", []):
        if item.get("fired"):
            events = ", ".join(item.get("events", []))
            lines.append(f"  [FIRE] {item['name']} (events {events}): {item.get('reason', '')}")
            resource = item.get("resource")
            if resource is not None:
                rendered = json.dumps(resource, indent=2, sort_keys=True, default=str)
                lines += ["         " + line for line in rendered.splitlines()]
        else:
            lines.append(f"  [----] {item['name']} did not fire: {item.get('reason', '')}")
    return "\n".join(lines) + "\n"


__all__ = ["dry_run", "dry_run_async", "format_report", "parse_cloudevent_file", "parse_cloudevents"]
