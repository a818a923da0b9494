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
* Time comes from an injectable :class:`Clock` (tests use a virtual one).
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from eventbridge.errors import InvalidError
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
    """One ``spec.calendar.<event name>`` schedule."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any, *, clock: Clock | None = None) -> None:
        spec = validated_spec(CalendarEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.clock: Clock = clock or SystemClock()
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
        self._task: asyncio.Task[None] | None = None
        self._filter: EventFilter | None = None
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
        self._task = asyncio.get_running_loop().create_task(self._run(last), name=f"calendar {self.event_name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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

    async def _run(self, last: datetime) -> None:
        log.info("calendar starts after %s", rfc3339(last.astimezone(self.zone)), extra=self.labels)
        retry_delay = 0.1
        failing: str | None = None
        while True:
            fire = self.next_fire(last)
            while (wait := (fire - self.clock.now()).total_seconds()) > 0:
                await self.clock.sleep(wait)
            try:
                await self._fire(fire)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                reason = str(exc) or type(exc).__name__
                action = "retrying" if self.catchup else "skipping it"
                if reason != failing:
                    log.error("failed to publish the %s fire, %s: %s", rfc3339(fire), action, reason, extra=self.labels)
                failing = reason
                if self.catchup:  # the bus is what failed: back off in real time, not schedule time
                    await asyncio.sleep(retry_delay)
                    retry_delay = min(retry_delay * 2, 5.0)
                    continue
            else:
                if failing is not None:
                    log.info("publishing fires again", extra=self.labels)
                failing = None
            retry_delay = 0.1
            last = fire

    async def _fire(self, fire: datetime) -> None:
        data: dict[str, Any] = {"eventTime": rfc3339(fire.astimezone(self.zone))}
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        if self._filter is None or self._filter.accepts(data):
            await self.context.dispatch(self.event_name, data, event_id=rfc3339(fire.astimezone(UTC)))
        self.last_fire = fire
        if self.store is not None:  # off the event loop (a thread or the API client's pool)
            await self.store.save(fire)


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
