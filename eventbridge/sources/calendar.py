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
* State: with a state directory (the runtime's), the last published fire is kept in
  ``<state>/<namespace>/<eventsource>/calendar.<event>.json`` after every fire (*difference*: no
  ConfigMap; ``persistence.configMap`` is accepted and ignored).
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
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from eventbridge.errors import InvalidError
from eventbridge.models.eventsource import CalendarEventSource, parse_exclusion_dates, parse_go_duration
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources.base import SOURCE_TYPES, SourceContext

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


class CalendarSource:
    """One ``spec.calendar.<event name>`` schedule."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any, *, clock: Clock | None = None) -> None:
        if not isinstance(spec, CalendarEventSource):
            spec = CalendarEventSource.model_validate(spec)
        errors = [f for f in spec.check_spec(f"spec.calendar.{event_name}") if f.severity == "error"]
        if errors:
            raise InvalidError("; ".join(f"{f.path}: {f.message}" for f in errors))
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
        self.state_file: Path | None = context.state_path(event_name, ".json")
        self._task: asyncio.Task[None] | None = None
        self._filter: EventFilter | None = None
        self.last_fire: datetime | None = None

    async def start(self) -> None:
        self._filter = EventFilter(self.spec.filter, log, self.labels)
        if self.catchup and self.state_file is None:
            log.warning("catch-up needs a state directory; missed fires will not be replayed", extra=self.labels)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"calendar {self.event_name}")

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

    def start_time(self) -> datetime:
        """Where the schedule resumes: the persisted last fire (catch-up), else now."""
        now = self.clock.now()
        if not self.catchup:
            return now
        persisted = self._load()
        if persisted is None:
            return now
        if self.max_catchup is not None and (now - persisted).total_seconds() > self.max_catchup:
            log.info("catch-up limited to maxDuration %s", self.max_duration, extra=self.labels)
            return now - timedelta(seconds=self.max_catchup)
        return persisted

    async def _run(self) -> None:
        last = self.start_time()
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
        if self.catchup:  # only catch-up reads it back; the write stays off the event loop
            await asyncio.to_thread(self._save, fire)

    def _load(self) -> datetime | None:
        if self.state_file is None or not self.state_file.exists():
            return None
        try:
            state = json.loads(self.state_file.read_text())
            return datetime.fromisoformat(str(state["lastFire"]).replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable calendar state %s: %s", self.state_file, exc, extra=self.labels)
            return None

    def _save(self, fire: datetime) -> None:
        """Record the last fire (atomic replace, no fsync: a state file that lags after a crash only
        makes catch-up publish fires again, and the bus drops those as duplicates of their ids)."""
        if self.state_file is None:
            return
        temporary = self.state_file.with_suffix(".tmp")
        try:
            with temporary.open("w") as handle:
                json.dump({"lastFire": rfc3339(fire.astimezone(UTC))}, handle)
            temporary.replace(self.state_file)
        except OSError as exc:
            log.error("failed to save calendar state %s: %s", self.state_file, exc, extra=self.labels)


SOURCE_TYPES.register("calendar")(CalendarSource)

__all__ = ["CalendarSource", "Clock", "SystemClock", "rfc3339", "schedule_function"]
