"""The sensor engine: bus events -> dependencies -> filters -> conditions -> triggers.

:class:`SensorManager` runs every Sensor it is given. Each sensor has ONE bus subscription,
group ``sensor:{namespace}/{name}``, kept across spec changes so its cursor survives. The rules
of dependencies and conditions are in :mod:`.engine`; every decision is logged with a reason,
recorded in the :class:`~eventbridge.sensor.traces.TraceLog` (``SensorManager.traces``) and
passed to the optional ``on_record`` hook.

Delivery (at-least-once to the sensor, effectively-once workflows):

* An event is acknowledged on the bus only after every trigger it fired has run (succeeded, or
  failed after its retries and its ``dlqTrigger``). ``atLeastOnce`` is therefore always on:
  the field is accepted and changes nothing. A crash before that redelivers the event; the
  ``argoWorkflow`` trigger recognises the firing (same key) and creates nothing twice.
* Events held by ``&&`` conditions: with ``state_path`` (the embedded runtime passes
  ``state_dir/"sensors.db"``) they are written to a SQLite table (:mod:`.state`) and then
  acknowledged; a restart loads them back, so a half-met condition survives without replaying
  later events. Without ``state_path`` they stay unacknowledged until they fire or are replaced,
  and the bus redelivers them (and every later event) after a restart.
* Several replicas (cluster mode, ``conditions``: a :class:`~eventbridge.bus.base.ConditionsBus`):
  replicas split the bus topic's partitions, so one replica may see ``a`` and another ``b``. Stage 1
  (any replica, the event's bus subscription) runs the filters, fires triggers without ``&&`` at
  once, and forwards each passed event of a trigger with ``&&`` to the sensor's conditions topic,
  keyed by the trigger's name; the event is acknowledged once every forward is stored. Stage 2
  (group ``<group>:conditions``, every replica a member) holds the latest event per dependency for
  the triggers of the partitions it owns, and acknowledges a held record only when it fired or was
  replaced. A crash or a rebalance redelivers the unacknowledged records to the new owner, which
  builds the state again (the lost owner drops its state); a firing repeated that way has the same
  key, so the ``argoWorkflow`` trigger creates nothing twice. A record of an event that already
  fired the trigger here (a repeated forward) is dropped; on replay, records older than the last
  ``conditionsReset`` tick are dropped.
* ``conditionsReset.byTime`` clears a trigger's held events at each cron tick (croniter, in the
  criteria's timezone); at start, stored events older than the previous tick are cleared.
* Each execution is retried per ``retryStrategy`` (Argo's Backoff; one attempt by default; always
  honoured) unless it fails with :class:`PermanentError`. After the last failure the
  ``dlqTrigger`` runs once with the same events (its own ``retryStrategy`` applies). A failed
  firing is logged, traced and then acknowledged, so one broken trigger cannot block the sensor.
* ``rateLimit`` delays executions (never drops them), per trigger.
* ``eventbridgeDebounce`` (an eventbridge extension, not Argo's): firings within the window are
  coalesced into one firing with the latest events, run when the window closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ValidationError

from eventbridge import tracing
from eventbridge.bus.base import Bus, ConditionDelivery, ConditionsBus, ConditionsSubscription, Delivery, Subscription
from eventbridge.errors import EventBridgeError, InvalidError, PermanentError, TemporaryError
from eventbridge.events import Event, format_time
from eventbridge.models.base import References
from eventbridge.models.sensor import Sensor, Trigger, TriggerParameter, TriggerTemplate, evaluate_conditions
from eventbridge.sensor.engine import DependencyMatcher, ResetSchedule, TriggerPlan, offer, plan_trigger
from eventbridge.sensor.params import apply_params, construct_payload, resolve_param_value
from eventbridge.sensor.retry import RateLimiter, RetryPlan
from eventbridge.sensor.state import PendingStore
from eventbridge.sensor.traces import TraceLog
from eventbridge.store.base import Store
from eventbridge.store.objects import Objects
from eventbridge.tasks import cancel_all
from eventbridge.triggers import base as trigger_base
from eventbridge.triggers.base import (
    TriggerAction,
    TriggerCall,
    TriggerOutcome,
    TriggerServices,
    WorkflowOperations,
)

log = logging.getLogger(__name__)

ENV_CONCURRENCY = "EVENTBRIDGE_SENSOR_CONCURRENCY"
DEFAULT_CONCURRENCY = 64
FIRED_MEMORY = 10_000  # per trigger: (dependency, event id) pairs that fired it, to drop repeated forwards
FORWARD_RETRY_MAX_S = 30.0


def firing_concurrency(env: Mapping[str, str] | None = None) -> int:
    """How many events' firings one sensor runs at once (``$EVENTBRIDGE_SENSOR_CONCURRENCY``, default 64)."""
    text = (os.environ if env is None else env).get(ENV_CONCURRENCY, "").strip()
    if not text:
        return DEFAULT_CONCURRENCY
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidError(f"{ENV_CONCURRENCY}={text!r}: expected a whole number of at least 1")
    return value


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """One decision of a sensor, for hooks: a dependency filter or a trigger execution."""

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


