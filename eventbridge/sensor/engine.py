"""The pure sensor logic shared by the running engine (:mod:`.manager`) and ``sensor test``
(:mod:`.dryrun`): which dependencies an event satisfies, and when a trigger's conditions hold.

Argo's rules:

* An event is considered by a dependency when its namespace is the sensor's and ``source`` /
  ``subject`` equal the dependency's ``eventSourceName`` / ``eventName``; then the dependency's
  transform and filters run (:func:`eventbridge.sensor.filters.filter_dependency`).
* With no ``conditions`` all dependencies are AND'ed. An expression without ``&&`` fires at once
  for every passing event of a dependency named in it, with only that event. Otherwise the latest
  event per dependency is kept (replacing an older one) until the expression holds; then the
  trigger fires with all kept events and they are cleared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from eventbridge.events import Event
from eventbridge.models.sensor import (
    ConditionNode,
    ConditionSyntaxError,
    Sensor,
    Trigger,
    condition_names,
    evaluate_conditions,
    parse_conditions,
)
from eventbridge.sensor.filters import DependencyFilter, FilterCheck
from eventbridge.triggers._policy import backoff_duration


@dataclass(slots=True)  # treated as immutable; not frozen: one is built per event and dependency
class DependencyDecision:
    """One dependency's verdict on one event."""

    name: str
    matched: bool
    reason: str
    event: Event
    checks: tuple[FilterCheck, ...] = ()
    error: str | None = None

    def as_trace(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "matched": self.matched,
            "reason": self.reason,
            "filters": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True, slots=True)
class ResetSchedule:
    """``conditionsReset.byTime``: cron (5 fields) in ``timezone`` (UTC when unset)."""

    cron: str
    timezone: str


@dataclass(slots=True)
class TriggerPlan:
    """A trigger's parsed conditions and options."""

    trigger: Trigger
    name: str
    expression: str
    tree: ConditionNode | None
    dependencies: frozenset[str]
    immediate: bool
    problem: str | None = None
    debounce: float | None = None
    resets: list[ResetSchedule] = field(default_factory=list)

    def waiting_for(self, present: set[str] | frozenset[str]) -> list[str]:
        """Dependencies (in expression order) without an event."""
        return [name for name in dict.fromkeys(condition_names(self.tree)) if name not in present] if self.tree else []


def plan_trigger(sensor: Sensor, trigger: Trigger) -> TriggerPlan:
    all_names = [dependency.name for dependency in sensor.spec.dependencies]
    expression = (trigger.template.conditions if trigger.template else None) or " && ".join(all_names)
    tree: ConditionNode | None = None
    problem: str | None = None
    try:
        tree = parse_conditions(expression) if expression else None
    except ConditionSyntaxError as err:
        problem = f"bad conditions {expression!r}: {err}"
    debounce: float | None = None
    if trigger.eventbridge_debounce is not None and trigger.eventbridge_debounce.window not in ("", 0):
        debounce = max(0.0, backoff_duration(trigger.eventbridge_debounce.window))
    resets: list[ResetSchedule] = []
    for criteria in (trigger.template.conditions_reset if trigger.template else None) or []:
        if criteria.by_time is not None and criteria.by_time.cron:
            resets.append(ResetSchedule(criteria.by_time.cron, criteria.by_time.timezone or "UTC"))
    return TriggerPlan(
        trigger=trigger,
        name=trigger.name,
        expression=expression,
        tree=tree,
        dependencies=frozenset(condition_names(tree)) if tree is not None else frozenset(),
        immediate="&&" not in expression,
        problem=problem,
        debounce=debounce,
        resets=resets,
    )


class DependencyMatcher:
    """A sensor's dependencies with their filters compiled once (:class:`DependencyFilter`),
    indexed by the ``(eventSourceName, eventName)`` they listen to."""

    def __init__(self, sensor: Sensor) -> None:
        self.namespace = sensor.namespace
        self._listening: dict[tuple[str, str], list[tuple[str, DependencyFilter]]] = {}
        for dependency in sensor.spec.dependencies:
            key = (dependency.event_source_name, dependency.event_name)
            self._listening.setdefault(key, []).append((dependency.name, DependencyFilter(dependency)))

    def match(self, event: Event) -> list[DependencyDecision]:
        """The verdict of every dependency that listens to this event's source and name, in the
        sensor's order."""
        if event.namespace != self.namespace:
            return []
        decisions: list[DependencyDecision] = []
        for name, dependency_filter in self._listening.get((event.source, event.subject), ()):
            result = dependency_filter.apply(event)
            kept = result.event or event
            decisions.append(DependencyDecision(name, result.passed, result.reason, kept, result.checks, result.error))
        return decisions


def why_not_listening(sensor: Sensor, event: Event) -> dict[str, str]:
    """For each dependency that ignores the event: why (``sensor test`` explains it)."""
    reasons: dict[str, str] = {}
    for dependency in sensor.spec.dependencies:
        if event.namespace != sensor.namespace:
            reasons[dependency.name] = f"event namespace {event.namespace!r} is not the sensor's {sensor.namespace!r}"
        elif dependency.event_source_name != event.source or dependency.event_name != event.subject:
            reasons[dependency.name] = (
                f"listens to eventSourceName {dependency.event_source_name!r} eventName {dependency.event_name!r}; "
                f"the event has source {event.source!r} subject {event.subject!r}"
            )
    return reasons


def offer(
    plan: TriggerPlan, pending: dict[str, Event], passed: Mapping[str, Event]
) -> tuple[list[dict[str, Event]], dict[str, Event]]:
    """Offer the events that passed to a trigger; returns (firings, replaced held events).

    ``pending`` (the latest held event per dependency) is updated in place: events are added,
    and cleared when the trigger fires.
    """
    relevant = [name for name in passed if name in plan.dependencies]
    if not relevant or plan.tree is None:
        return [], {}
    if plan.immediate:
        return [{name: passed[name]} for name in relevant], {}
    replaced: dict[str, Event] = {}
    for name in relevant:
        older = pending.get(name)
        if older is not None:
            replaced[name] = older
        pending[name] = passed[name]
    if evaluate_conditions(plan.tree, frozenset(pending)):
        fired = dict(pending)
        pending.clear()
        return [fired], replaced
    return [], replaced


__all__ = [
    "DependencyDecision",
    "DependencyMatcher",
    "ResetSchedule",
    "TriggerPlan",
    "offer",
    "plan_trigger",
    "why_not_listening",
]
