"""The sensor engine: bus events -> dependencies -> filters -> conditions -> triggers.

:class:`SensorManager` runs every Sensor it is given. Each sensor has ONE bus subscription,
group ``sensor:{namespace}/{name}``, kept across spec changes so its cursor survives. An event
is considered when its namespace is the sensor's and ``source``/``subject`` equal a dependency's
``eventSourceName``/``eventName``. Per dependency the filters run (:mod:`.filters`); every
decision is logged with a human reason and passed to the optional ``on_record`` hook.

Conditions (Argo's rules): with no ``conditions`` all dependencies are AND'ed. If the expression
has no ``&&``, every passing event of a dependency named in it fires the trigger at once, with
only that event. Otherwise the latest event per dependency is kept (an older one is dropped)
until the expression holds; then the trigger fires with all kept events and they are cleared.

Delivery (at-least-once, effectively-once workflows):

* An event is acknowledged on the bus only when every trigger it fired has finished, and, for
  ``&&`` conditions, only once it is no longer held as pending state (it fired or was
  replaced by a newer event of the same dependency). A crash therefore never loses an event.
* Pending ``&&`` state lives in memory; it is rebuilt after a restart because the held events
  were not acknowledged and the bus redelivers them (with every later event of that sensor, as
  the cursor only moves over a contiguous acknowledged prefix). Those later events fire their
  triggers again: the ``argoWorkflow`` trigger names its Workflow after the firing, so a replay
  finds it and creates nothing; a ``log`` trigger prints again. A durable state table can
  replace this later.
* Each execution is retried per ``retryStrategy`` (Argo's Backoff; one attempt by default)
  unless it fails with :class:`PermanentError`. A trigger that keeps failing is logged (and
  recorded) and the event is acknowledged anyway, so one broken trigger cannot block the sensor
  forever; ``dlqTrigger`` (not supported yet) is where such events will go. ``atLeastOnce`` is
  accepted and has no effect: executions are always awaited before the acknowledgement.
* ``rateLimit`` delays executions (never drops them), per trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from eventbridge.bus.base import Bus, Delivery, Subscription
from eventbridge.errors import EventBridgeError, PermanentError, TemporaryError
from eventbridge.events import Event
from eventbridge.models.base import References
from eventbridge.models.sensor import (
    ConditionNode,
    ConditionSyntaxError,
    Sensor,
    Trigger,
    TriggerParameter,
    TriggerTemplate,
    condition_names,
    evaluate_conditions,
    parse_conditions,
)
from eventbridge.sensor.filters import filter_dependency
from eventbridge.sensor.params import apply_params
from eventbridge.sensor.retry import RateLimiter, RetryPlan
from eventbridge.store.base import Store
from eventbridge.triggers import base as trigger_base
from eventbridge.triggers.base import TriggerAction, TriggerCall, TriggerOutcome, TriggerServices

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """One decision of a sensor, for traces: a dependency filter or a trigger execution."""

    sensor: str  # namespace/name
    kind: Literal["filter", "trigger"]
    name: str  # dependency or trigger name
    ok: bool
    reason: str
    event_ids: tuple[str, ...]
    outcome: TriggerOutcome | None = None


RecordHook = Callable[[SensorRecord], None]


def group_name(sensor: Sensor, prefix: str = "sensor") -> str:
    """The bus group of a sensor (stable across spec changes, so the cursor survives)."""
    return f"{prefix}:{sensor.namespace}/{sensor.name}"


def fingerprint(sensor: Sensor) -> str:
    """What decides whether a changed Sensor must be restarted: its spec and identity."""
    return json.dumps([sensor.namespace, sensor.name, sensor.spec.dump()], sort_keys=True, default=str)


@dataclass(slots=True)
class _TriggerState:
    trigger: Trigger
    name: str
    tree: ConditionNode | None
    dependencies: frozenset[str]
    immediate: bool
    action: TriggerAction | None
    plan: RetryPlan
    limiter: RateLimiter
    pending: dict[str, Delivery] = field(default_factory=dict)


class _SensorRunner:
    """Runs one sensor: its subscription task, trigger actions and pending condition state."""

    def __init__(
        self,
        sensor: Sensor,
        bus: Bus,
        services: TriggerServices,
        on_record: RecordHook | None,
        group: str,
        from_start: bool,
    ) -> None:
        self.sensor = sensor
        self.key = f"{sensor.namespace}/{sensor.name}"
        self.fingerprint = fingerprint(sensor)
        self._bus = bus
        self._services = services
        self._on_record = on_record
        self._group = group
        self._from_start = from_start
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._holds: dict[int, int] = {}
        self._dependencies = {dependency.name: dependency for dependency in sensor.spec.dependencies}
        self._triggers = [self._trigger_state(trigger) for trigger in sensor.spec.triggers]
        self._extra = {"sensorName": sensor.name, "namespace": sensor.namespace}

    def _trigger_state(self, trigger: Trigger) -> _TriggerState:
        name = trigger.name
        all_names = [dependency.name for dependency in self.sensor.spec.dependencies]
        expression = (trigger.template.conditions if trigger.template else None) or " && ".join(all_names)
        tree: ConditionNode | None
        try:
            tree = parse_conditions(expression) if expression else None
        except ConditionSyntaxError as err:
            log.error("sensor %s trigger %s: bad conditions %r: %s; it will never fire",
                      self.key, name, expression, err, extra={"triggerName": name})
            tree = None
        dependencies = frozenset(condition_names(tree)) if tree is not None else frozenset()
        action = trigger_base.action_for(self.sensor, trigger, self._services)
        if action is None:
            keys = trigger.template.type_keys() if trigger.template else []
            log.warning("sensor %s trigger %s: trigger type %s is not supported yet; it will be skipped",
                        self.key, name, ", ".join(keys) or "(none)", extra={"triggerName": name})
        return _TriggerState(
            trigger=trigger,
            name=name,
            tree=tree,
            dependencies=dependencies,
            immediate="&&" not in expression,
            action=action,
            plan=RetryPlan.from_backoff(trigger.retry_strategy),
            limiter=RateLimiter(trigger.rate_limit),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._subscription = self._bus.subscribe(self._group, from_start=self._from_start)
        self._task = asyncio.create_task(self._run(), name=f"sensor {self.key}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        for state in self._triggers:
            if state.action is not None:
                try:
                    await state.action.close()
                except Exception:
                    log.exception("sensor %s trigger %s: close failed", self.key, state.name)

    async def _run(self) -> None:
        assert self._subscription is not None
        log.info("sensor %s started (group %s)", self.key, self._group, extra=self._extra)
        async for delivery in self._subscription:
            try:
                await self._handle(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sensor %s: failed to process event %s; acknowledging it",
                              self.key, delivery.event.id, extra=self._extra)
                self._holds.pop(delivery.offset, None)
                await self._subscription.ack(delivery)

    # -- acknowledgements ------------------------------------------------------------------

    def _hold(self, delivery: Delivery) -> None:
        self._holds[delivery.offset] = self._holds.get(delivery.offset, 0) + 1

    async def _release(self, delivery: Delivery) -> None:
        count = self._holds.get(delivery.offset, 0) - 1
        if count > 0:
            self._holds[delivery.offset] = count
            return
        self._holds.pop(delivery.offset, None)
        if self._subscription is not None:
            await self._subscription.ack(delivery)

    # -- processing ------------------------------------------------------------------------

    def _record(self, record: SensorRecord) -> None:
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:
                log.exception("sensor %s: record hook failed", self.key)

    async def _handle(self, delivery: Delivery) -> None:
        event = delivery.event
        self._hold(delivery)
        try:
            if event.namespace != self.sensor.namespace:
                return
            passed: list[str] = []
            for dependency in self.sensor.spec.dependencies:
                if dependency.event_source_name != event.source or dependency.event_name != event.subject:
                    continue
                result = filter_dependency(dependency, event)
                extra = {**self._extra, "eventSourceName": event.source, "eventName": event.subject}
                if result.passed:
                    passed.append(dependency.name)
                    log.debug("sensor %s dependency %s: event %s passed: %s",
                              self.key, dependency.name, event.id, result.reason, extra=extra)
                elif result.error:
                    log.warning("sensor %s dependency %s: event %s discarded due to filtering error: %s",
                                self.key, dependency.name, event.id, result.reason, extra=extra)
                else:
                    log.info("sensor %s dependency %s: event %s discarded: %s",
                             self.key, dependency.name, event.id, result.reason, extra=extra)
                self._record(SensorRecord(self.key, "filter", dependency.name, result.passed,
                                          result.reason, (event.id,)))
            for state in self._triggers:
                relevant = [name for name in passed if name in state.dependencies]
                if not relevant or state.tree is None:
                    continue
                if state.immediate:
                    for name in relevant:
                        await self._fire(state, {name: event})
                    continue
                for name in relevant:
                    older = state.pending.get(name)
                    state.pending[name] = delivery
                    self._hold(delivery)
                    if older is not None:
                        await self._release(older)
                if evaluate_conditions(state.tree, frozenset(state.pending)):
                    fired = dict(state.pending)
                    state.pending.clear()
                    try:
                        await self._fire(state, {name: held.event for name, held in fired.items()})
                    finally:
                        for held in fired.values():
                            await self._release(held)
        finally:
            await self._release(delivery)

    async def _fire(self, state: _TriggerState, events: Mapping[str, Event]) -> bool:
        """Execute one trigger with retries; True on success. Never raises (except cancellation)."""
        event_ids = tuple(sorted(event.id for event in events.values()))
        extra = {**self._extra, "triggerName": state.name}
        if state.action is None:
            reason = "trigger type not supported yet; skipped"
            self._record(SensorRecord(self.key, "trigger", state.name, False, reason, event_ids))
            return False

        def applier(document: Any, parameters: Sequence[TriggerParameter] | None) -> Any:
            return apply_params(document, parameters, events)

        last_error = ""
        for attempt in range(1, state.plan.attempts + 1):
            delay = 0.0
            try:
                await state.limiter.wait()
                call = TriggerCall(
                    sensor=self.sensor,
                    trigger=state.trigger,
                    template=_parameterized_template(state.trigger, events),
                    events=events,
                    apply_params=applier,
                )
                outcome = await state.action.execute(call)
            except PermanentError as err:
                last_error = str(err)
                log.error("sensor %s trigger %s failed permanently for events %s: %s",
                          self.key, state.name, ", ".join(event_ids), err, extra=extra)
                break
            except TemporaryError as err:
                last_error = str(err)
                delay = max(err.delay, state.plan.delay(attempt))
            except EventBridgeError as err:
                last_error = str(err)
                delay = state.plan.delay(attempt)
            except Exception as err:
                last_error = f"{type(err).__name__}: {err}"
                log.exception("sensor %s trigger %s: unexpected error", self.key, state.name, extra=extra)
                delay = state.plan.delay(attempt)
            else:
                log.info("sensor %s trigger %s fired by %s: %s",
                         self.key, state.name, ", ".join(event_ids), outcome.summary, extra=extra)
                self._record(SensorRecord(self.key, "trigger", state.name, True, outcome.summary,
                                          event_ids, outcome))
                return True
            if attempt < state.plan.attempts:
                log.warning("sensor %s trigger %s attempt %d/%d failed: %s; retrying in %.2fs",
                            self.key, state.name, attempt, state.plan.attempts, last_error, delay,
                            extra=extra)
                await asyncio.sleep(delay)
        else:
            log.error("sensor %s trigger %s gave up after %d attempt(s) for events %s: %s",
                      self.key, state.name, state.plan.attempts, ", ".join(event_ids), last_error,
                      extra=extra)
        self._record(SensorRecord(self.key, "trigger", state.name, False, last_error, event_ids))
        return False


def _parameterized_template(trigger: Trigger, events: Mapping[str, Event]) -> TriggerTemplate:
    """The trigger's template with the trigger-level ``parameters`` applied (Argo's
    ApplyTemplateParameters)."""
    if trigger.template is None:
        raise PermanentError("trigger has no template")
    if not trigger.parameters:
        return trigger.template
    document = apply_params(trigger.template.dump(), trigger.parameters, events)
    try:
        return TriggerTemplate.model_validate(document)
    except ValidationError as err:
        raise PermanentError(f"trigger parameters produced an invalid template: {err}") from None


class SensorManager:
    """Runs a set of Sensors against a bus, creating workflows in a store.

    ``apply`` is idempotent: new sensors start, changed ones restart (same bus group), removed
    ones stop. ``group_prefix`` and ``from_start`` exist for replays and tests: a new group with
    ``from_start=True`` reads every retained event again.
    """

    def __init__(
        self,
        bus: Bus,
        store: Store,
        references: References,
        *,
        on_record: RecordHook | None = None,
        group_prefix: str = "sensor",
        from_start: bool = False,
    ) -> None:
        self._bus = bus
        self._services = TriggerServices(store=store, references=references)
        self._on_record = on_record
        self._group_prefix = group_prefix
        self._from_start = from_start
        self._runners: dict[str, _SensorRunner] = {}
        self._lock = asyncio.Lock()

    @property
    def sensors(self) -> list[str]:
        """``namespace/name`` of the running sensors."""
        return sorted(self._runners)

    async def apply(self, sensors: Sequence[Sensor]) -> None:
        """Make the running set equal ``sensors`` (start new, restart changed, stop removed)."""
        async with self._lock:
            desired = {f"{sensor.namespace}/{sensor.name}": sensor for sensor in sensors}
            for key in [key for key in self._runners if key not in desired]:
                await self._runners.pop(key).stop()
                log.info("sensor %s stopped", key)
            for key, sensor in desired.items():
                current = self._runners.get(key)
                if current is not None and current.fingerprint == fingerprint(sensor):
                    continue
                if current is not None:
                    await self._runners.pop(key).stop()
                    log.info("sensor %s changed; restarting", key)
                runner = _SensorRunner(
                    sensor,
                    self._bus,
                    self._services,
                    self._on_record,
                    group_name(sensor, self._group_prefix),
                    self._from_start,
                )
                await runner.start()
                self._runners[key] = runner

    async def stop(self) -> None:
        """Stop every sensor (unacknowledged events are redelivered at the next start)."""
        async with self._lock:
            for key in list(self._runners):
                await self._runners.pop(key).stop()

    async def __aenter__(self) -> SensorManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