def parameterized_template(trigger: Trigger, events: Mapping[str, Event]) -> TriggerTemplate:
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


def make_call(sensor: Sensor, trigger: Trigger, events: Mapping[str, Event]) -> TriggerCall:
    """A TriggerCall with the trigger-level parameters applied and the resource applier bound."""

    def applier(document: Any, parameters: Sequence[TriggerParameter] | None) -> Any:
        return apply_params(document, parameters, events)

    def payload(parameters: Sequence[TriggerParameter] | None) -> bytes:
        return construct_payload(parameters, events)

    def resolve(parameter: TriggerParameter) -> str | None:
        if parameter.src is None:
            raise PermanentError(f"parameter for {parameter.dest!r} has no src")
        resolved = resolve_param_value(parameter.src, events)
        return resolved.text if resolved is not None else None

    return TriggerCall(
        sensor=sensor,
        trigger=trigger,
        template=parameterized_template(trigger, events),
        events=events,
        apply_params=applier,
        build_payload=payload,
        resolve_value=resolve,
    )


def previous_tick(schedule: ResetSchedule, now: datetime) -> datetime:
    zone = _zone(schedule.timezone)
    value: datetime = croniter(schedule.cron, now.astimezone(zone)).get_prev(datetime)
    return value


def next_tick(schedule: ResetSchedule, now: datetime) -> datetime:
    zone = _zone(schedule.timezone)
    value: datetime = croniter(schedule.cron, now.astimezone(zone)).get_next(datetime)
    return value


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(slots=True)
class _Held:
    event: Event
    delivery: Delivery | None  # None when the event is durable in the state table (already acked)


@dataclass(slots=True)
class _Debounce:
    window: float
    events: dict[str, Event] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    coalesced: int = 0


@dataclass(slots=True)
class _Firing:
    """A trigger execution decided under the sensor lock and run outside it."""

    runtime: _TriggerRuntime
    events: dict[str, Event]
    deliveries: list[Delivery]  # each carries one hold, released once the firing ran
    entry: dict[str, Any]  # the event's trace entry for this trigger, completed with the outcome
    durable_id: int | None = None  # the row in the pending store's firing table, if any


@dataclass(slots=True)
class _Forward:
    """Stage 1 with a conditions bus: an event passed for a trigger with ``&&``, being stored on the
    sensor's conditions topic (``sent``); it holds ``delivery`` until then."""

    runtime: _TriggerRuntime
    dependency: str
    event: Event
    delivery: Delivery
    sent: Awaitable[None]


