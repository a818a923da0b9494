"""The ``calendar`` event source: fires on a cron ``schedule`` or every ``interval``.

Behaviour (Argo's, differences marked):

* ``schedule`` is a 5-field cron expression (minute hour day-of-month month day-of-week). Like
  Argo, 6 fields (seconds) and descriptors such as ``@daily`` are rejected (lint error, the source
  does not start). ``schedule`` wins over ``interval``.
* ``interval`` is a Go duration (``90s``, ``1h30m``); as in Argo it is cut to whole seconds, at
  least 1 s, and counts from the previous fire (the first one from start-up).
* ``timezone`` (IANA name) is where the cron fields are read, DST included; default UTC.
* ``exclusionDates``: ``EXDATE:20060102T150405Z[,...]`` entries; a fire whose calendar date (in
  ``timezone``) equals one of those dates is skipped, as Argo.
* Event data ``{"eventTime": ..., "metadata": {...}}``: ``eventTime`` is the **scheduled** time in
  RFC 3339 in ``timezone`` (``2024-05-01T02:00:00+02:00``) (*difference*: Argo writes Go's
  ``time.String()``, e.g. ``2024-05-01 02:00:00.000312 +0200 CEST m=+3600.1``, and uses the time the
  timer woke up rather than the scheduled time). ``metadata`` is left out when empty.
* Event id: the scheduled time in UTC (``2024-05-01T00:00:00Z``), so the same fire published twice
  (e.g. around a restart) is stored once by the bus.
* State (a :class:`LastFireStore`), written after every fire when catch-up is enabled:

  - cluster mode (the runtime keeps source state in the cluster): in a ConfigMap of the
    EventSource's namespace, as Argo: ``persistence.configMap.name`` (created when missing if
    ``createIfNotExist``), else ``eventbridge-calendar-<eventsource>`` (created when missing). The
    key is Argo's, ``<eventsource>.<event>``; the value Argo's event payload, ``{"eventTime":
    "2024-05-01 00:00:00 +0000 UTC"}`` (Go's time format, in UTC; plus ``metadata``), so a
    ConfigMap written by Argo resumes here and the other way round. Writes are optimistic (the
    resourceVersion read is sent back; a conflict re-reads), off the event loop. With
    ``persistence.configMap`` the last fire is written even without catch-up, as Argo does.
  - embedded mode (a state directory): ``<state>/<namespace>/<eventsource>/calendar.<event>.json``
    (``persistence.configMap`` is accepted and ignored).
* ``persistence.catchup.enabled``: on start the source resumes after the last published fire and
  publishes every missed fire immediately, oldest first, each with its own scheduled
  ``eventTime``; ``maxDuration`` (Go duration) bounds how far back it goes. Without catch-up it
  starts from now. A fire whose dispatch fails is retried (100 ms, doubling to 5 s) without moving
  on when catch-up is enabled; otherwise it is logged and skipped, as Argo.
* Time comes from an injectable :class:`Clock` (tests use a virtual one). Every calendar event of
  the process that shares a clock is fired by one :class:`_Scheduler` task (a heap of next fires),
  and the fires due at the same instant go to the bus together: 1,000 schedules cost one timer, not
  1,000 sleeping tasks (docs/performance.md, B4).
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import re
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from eventbridge.bus.base import settled
from eventbridge.errors import InvalidError
from eventbridge.events import Event
from eventbridge.models.eventsource import CalendarEventSource, parse_exclusion_dates, parse_go_duration
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, SourceState, validated_spec

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Where the calendar gets time from."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (may return early; the caller re-checks :meth:`now`)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


#: The clock of every calendar that was given none (so that they share one scheduler).
SYSTEM_CLOCK = SystemClock()


def rfc3339(moment: datetime) -> str:
    """``2024-05-01T02:00:00+02:00`` (``Z`` for UTC), microseconds only when present."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def schedule_function(spec: CalendarEventSource, zone: ZoneInfo) -> Callable[[datetime], datetime]:
    """``next(after)``: the first fire strictly after ``after`` (exclusion dates not applied)."""
    if spec.schedule:
        if not croniter.is_valid(spec.schedule) or len(spec.schedule.split()) != 5:
            raise InvalidError(f"schedule {spec.schedule!r} is not a 5-field cron expression")
        expression = spec.schedule

        def next_cron(after: datetime) -> datetime:
            found = croniter(expression, after.astimezone(zone)).get_next(datetime)
            assert isinstance(found, datetime)
            return found

        return next_cron
    seconds = int(parse_go_duration(spec.interval))
    delay = timedelta(seconds=max(seconds, 1))

    def next_interval(after: datetime) -> datetime:
        return (after.astimezone(zone) + delay).replace(microsecond=0)

    return next_interval