@dataclass(slots=True)
class _TriggerRuntime:
    plan: TriggerPlan
    action: TriggerAction | None
    dlq: Trigger | None
    dlq_action: TriggerAction | None
    retry: RetryPlan
    dlq_retry: RetryPlan
    limiter: RateLimiter
    pending: dict[str, _Held] = field(default_factory=dict)
    debounce: _Debounce | None = None
    fired: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)  # stage 2 (conditions bus)


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
        state: PendingStore | None,
        traces: TraceLog,
        concurrency: int = DEFAULT_CONCURRENCY,
        conditions: ConditionsBus | None = None,
    ) -> None:
        self.sensor = sensor
        self.key = f"{sensor.namespace}/{sensor.name}"
        self.fingerprint = fingerprint(sensor)
        self._matcher = DependencyMatcher(sensor)
        self._bus = bus
        self._services = services
        self._on_record = on_record
        self._group = group
        self._from_start = from_start
        self._state = state
        self._traces = traces
        self._subscription: Subscription | None = None
        self._conditions = conditions
        self._conditions_subscription: ConditionsSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._holds: dict[tuple[bool, int, int], int] = {}
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(concurrency)
        self._extra = {"sensorName": sensor.name, "namespace": sensor.namespace}
        self._triggers = [self._runtime(trigger) for trigger in sensor.spec.triggers]
        self._by_name = {runtime.plan.name: runtime for runtime in self._triggers}

    def _runtime(self, trigger: Trigger) -> _TriggerRuntime:
        plan = plan_trigger(self.sensor, trigger)
        extra = {**self._extra, "triggerName": plan.name}
        if plan.problem:
            log.error("sensor %s trigger %s: %s; it will never fire", self.key, plan.name, plan.problem, extra=extra)
        action = trigger_base.action_for(self.sensor, trigger, self._services)
        if action is None:
            keys = trigger.template.type_keys() if trigger.template else []
            log.warning(
                "sensor %s trigger %s: trigger type %s is not supported; it will be skipped",
                self.key, plan.name, ", ".join(keys) or "(none)", extra=extra,
            )  # fmt: skip
        dlq = trigger.dlq_trigger
        dlq_action = trigger_base.action_for(self.sensor, dlq, self._services) if dlq is not None else None
        return _TriggerRuntime(
            plan=plan,
            action=action,
            dlq=dlq,
            dlq_action=dlq_action,
            retry=RetryPlan.from_backoff(trigger.retry_strategy),
            dlq_retry=RetryPlan.from_backoff(dlq.retry_strategy if dlq is not None else None),
            limiter=RateLimiter(trigger.rate_limit),
            debounce=_Debounce(plan.debounce) if plan.debounce is not None else None,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._state is not None:
            self._restore()
        if self._conditions is not None and any(self._held_in_stage_two(runtime) for runtime in self._triggers):
            self._conditions_subscription = await self._conditions.subscribe(
                self.sensor.namespace, self.sensor.name, f"{self._group}:conditions", self._lost
            )
            self._spawn(self._run_conditions(), f"sensor {self.key} conditions")
        self._subscription = self._bus.subscribe(self._group, from_start=self._from_start)
        self._task = asyncio.create_task(self._run(), name=f"sensor {self.key}")
        for runtime in self._triggers:
            for schedule in runtime.plan.resets:
                self._spawn(self._reset_loop(runtime, schedule), f"sensor {self.key} reset {runtime.plan.name}")

    def _restore(self) -> None:
        assert self._state is not None
        keep = {
            runtime.plan.name: runtime.plan.dependencies for runtime in self._triggers if not runtime.plan.immediate
        }
        self._state.retain(self.key, keep)
        now = datetime.now(UTC)
        for runtime in self._triggers:
            for schedule in runtime.plan.resets:
                tick = previous_tick(schedule, now)
                cleared = self._state.clear(self.key, runtime.plan.name, before=tick.timestamp())
                if cleared:
                    log.info(
                        "sensor %s trigger %s: cleared %d held event(s) older than the reset at %s",
                        self.key,
                        runtime.plan.name,
                        cleared,
                        tick.isoformat(),
                        extra=self._extra,
                    )
        stored = self._state.load(self.key)
        for runtime in self._triggers:
            for dependency, held in stored.get(runtime.plan.name, {}).items():
                runtime.pending[dependency] = _Held(held.event, None)
            if runtime.pending:
                log.info(
                    "sensor %s trigger %s: restored held events of %s",
                    self.key,
                    runtime.plan.name,
                    ", ".join(sorted(runtime.pending)),
                    extra=self._extra,
                )
        by_name = {runtime.plan.name: runtime for runtime in self._triggers}
        for firing_id, name, events in self._state.firings(self.key):
            owner = by_name.get(name)
            if owner is None:
                self._state.finish_firing(firing_id)
                continue
            log.info("sensor %s trigger %s: resuming a firing cut short by a stop (events %s)", self.key, name,
                     ", ".join(sorted(event.id for event in events.values())), extra=self._extra)  # fmt: skip
            entry: dict[str, Any] = {"name": name, "conditions": owner.plan.expression, "state": {}}
            firing = _Firing(owner, events, [], entry, firing_id)
            self._spawn(self._resume(firing), f"sensor {self.key} resumed firing")

    async def _resume(self, firing: _Firing) -> None:
        await self._run_firing(firing)
        self._trace({"kind": "firing", "triggers": [firing.entry]})

    def _spawn(self, coroutine: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        await cancel_all([self._task, *self._background])
        self._task = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        if self._conditions_subscription is not None:
            await self._conditions_subscription.close()
            self._conditions_subscription = None
        for runtime in self._triggers:
            for action in (runtime.action, runtime.dlq_action):
                if action is None:
                    continue
                try:
                    await action.close()
                except Exception:
                    log.exception("sensor %s trigger %s: close failed", self.key, runtime.plan.name)

    async def _run(self) -> None:
        assert self._subscription is not None
        log.info("sensor %s started (group %s)", self.key, self._group, extra=self._extra)
        await self._consume(self._subscription, self._handle, lambda d: f"event {d.event.id}")

    async def _consume(
        self,
        subscription: Subscription,
        handle: Callable[[Any], Awaitable[tuple[dict[str, Any] | None, list[_Firing | _Forward]]]],
        described: Callable[[Any], str],
    ) -> None:
        """Handle each delivery under the sensor's lock, record its trace and start its firings.
        The bus topic (stage 1) and the conditions topic (stage 2) are read alike."""
        async for delivery in subscription:
            try:
                async with self._lock:
                    trace, firings = await handle(delivery)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sensor %s: failed to process %s; acknowledging it",
                              self.key, described(delivery), extra=self._extra)  # fmt: skip
                self._holds.pop(self._hold_key(delivery), None)
                await subscription.ack(delivery)
                continue
            if trace is not None:
                self._trace(trace)  # its "firing" entries are completed in place when the firings ran
            if firings:
                await self._slots.acquire()  # back-pressure: at most `concurrency` events' firings in flight
                self._spawn(self._complete(firings), f"sensor {self.key} firing")

    async def _complete(self, firings: list[_Firing | _Forward]) -> None:
        """Run the firings (and forwards) one event caused, concurrently."""
        try:
            if len(firings) == 1:
                await self._run_work(firings[0])
            else:
                await asyncio.gather(*(self._run_work(firing) for firing in firings))
        finally:
            self._slots.release()

    async def _run_work(self, work: _Firing | _Forward) -> None:
        if isinstance(work, _Forward):
            await self._run_forward(work)
        else:
            await self._run_firing(work)

    async def _run_forward(self, forward: _Forward) -> None:
        """Wait until the forward is stored (forwarding again after a failure), then release its event."""
        assert self._conditions is not None
        sent, attempt = forward.sent, 0
        while True:
            try:
                await sent
                break
            except Exception as err:  # noqa: BLE001  (any failure to store: forward again later)
                attempt += 1
                delay = min(FORWARD_RETRY_MAX_S, 0.5 * 2**attempt)
                log.warning("sensor %s trigger %s: forwarding event %s failed: %s; retrying in %.1fs",
                            self.key, forward.runtime.plan.name, forward.event.id, err, delay,
                            extra=self._extra)  # fmt: skip
                await asyncio.sleep(delay)
                sent = self._conditions.forward(self.sensor.namespace, self.sensor.name, forward.runtime.plan.name,
                                                forward.dependency, forward.event)  # fmt: skip
        await self._release(forward.delivery)

    # -- stage 2: the conditions topic (cluster mode) --------------------------------------

    async def _run_conditions(self) -> None:
        try:
            await self._consume_conditions()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sensor %s: the conditions subscription failed", self.key, extra=self._extra)
            raise

    async def _consume_conditions(self) -> None:
        subscription = self._conditions_subscription
        assert subscription is not None
        await self._consume(subscription, self._handle_condition,
                            lambda d: f"held event {d.event.id} of trigger {d.trigger}")  # fmt: skip

    async def _handle_condition(
        self, delivery: ConditionDelivery
    ) -> tuple[dict[str, Any] | None, list[_Firing | _Forward]]:
        """Offer one forwarded event to its trigger's held state (under the lock)."""
        event, name = delivery.event, delivery.dependency
        firings: list[_Firing | _Forward] = []
        runtime = self._by_name.get(delivery.trigger)
        drop = ""
        if runtime is None or not self._held_in_stage_two(runtime) or name not in runtime.plan.dependencies:
            drop = "the sensor no longer has this trigger or dependency with && conditions"
        elif (name, event.id) in runtime.fired:
            drop = "this event already fired the trigger (a repeated forward)"
        elif runtime.plan.resets:
            tick = max(previous_tick(schedule, datetime.now(UTC)) for schedule in runtime.plan.resets)
            moment = event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=UTC)
            if moment < tick:
                drop = f"older than the conditions reset at {tick.isoformat()}"
        if drop:
            log.info("sensor %s trigger %s: dropped held event %s of %s: %s",
                     self.key, delivery.trigger, event.id, name, drop, extra=self._extra)  # fmt: skip
            if self._conditions_subscription is not None:
                await self._conditions_subscription.ack(delivery)
            return None, firings
        assert runtime is not None
        plan, tree = runtime.plan, runtime.plan.tree
        assert tree is not None
        base = {"name": plan.name, "conditions": plan.expression}
        verdict = {"name": name, "matched": True, "reason": "passed its filters (forwarded)", "filters": []}
        trace: dict[str, Any] = {
            "kind": "event",
            "event": {k: v for k, v in event.context().items() if k in ("id", "source", "subject", "type", "time")},
            "dependencies": [verdict],
            "triggers": [],
        }
        older = runtime.pending.get(name)
        self._hold(delivery)
        runtime.pending[name] = _Held(event, delivery)
        if older is not None:
            await self._release(older.delivery)
        if not evaluate_conditions(tree, frozenset(runtime.pending)):
            waiting = plan.waiting_for(set(runtime.pending))
            trace["triggers"].append({**base, "status": "waiting", "result": "waiting for " + ", ".join(waiting),
                                      "state": self._state_of(runtime)})  # fmt: skip
            return trace, firings
        entry: dict[str, Any] = {**base, "state": self._state_of(runtime)}
        held = list(runtime.pending.items())
        runtime.pending.clear()
        for dependency, item in held:
            runtime.fired[(dependency, item.event.id)] = None
        while len(runtime.fired) > FIRED_MEMORY:
            runtime.fired.popitem(last=False)
        events = {dependency: item.event for dependency, item in held}
        await self._dispatch(runtime, events, [item.delivery for _, item in held if item.delivery], entry, firings)
        for _, item in held:
            await self._release(item.delivery)
        trace["triggers"].append(entry)
        return trace, firings

    async def _lost(self, partitions: set[int]) -> None:
        """Another replica owns these partitions of the conditions topic now: drop what they held here
        (unacknowledged; the new owner reads them again)."""
        async with self._lock:
            dropped: list[str] = []
            for runtime in self._triggers:
                for name, held in list(runtime.pending.items()):
                    delivery = held.delivery
                    if isinstance(delivery, ConditionDelivery) and delivery.partition in partitions:
                        del runtime.pending[name]
                        self._holds.pop(self._hold_key(delivery), None)
                        dropped.append(f"{runtime.plan.name}/{name}")
        if dropped:
            log.info("sensor %s: conditions partitions %s moved to another replica; it holds %s now",
                     self.key, sorted(partitions), ", ".join(dropped), extra=self._extra)  # fmt: skip

    async def _run_firing(self, firing: _Firing) -> None:
        # Cancellation (stop, reload) propagates past the releases: the deliveries stay
        # unacknowledged and a durable firing stays stored, so the firing runs again later.
        firing.entry.update(await self._fire(firing.runtime, firing.events))
        if firing.durable_id is not None and self._state is not None:
            self._state.finish_firing(firing.durable_id)
        for delivery in firing.deliveries:
            await self._release(delivery)

    # -- acknowledgements ------------------------------------------------------------------

    @staticmethod
    def _hold_key(delivery: Delivery) -> tuple[bool, int, int]:
        """(conditions topic?, offset, generation): deliveries of the two subscriptions never share a key."""
        if isinstance(delivery, ConditionDelivery):
            return True, delivery.offset, delivery.generation
        return False, delivery.offset, 0

    def _hold(self, delivery: Delivery) -> None:
        key = self._hold_key(delivery)
        self._holds[key] = self._holds.get(key, 0) + 1

    async def _release(self, delivery: Delivery | None) -> None:
        if delivery is None:
            return
        key = self._hold_key(delivery)
        count = self._holds.get(key, 0) - 1
        if count > 0:
            self._holds[key] = count
            return
        self._holds.pop(key, None)
        subscription = self._conditions_subscription if key[0] else self._subscription
        if subscription is not None:
            await subscription.ack(delivery)

    # -- processing ------------------------------------------------------------------------

    def _record(self, record: SensorRecord) -> None:
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:
                log.exception("sensor %s: record hook failed", self.key)

    def _trace(self, trace: dict[str, Any]) -> None:
        trace.setdefault("sensor", self.key)
        trace.setdefault("time", format_time(datetime.now(UTC)))
        self._traces.record(self.sensor.namespace, self.sensor.name, trace)

    async def _handle(self, delivery: Delivery) -> tuple[dict[str, Any] | None, list[_Firing | _Forward]]:
        """Match one event and decide its firings and forwards (under the lock); the caller runs them.

        Returns the event's trace (None when no dependency subscribes to it) and the firings."""
        event = delivery.event
        firings: list[_Firing | _Forward] = []
        self._hold(delivery)
        try:
            decisions = self._matcher.match(event)
            if not decisions:
                return None, firings
            passed: dict[str, Event] = {}
            extra = {**self._extra, "eventSourceName": event.source, "eventName": event.subject}
            for decision in decisions:
                if decision.matched:
                    passed[decision.name] = decision.event
                    log.debug("sensor %s dependency %s: event %s passed: %s",
                              self.key, decision.name, event.id, decision.reason, extra=extra)  # fmt: skip
                elif decision.error:
                    log.warning("sensor %s dependency %s: event %s discarded due to filtering error: %s",
                                self.key, decision.name, event.id, decision.reason, extra=extra)  # fmt: skip
                else:
                    log.info("sensor %s dependency %s: event %s discarded: %s",
                             self.key, decision.name, event.id, decision.reason, extra=extra)  # fmt: skip
                self._record(SensorRecord(self.key, "filter", decision.name, decision.matched, decision.reason,
                                          (event.id,)))  # fmt: skip
            trace: dict[str, Any] = {
                "kind": "event",
                "event": {k: v for k, v in event.context().items() if k in ("id", "source", "subject", "type", "time")},
                "dependencies": [decision.as_trace() for decision in decisions],
                "triggers": [],
            }
            considered = {decision.name for decision in decisions}
            for runtime in self._triggers:
                if not runtime.plan.dependencies & considered:
                    continue
                trace["triggers"] += await self._offer(runtime, passed, delivery, firings)
            return trace, firings
        finally:
            await self._release(delivery)

    def _state_of(self, runtime: _TriggerRuntime) -> dict[str, str | None]:
        names = sorted(runtime.plan.dependencies)
        return {name: (runtime.pending[name].event.id if name in runtime.pending else None) for name in names}

    def _held_in_stage_two(self, runtime: _TriggerRuntime) -> bool:
        """Whether this trigger's held events live on the conditions topic (cluster mode, ``&&``)."""
        return self._conditions is not None and not runtime.plan.immediate and runtime.plan.tree is not None

    async def _offer(
        self, runtime: _TriggerRuntime, passed: dict[str, Event], delivery: Delivery, firings: list[_Firing | _Forward]
    ) -> list[dict[str, Any]]:
        plan = runtime.plan
        base = {"name": plan.name, "conditions": plan.expression}
        relevant = [name for name in passed if name in plan.dependencies]
        if plan.tree is None:
            return [{**base, "status": "skipped", "result": plan.problem or "no conditions", "state": {}}]
        if not relevant:
            return [{**base, "status": "skipped", "result": "no dependency of this trigger passed its filters",
                     "state": self._state_of(runtime)}]  # fmt: skip
        if self._held_in_stage_two(runtime):
            assert self._conditions is not None
            for name in relevant:
                sent = self._conditions.forward(self.sensor.namespace, self.sensor.name, plan.name, name, passed[name])
                self._hold(delivery)
                firings.append(_Forward(runtime, name, passed[name], delivery, sent))
            result = f"forwarded {', '.join(relevant)} to the conditions topic (key {plan.name!r})"
            return [{**base, "status": "forwarded", "result": result, "state": {}}]
        pending_events = {name: held.event for name, held in runtime.pending.items()}
        ready, replaced = offer(plan, pending_events, passed)
        entries: list[dict[str, Any]] = []
        if plan.immediate:
            for events in ready:
                entry: dict[str, Any] = {**base, "state": {}}
                await self._dispatch(runtime, events, [delivery], entry, firings)
                entries.append(entry)
            return entries
        # held-state bookkeeping for && conditions
        for name in relevant:
            older = runtime.pending.get(name)
            if self._state is not None:
                self._state.put(self.key, plan.name, name, passed[name])
                runtime.pending[name] = _Held(passed[name], None)
            else:
                self._hold(delivery)
                runtime.pending[name] = _Held(passed[name], delivery)
            if older is not None:
                await self._release(older.delivery)
        if replaced:
            log.debug("sensor %s trigger %s: replaced held events of %s", self.key, plan.name, ", ".join(replaced))
        if not ready:
            waiting = plan.waiting_for(set(runtime.pending))
            return [{**base, "status": "waiting", "result": "waiting for " + ", ".join(waiting),
                     "state": self._state_of(runtime)}]  # fmt: skip
        entry = {**base, "state": self._state_of(runtime)}
        held = list(runtime.pending.values())
        runtime.pending.clear()
        durable_id = self._state.begin_firing(self.key, plan.name, ready[0]) if self._state is not None else None
        await self._dispatch(runtime, ready[0], [h.delivery for h in held if h.delivery], entry, firings, durable_id)
        for item in held:
            await self._release(item.delivery)
        return [entry]

    async def _dispatch(
        self,
        runtime: _TriggerRuntime,
        events: dict[str, Event],
        deliveries: list[Delivery],
        entry: dict[str, Any],
        firings: list[_Firing | _Forward],
        durable_id: int | None = None,
    ) -> None:
        """Queue a firing (it holds ``deliveries`` until it ran), or hand it to the debounce window."""
        for delivery in deliveries:
            self._hold(delivery)
        debounce = runtime.debounce
        if debounce is None:
            entry["status"] = "firing"
            firings.append(_Firing(runtime, dict(events), list(deliveries), entry, durable_id))
            return
        if durable_id is not None and self._state is not None:
            self._state.finish_firing(durable_id)  # the debounce window owns it now (in memory, like Argo)
        previous = debounce.deliveries
        debounce.events = dict(events)
        debounce.deliveries = list(deliveries)
        if debounce.task is None:
            debounce.coalesced = 0
            debounce.task = asyncio.create_task(self._debounced(runtime), name=f"debounce {runtime.plan.name}")
            self._background.add(debounce.task)
            debounce.task.add_done_callback(self._background.discard)
        else:
            debounce.coalesced += 1
        for delivery in previous:
            await self._release(delivery)
        entry.update({
            "status": "debounced",
            "result": f"coalesced into the firing at the end of the {debounce.window:g}s window",
            "events": sorted(event.id for event in events.values()),
        })  # fmt: skip

    async def _debounced(self, runtime: _TriggerRuntime) -> None:
        debounce = runtime.debounce
        assert debounce is not None
        await asyncio.sleep(debounce.window)
        async with self._lock:
            events, deliveries = debounce.events or {}, debounce.deliveries
            coalesced = debounce.coalesced
            debounce.events, debounce.deliveries, debounce.task = None, [], None
        entry = await self._fire(runtime, events)  # cancelled: the deliveries stay unacknowledged
        entry["result"] = f"{entry['result']} (debounced; {coalesced} earlier firing(s) coalesced)"
        self._trace({"kind": "firing", "triggers": [{"name": runtime.plan.name, **entry}]})
        for delivery in deliveries:
            await self._release(delivery)

    async def _reset_loop(self, runtime: _TriggerRuntime, schedule: ResetSchedule) -> None:
        while True:
            now = datetime.now(UTC)
            tick = next_tick(schedule, now)
            await asyncio.sleep(max(0.0, (tick - now).total_seconds()))
            async with self._lock:
                held = list(runtime.pending.values())
                runtime.pending.clear()
                if self._state is not None:
                    self._state.clear(self.key, runtime.plan.name)
                for item in held:
                    await self._release(item.delivery)
            if held:
                log.info("sensor %s trigger %s: conditions reset at %s; dropped %d held event(s)",
                         self.key, runtime.plan.name, tick.isoformat(), len(held), extra=self._extra)  # fmt: skip
                self._trace({"kind": "reset", "triggers": [{
                    "name": runtime.plan.name, "status": "reset",
                    "result": f"conditionsReset at {tick.isoformat()} dropped {len(held)} held event(s)",
                    "events": sorted(item.event.id for item in held),
                }]})  # fmt: skip

    async def _fire(self, runtime: _TriggerRuntime, events: Mapping[str, Event]) -> dict[str, Any]:
        """Execute one trigger with retries, then the dlqTrigger if it failed. Never raises
        (except cancellation). Returns the trace entry."""
        ok, outcome, reason = await self._execute(runtime.plan.trigger, runtime.action, runtime.retry,
                                                  runtime.limiter, events)  # fmt: skip
        event_ids = sorted(event.id for event in events.values())
        entry: dict[str, Any] = {"status": "fired" if ok else "failed", "result": reason, "events": event_ids}
        if outcome is not None:
            entry["objects"] = list(outcome.objects)
            entry["replayed"] = outcome.replayed
        if not ok and runtime.dlq is not None:
            dlq_ok, dlq_outcome, dlq_reason = await self._execute(
                runtime.dlq, runtime.dlq_action, runtime.dlq_retry, RateLimiter(None), events
            )
            entry["dlq"] = {"name": runtime.dlq.name, "ok": dlq_ok, "result": dlq_reason}
            if dlq_outcome is not None:
                entry["dlq"]["objects"] = list(dlq_outcome.objects)
        return entry

    async def _execute(
        self,
        trigger: Trigger,
        action: TriggerAction | None,
        plan: RetryPlan,
        limiter: RateLimiter,
        events: Mapping[str, Event],
    ) -> tuple[bool, TriggerOutcome | None, str]:
        name = trigger.name
        event_ids = tuple(sorted(event.id for event in events.values()))
        extra = {**self._extra, "triggerName": name}
        if action is None:
            reason = "trigger type not supported; skipped"
            self._record(SensorRecord(self.key, "trigger", name, False, reason, event_ids))
            return False, None, reason
        last_error = ""
        for attempt in range(1, plan.attempts + 1):
            delay = 0.0
            try:
                await limiter.wait()
                with tracing.trigger_span(self.sensor, trigger, events):
                    outcome = await action.execute(make_call(self.sensor, trigger, events))
            except PermanentError as err:
                last_error = str(err)
                log.error("sensor %s trigger %s failed permanently for events %s: %s",
                          self.key, name, ", ".join(event_ids), err, extra=extra)  # fmt: skip
                break
            except TemporaryError as err:
                last_error = str(err)
                delay = max(err.delay, plan.delay(attempt))
            except EventBridgeError as err:
                last_error = str(err)
                delay = plan.delay(attempt)
            except Exception as err:
                last_error = f"{type(err).__name__}: {err}"
                log.exception("sensor %s trigger %s: unexpected error", self.key, name, extra=extra)
                delay = plan.delay(attempt)
            else:
                log.info("sensor %s trigger %s fired by %s: %s",
                         self.key, name, ", ".join(event_ids), outcome.summary, extra=extra)  # fmt: skip
                self._record(SensorRecord(self.key, "trigger", name, True, outcome.summary, event_ids, outcome))
                return True, outcome, outcome.summary
            if attempt < plan.attempts:
                log.warning("sensor %s trigger %s attempt %d/%d failed: %s; retrying in %.2fs",
                            self.key, name, attempt, plan.attempts, last_error, delay, extra=extra)  # fmt: skip
                await asyncio.sleep(delay)
        else:
            log.error("sensor %s trigger %s gave up after %d attempt(s) for events %s: %s",
                      self.key, name, plan.attempts, ", ".join(event_ids), last_error, extra=extra)  # fmt: skip
        self._record(SensorRecord(self.key, "trigger", name, False, last_error, event_ids))
        return False, None, last_error