class LastFireStore(Protocol):
    """Where one calendar event keeps its last published fire (for catch-up)."""

    async def load(self) -> datetime | None:
        """The last fire recorded, or None."""
        ...

    async def save(self, fire: datetime) -> None:
        """Record ``fire`` as the last one."""
        ...


class FileLastFire:
    """The last fire in a JSON file ``{"lastFire": RFC 3339}`` (embedded mode's state directory)."""

    def __init__(self, path: Path, labels: dict[str, str]) -> None:
        self.path = path
        self._labels = labels

    async def load(self) -> datetime | None:
        return await asyncio.to_thread(self._load)

    async def save(self, fire: datetime) -> None:
        await asyncio.to_thread(self._save, fire)

    def _load(self) -> datetime | None:
        if not self.path.exists():
            return None
        try:
            state = json.loads(self.path.read_text())
            return datetime.fromisoformat(str(state["lastFire"]).replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable calendar state %s: %s", self.path, exc, extra=self._labels)
            return None

    def _save(self, fire: datetime) -> None:
        """Atomic replace, no fsync: a state file that lags after a crash only makes catch-up publish
        fires again, and the bus drops those as duplicates of their ids."""
        temporary = self.path.with_suffix(".tmp")
        try:
            with temporary.open("w") as handle:
                json.dump({"lastFire": rfc3339(fire.astimezone(UTC))}, handle)
            temporary.replace(self.path)
        except OSError as exc:
            log.error("failed to save calendar state %s: %s", self.path, exc, extra=self._labels)


#: Go's ``time.Time.String()``: ``2006-01-02 15:04:05.999999999 -0700 MST`` (``m=...`` cut off first).
_GO_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))? ([+-]\d{4}) \S+$")


def go_time(moment: datetime) -> str:
    """``moment`` as Go's ``time.Time.String()`` in UTC: ``2024-05-01 00:00:00 +0000 UTC``."""
    utc = moment.astimezone(UTC)
    fraction = f".{utc.microsecond:06d}".rstrip("0") if utc.microsecond else ""
    return f"{utc:%Y-%m-%d %H:%M:%S}{fraction} +0000 UTC"


def parse_event_time(text: str) -> datetime:
    """An ``eventTime`` as Argo writes it (Go's time format, a monotonic ``m=`` part allowed) or as
    eventbridge publishes it (RFC 3339). Raises ValueError."""
    found = _GO_TIME.match(text.split(" m=")[0].strip())
    if found is None:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"eventTime {text!r} has no time zone")
        return moment
    day, clock, fraction, offset = found.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    return datetime.strptime(f"{day} {clock}.{micro} {offset}", "%Y-%m-%d %H:%M:%S.%f %z")


class RecordLastFire:
    """The last fire as Argo keeps it: key ``<eventsource>.<event>`` of a ConfigMap, value the event
    payload ``{"eventTime": <Go time>, "metadata": ...}``."""

    def __init__(self, state: SourceState, key: str, metadata: dict[str, str], labels: dict[str, str]) -> None:
        self.state = state
        self.key = key
        self._metadata = metadata
        self._labels = labels

    async def load(self) -> datetime | None:
        text = await self.state.load(self.key)
        if not text:
            return None
        try:
            payload = json.loads(text)
            return parse_event_time(str(payload["eventTime"]))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable calendar state %s: %s", self.key, exc, extra=self._labels)
            return None

    async def save(self, fire: datetime) -> None:
        payload: dict[str, Any] = {"eventTime": go_time(fire)}
        if self._metadata:
            payload["metadata"] = self._metadata
        try:
            await self.state.save(self.key, json.dumps(payload, separators=(",", ":")))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (as Argo: a failed write is logged, the fire stands)
            log.error("failed to save calendar state %s: %s", self.key, exc, extra=self._labels)


def default_config_map(eventsource: str) -> str:
    """The ConfigMap of a calendar's state when ``persistence.configMap`` names none."""
    return f"eventbridge-calendar-{eventsource}"


class CalendarSource:
    """One ``spec.calendar.<event name>`` schedule (fired by the shared :class:`_Scheduler`)."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any, *, clock: Clock | None = None) -> None:
        spec = validated_spec(CalendarEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.zone = ZoneInfo(spec.timezone or "UTC")
        self.labels = context.labels(event_name)
        self._next = schedule_function(spec, self.zone)
        self._excluded: set[date] = set(parse_exclusion_dates(spec.exclusion_dates))
        self.catchup = spec.persistence is not None and spec.persistence.catchup_enabled()
        catchup = spec.persistence.catchup if spec.persistence is not None else None
        self.max_duration = catchup.max_duration if catchup is not None and self.catchup else ""
        self.max_catchup = parse_go_duration(self.max_duration) if self.max_duration else None
        self.state_file: Path | None = None
        self.store: LastFireStore | None = self._store(context, event_name)
        self._scheduler: _Scheduler | None = None
        self._filter: EventFilter | None = None
        self._failing: str | None = None
        self.last_fire: datetime | None = None

    def _store(self, context: SourceContext, event_name: str) -> LastFireStore | None:
        """The cluster's ConfigMap where the runtime offers one, else the state directory's file."""
        config_map = self.spec.persistence.config_map if self.spec.persistence is not None else None
        if self.catchup or (config_map is not None and config_map.name):
            name = config_map.name if config_map is not None and config_map.name else ""
            create = config_map.create_if_not_exist if name and config_map is not None else True
            state = context.config_map_state(name or default_config_map(context.eventsource.name), create=create)
            if state is not None:
                key = f"{context.eventsource.name}.{event_name}"
                return RecordLastFire(state, key, dict(self.spec.metadata or {}), self.labels)
        if not self.catchup:
            return None
        self.state_file = context.state_path(event_name, ".json")
        return FileLastFire(self.state_file, self.labels) if self.state_file is not None else None

    async def start(self) -> None:
        self._filter = EventFilter(self.spec.filter, log, self.labels)
        if self.catchup and self.store is None:
            log.warning("catch-up needs a state directory; missed fires will not be replayed", extra=self.labels)
        last = await self.start_time()
        log.info("calendar starts after %s", rfc3339(last.astimezone(self.zone)), extra=self.labels)
        self._scheduler = _Scheduler.of(self.clock)
        self._scheduler.add(self, self.next_fire(last))

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await scheduler.remove(self)

    def next_fire(self, after: datetime) -> datetime:
        """The next fire after ``after`` that is not on an excluded date."""
        candidate = self._next(after)
        for _ in range(100000):
            if candidate.astimezone(self.zone).date() not in self._excluded:
                return candidate
            candidate = self._next(candidate)
        raise InvalidError("exclusionDates exclude every fire of the schedule")

    async def start_time(self) -> datetime:
        """Where the schedule resumes: the persisted last fire (catch-up), else now."""
        now = self.clock.now()
        if not self.catchup or self.store is None:
            return now
        persisted = await self.store.load()
        if persisted is None:
            return now
        if self.max_catchup is not None and (now - persisted).total_seconds() > self.max_catchup:
            log.info("catch-up limited to maxDuration %s", self.max_duration, extra=self.labels)
            return now - timedelta(seconds=self.max_catchup)
        return persisted

    def _data(self, fire: datetime) -> dict[str, Any] | None:
        """The event data of ``fire``, or None when ``filter.expression`` drops it."""
        data: dict[str, Any] = {"eventTime": rfc3339(fire.astimezone(self.zone))}
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        if self._filter is None or self._filter.accepts(data):
            return data
        return None

    def _failed(self, fire: datetime, exc: Exception) -> None:
        reason = str(exc) or type(exc).__name__
        action = "retrying" if self.catchup else "skipping it"
        if reason != self._failing:  # one line per distinct failure, not one per retry
            log.error("failed to publish the %s fire, %s: %s", rfc3339(fire), action, reason, extra=self.labels)
        self._failing = reason

    def _published(self, fire: datetime) -> None:
        if self._failing is not None:
            log.info("publishing fires again", extra=self.labels)
        self._failing = None
        self.last_fire = fire


class _Scheduler:
    """Fires the calendar events that share a clock from one task.

    A heap holds each running source's next fire. The task sleeps until the earliest, takes every
    fire due by then, publishes them together (one ``Dispatch.many`` per EventSource, which the
    bus commits as one batch), then queues each source's following fire. A failed publish is
    retried (real time, 100 ms doubling to 5 s, without moving on) for sources with catch-up and
    skipped for the others, as each source did on its own before."""

    _by_clock: weakref.WeakKeyDictionary[Clock, _Scheduler] = weakref.WeakKeyDictionary()

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, CalendarSource]] = []
        self._order = itertools.count()
        self._sources: set[CalendarSource] = set()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._firing: set[CalendarSource] = set()
        self._fired = asyncio.Event()

    @classmethod
    def of(cls, clock: Clock) -> _Scheduler:
        """The scheduler of ``clock`` on the running loop."""
        loop = asyncio.get_running_loop()
        scheduler = cls._by_clock.get(clock)
        if scheduler is None or scheduler._loop not in (None, loop):
            scheduler = cls._by_clock[clock] = cls(clock)
        return scheduler

    def add(self, source: CalendarSource, fire: datetime) -> None:
        self._sources.add(source)
        self._push(source, fire)
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="calendar scheduler")

    async def remove(self, source: CalendarSource) -> None:
        """Stop firing ``source``; returns once a publish of it that had begun is over."""
        self._sources.discard(source)
        self._changed.set()
        while source in self._firing:
            self._fired.clear()
            await self._fired.wait()
        if not self._sources and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _push(self, source: CalendarSource, fire: datetime) -> None:
        heapq.heappush(self._heap, (fire, next(self._order), source))
        self._changed.set()

    async def _run(self) -> None:
        while True:
            while self._heap and self._heap[0][2] not in self._sources:
                heapq.heappop(self._heap)  # a stopped source's entry
            if not self._heap:
                self._changed.clear()
                await self._changed.wait()
                continue
            wait = (self._heap[0][0] - self.clock.now()).total_seconds()
            if wait > 0:
                await self._sleep(wait)
                continue
            now = self.clock.now()
            due: list[tuple[CalendarSource, datetime]] = []
            while self._heap and self._heap[0][0] <= now:
                fire, _, source = heapq.heappop(self._heap)
                if source in self._sources:
                    due.append((source, fire))
            try:
                await self._fire(due)
            except Exception:  # a bug must not stop every calendar: log it and go on with the schedules
                log.exception("calendar scheduler: firing %d schedules failed", len(due))
                for source, fire in due:
                    self._schedule_after(source, fire)

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, or until a source is added or removed."""
        self._changed.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (sleeper, changed):
                waiter.cancel()

    async def _fire(self, due: list[tuple[CalendarSource, datetime]]) -> None:
        """Publish the fires of ``due``, then queue each source's next; retry (catch-up) or skip failures."""
        try:
            await self._fire_rounds(due)
        finally:
            self._firing = set()
            self._fired.set()  # a stop waiting for one of these sources may go on

    async def _fire_rounds(self, due: list[tuple[CalendarSource, datetime]]) -> None:
        retry_delay = 0.1
        while due:
            self._firing = {source for source, _ in due}
            groups: dict[tuple[int, str], list[tuple[CalendarSource, datetime, dict[str, Any]]]] = {}
            done: list[tuple[CalendarSource, datetime]] = []
            for source, fire in due:
                data = source._data(fire)
                if data is None:
                    done.append((source, fire))  # dropped by the filter: fired, as far as the schedule goes
                else:
                    # The sources of one EventSource publish alike (same bus, source name, type):
                    # one dispatch sends them all.
                    context = source.context
                    groups.setdefault((id(context.eventsource), context.type_key), []).append((source, fire, data))
            outcomes = await asyncio.gather(*(self._publish(items) for items in groups.values()))
            skipped: list[tuple[CalendarSource, datetime]] = []
            retry: list[tuple[CalendarSource, datetime]] = []
            for items, results in zip(groups.values(), outcomes, strict=True):
                for (source, fire, _), result in zip(items, results, strict=True):
                    if not isinstance(result, Exception):
                        done.append((source, fire))
                        continue
                    source._failed(fire, result)
                    (retry if source.catchup else skipped).append((source, fire))
            for source, fire in done:
                source._published(fire)
            await self._save(done)
            for source, fire in done + skipped:
                self._schedule_after(source, fire)
            due = [(source, fire) for source, fire in retry if source in self._sources]
            self._firing = {source for source, _ in due}
            self._fired.set()  # a stop waiting for a source that is no longer firing may go on
            if due:  # the bus is what failed: back off in real time, not schedule time
                await asyncio.sleep(retry_delay)
                retry_delay = min(retry_delay * 2, 5.0)

    @staticmethod
    async def _save(done: list[tuple[CalendarSource, datetime]]) -> None:
        """Record the last fire of the sources that keep one (off the event loop, concurrently)."""
        saving = [(source, source.store, fire) for source, fire in done if source.store is not None]
        if not saving:
            return
        outcomes = await settled([store.save(fire) for _, store, fire in saving])
        for (source, _, fire), outcome in zip(saving, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.warning("could not record the %s fire: %s", rfc3339(fire), outcome, extra=source.labels)

    @staticmethod
    async def _publish(items: list[tuple[CalendarSource, datetime, dict[str, Any]]]) -> list[Event | Exception]:
        dispatch = items[0][0].context.dispatch
        try:
            return await dispatch.many([(s.event_name, data, rfc3339(fire.astimezone(UTC))) for s, fire, data in items])
        except Exception as exc:  # noqa: BLE001  (the whole call failed: every item did)
            return [exc] * len(items)

    def _schedule_after(self, source: CalendarSource, fire: datetime) -> None:
        if source not in self._sources:
            return
        try:
            following = source.next_fire(fire)
        except InvalidError as exc:
            log.error("the schedule has no further fire: %s", exc, extra=source.labels)
            return
        self._push(source, following)


SOURCE_TYPES.register("calendar")(CalendarSource)

__all__ = [
    "CalendarSource",
    "Clock",
    "FileLastFire",
    "LastFireStore",
    "RecordLastFire",
    "SystemClock",
    "default_config_map",
    "go_time",
    "parse_event_time",
    "rfc3339",
    "schedule_function",
]