class SensorManager:
    """Runs a set of Sensors against a bus, creating workflows in a store.

    ``apply`` is idempotent: new sensors start, changed ones restart (same bus group), removed
    ones stop. ``group_prefix`` and ``from_start`` exist for replays and tests: a new group with
    ``from_start=True`` reads every retained event again. ``state_path`` makes the held events of
    ``&&`` conditions durable (SQLite). ``workflow_ops`` serves ``argoWorkflow`` operations other
    than submit. ``trace_log`` keeps the traces (a default one is made). ``concurrency`` bounds the
    events whose firings one sensor runs at once (default :func:`firing_concurrency`). ``objects``
    lets the ``k8s`` trigger manage objects of any kind (cluster mode). ``conditions`` (cluster mode,
    e.g. ``KafkaBus.conditions()``; not with ``state_path``) keeps the held events of ``&&``
    conditions on per-sensor conditions topics, so several replicas can run the same sensors (see the
    module docstring).
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
        state_path: Path | None = None,
        trace_log: TraceLog | None = None,
        workflow_ops: WorkflowOperations | None = None,
        concurrency: int | None = None,
        objects: Objects | None = None,
        conditions: ConditionsBus | None = None,
    ) -> None:
        if conditions is not None and state_path is not None:
            raise ValueError("a SensorManager keeps held events either in state_path or on a conditions bus")
        self._bus = bus
        self._conditions = conditions
        self._services = TriggerServices(store=store, references=references, workflow_ops=workflow_ops, objects=objects)
        self._on_record = on_record
        self._group_prefix = group_prefix
        self._from_start = from_start
        self._state_path = state_path
        self._state: PendingStore | None = None
        self.trace_log = trace_log if trace_log is not None else TraceLog()
        self._runners: dict[str, _SensorRunner] = {}
        self._lock = asyncio.Lock()
        self._concurrency = firing_concurrency() if concurrency is None else concurrency

    @property
    def sensors(self) -> list[str]:
        """``namespace/name`` of the running sensors."""
        return sorted(self._runners)

    def traces(self, namespace: str, sensor: str, limit: int = 100) -> list[dict[str, Any]]:
        """The newest traces of a sensor, newest first (see :mod:`eventbridge.sensor.traces`)."""
        return self.trace_log.traces(namespace, sensor, limit)

    async def apply(self, sensors: Sequence[Sensor]) -> None:
        """Make the running set equal ``sensors`` (start new, restart changed, stop removed)."""
        async with self._lock:
            if self._state is None and self._state_path is not None:
                self._state = PendingStore(self._state_path)
            desired = {f"{sensor.namespace}/{sensor.name}": sensor for sensor in sensors}
            for key in [key for key in self._runners if key not in desired]:
                await self._runners.pop(key).stop()
                if self._state is not None:
                    self._state.clear(key)
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
                    self._state,
                    self.trace_log,
                    self._concurrency,
                    self._conditions,
                )
                await runner.start()
                self._runners[key] = runner

    async def stop(self) -> None:
        """Stop every sensor (unacknowledged events are redelivered at the next start)."""
        async with self._lock:
            for key in list(self._runners):
                await self._runners.pop(key).stop()
            if self._state is not None:
                self._state.close()
                self._state = None

    async def __aenter__(self) -> SensorManager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = [
    "RecordHook",
    "SensorManager",
    "SensorRecord",
    "fingerprint",
    "firing_concurrency",
    "group_name",
    "make_call",
    "next_tick",
    "parameterized_template",
    "previous_tick",
]
