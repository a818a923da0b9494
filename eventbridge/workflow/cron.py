"""The CronWorkflow scheduler: creates Workflows from CronWorkflows in the Store on their schedules.

* Schedules: ``schedules`` (and the legacy ``schedule``), standard 5-field cron, ``@hourly``-style
  descriptors and ``@every <duration>``, evaluated in ``timezone`` (IANA, via zoneinfo; UTC when
  empty). Daylight saving time behaves as Argo documents it: local times the clock skips do not
  run, local times it repeats run twice.
* One heap of next fire times over every schedule of every CronWorkflow; after a fire only that
  schedule's next time is computed, so thousands of schedules cost little.
* At a fire: ``suspend``, a ``Stopped`` phase, ``stopStrategy.expression``, ``when`` (``{{...}}``
  over ``cronworkflow.*`` then govaluate) and ``concurrencyPolicy`` (Allow / Forbid: skip while one
  is active / Replace: terminate the active ones) decide; the workflow is named
  ``<cron>-<unix seconds of the scheduled time>``, so a crash between creating it and writing the
  status cannot create a second one.
* Status (``lastScheduledTime``, ``active``, ``succeeded``, ``failed``, ``phase``, ``conditions``)
  is written on the CronWorkflow. When the scheduler starts, a run missed while it was down is
  started once, only if it is within ``startingDeadlineSeconds`` (Argo's crash recovery).
* When a workflow of a CronWorkflow finishes it leaves ``active``, is counted, and the oldest
  finished workflows beyond ``successfulJobsHistoryLimit`` (3) / ``failedJobsHistoryLimit`` (1)
  are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from eventbridge.errors import (
    AlreadyExistsError,
    ConflictError,
    EventBridgeError,
    ExprError,
    InvalidError,
    NotFoundError,
)
from eventbridge.expr.lang import evaluate, evaluate_bool, format_value, nest
from eventbridge.expr.template import substitute
from eventbridge.expr.when import evaluate_when
from eventbridge.models.workflow import CRON_DESCRIPTORS, schedule_problem
from eventbridge.store.base import Object, Store, WatchEvent
from eventbridge.tasks import cancel_all
from eventbridge.workflow import operations as ops
from eventbridge.workflow.nodes import parse_duration

log = logging.getLogger(__name__)

CRON_KIND = "CronWorkflow"
COMPLETED_LABEL = "workflows.argoproj.io/cron-workflow-completed"
_FINISHED = frozenset({"Succeeded", "Failed", "Error"})
_MAX_SCAN = 5000  # candidate times examined when looking for the next fire time


# --------------------------------------------------------------------------- clock


class Clock(Protocol):
    """Where the scheduler gets the time and how it waits (injectable for tests)."""

    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when told to (``advance``/``set``); sleepers wake when it passes them."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._moved = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        until = self._now + timedelta(seconds=seconds)
        async with self._moved:
            await self._moved.wait_for(lambda: self._now >= until)

    async def set(self, when: datetime) -> None:
        async with self._moved:
            self._now = when
            self._moved.notify_all()

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + timedelta(seconds=seconds))


# --------------------------------------------------------------------------- schedules


def _zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidError(f"unknown timezone {name!r}: use an IANA name such as Europe/Paris") from None


def _instants(local: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants a naive local wall-clock time stands for: none in a DST gap, two in a fold."""
    found: list[datetime] = []
    for fold in (0, 1):
        instant = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == local and instant not in found:
            found.append(instant)
    return sorted(found)


@dataclass(frozen=True)
class Schedule:
    """One cron schedule in one timezone."""

    text: str
    zone: ZoneInfo
    expression: str | None = None  # 5-field cron
    every: float | None = None  # @every <duration>, seconds

    @classmethod
    def parse(cls, text: str, timezone: str | None = None, *, default_timezone: str = "UTC") -> Schedule:
        """InvalidError for a schedule robfig/cron's standard parser would reject."""
        zone = _zone(timezone, default_timezone)
        raw = text.strip()
        if raw.startswith("CRON_TZ=") or raw.startswith("TZ="):
            prefix, _, raw = raw.partition(" ")
            zone = _zone(prefix.split("=", 1)[1], default_timezone)
            raw = raw.strip()
        problem = schedule_problem(raw)
        if problem:
            raise InvalidError(problem.replace(repr(raw), repr(text)))
        if raw.startswith("@every"):
            seconds = parse_duration(raw[len("@every") :].strip())
            if not seconds or seconds <= 0:
                raise InvalidError(f"invalid schedule {text!r}: @every needs a positive duration such as 1h30m")
            return cls(text, zone, every=seconds)
        return cls(text, zone, expression=CRON_DESCRIPTORS.get(raw, raw))

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; None if there is none."""
        after = after.astimezone(UTC)
        if self.every is not None:
            return after + timedelta(seconds=self.every)
        assert self.expression is not None
        local = after.astimezone(self.zone).replace(tzinfo=None)
        # Start a little earlier so a repeated (DST fold) local time after ``after`` is not missed.
        candidates = croniter(self.expression, local - timedelta(hours=3))
        best: datetime | None = None
        best_local: datetime | None = None
        for _ in range(_MAX_SCAN):
            candidate: datetime = candidates.get_next(datetime)
            if best_local is not None and candidate > best_local + timedelta(hours=3):
                break
            for instant in _instants(candidate, self.zone):
                if instant > after and (best is None or instant < best):
                    best, best_local = instant, candidate
        return best

    def last_between(self, after: datetime, until: datetime) -> datetime | None:
        """The latest fire time in (after, until], or None."""
        found: datetime | None = None
        current = self.next_after(after)
        steps = 0
        while current is not None and current <= until and steps < 100_000:
            found = current
            current = self.next_after(current)
            steps += 1
        return found


def next_schedule_time(
    cron: Object, after: datetime | None = None, *, default_timezone: str = "UTC"
) -> datetime | None:
    """When a CronWorkflow object fires next after ``after`` (now by default); for ``cron get``."""
    spec = cron.get("spec") or {}
    moment = after or datetime.now(UTC)
    times = [
        Schedule.parse(text, spec.get("timezone"), default_timezone=default_timezone).next_after(moment)
        for text in _schedule_texts(spec)
    ]
    valid = [t for t in times if t is not None]
    return min(valid) if valid else None


def _schedule_texts(spec: Mapping[str, Any]) -> list[str]:
    texts = [spec["schedule"]] if spec.get("schedule") else []
    return texts + [s for s in spec.get("schedules") or [] if s]


# --------------------------------------------------------------------------- scheduler state


def _key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name", "")))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fingerprint(obj: Object) -> str:
    return json.dumps(obj.get("spec") or {}, sort_keys=True)


@dataclass
class _Cron:
    obj: Object
    schedules: list[Schedule]
    fingerprint: str
    generation: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CronScheduler:
    """Schedules the CronWorkflows of ``store``. ``await start()`` / ``await stop()`` or ``async with``."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        default_timezone: str = "UTC",
        resync_seconds: float = 60.0,
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.default_timezone = default_timezone
        self.resync_seconds = resync_seconds
        self._crons: dict[tuple[str, str], _Cron] = {}
        self._heap: list[tuple[datetime, int, tuple[str, str], int, int]] = []
        self._seq = itertools.count()
        self._generations = itertools.count(1)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watches: list[AsyncIterator[WatchEvent]] = []
        self.created: list[str] = []  # names of the workflows created here, oldest first (bounded)

    async def __aenter__(self) -> CronScheduler:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load every CronWorkflow, run missed schedules within their deadline, then keep scheduling."""
        cron_watch = self.store.watch(CRON_KIND)
        wf_watch = self.store.watch(ops.WORKFLOW_KIND)
        self._watches = [cron_watch, wf_watch]
        for obj in await self.store.list(CRON_KIND):
            self._register(obj)
        await self._reconcile_workflows()
        for key in list(self._crons):
            await self._catch_up(key)
        self._tasks = [
            asyncio.create_task(self._cron_events(cron_watch)),
            asyncio.create_task(self._workflow_events(wf_watch)),
            asyncio.create_task(self._timer()),
        ]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()
        for stream in self._watches:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        self._watches.clear()

    def next_fire(self, namespace: str, name: str) -> datetime | None:
        """The next time the CronWorkflow is due (from the heap), or None if unknown."""
        state = self._crons.get((namespace, name))
        if state is None:
            return None
        times = [t for t, _s, key, _i, gen in self._heap if key == (namespace, name) and gen == state.generation]
        return min(times) if times else None

    # ------------------------------------------------------------------ registration

    def _register(self, obj: Object) -> None:
        """(Re)load a CronWorkflow: parse its schedules and push their next fire times."""
        key = _key(obj)
        state = self._crons.get(key)
        fingerprint = _fingerprint(obj)
        if state is not None and state.fingerprint == fingerprint:
            state.obj = obj  # only status/metadata changed: keep the pending fire times
            return
        spec = obj.get("spec") or {}
        schedules: list[Schedule] = []
        try:
            for text in _schedule_texts(spec):
                schedules.append(Schedule.parse(text, spec.get("timezone"), default_timezone=self.default_timezone))
        except InvalidError as exc:
            log.error("CronWorkflow %s/%s: %s", key[0], key[1], exc)
            schedules = []
        generation = next(self._generations)
        if state is None:
            state = _Cron(obj, schedules, fingerprint, generation)
            self._crons[key] = state
        else:
            state.obj, state.schedules, state.fingerprint, state.generation = (
                obj,
                schedules,
                fingerprint,
                generation,
            )
        now = self.clock.now()
        for index, schedule in enumerate(schedules):
            self._push(key, index, generation, schedule.next_after(now))
        self._wake.set()

    def _push(self, key: tuple[str, str], index: int, generation: int, when: datetime | None) -> None:
        if when is not None:
            heapq.heappush(self._heap, (when, next(self._seq), key, index, generation))

    def _forget(self, key: tuple[str, str]) -> None:
        self._crons.pop(key, None)  # its heap entries are dropped when they come up

    # ------------------------------------------------------------------ firing

    async def run_due(self) -> list[str]:
        """Fire every schedule due at the clock's current time; the names of the workflows created."""
        created: list[str] = []
        now = self.clock.now()
        due: dict[tuple[tuple[str, str], datetime], None] = {}
        while self._heap and self._heap[0][0] <= now:
            when, _seq, key, index, generation = heapq.heappop(self._heap)
            state = self._crons.get(key)
            if state is None or state.generation != generation or index >= len(state.schedules):
                continue
            self._push(key, index, generation, state.schedules[index].next_after(when))
            due[(key, when)] = None  # two schedules firing at the same moment make one workflow
        for key, when in due:
            try:
                name = await self._fire(key, when)
            except Exception:  # one broken CronWorkflow must not stop the others
                log.exception("CronWorkflow %s/%s: scheduling failed", *key)
                continue
            if name:
                created.append(name)
        return created

    async def _timer(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("cron scheduler: firing failed")
            now = self.clock.now()
            delay = self.resync_seconds
            if self._heap:
                delay = min(delay, max((self._heap[0][0] - now).total_seconds(), 0.0))
            self._wake.clear()
            sleeper = asyncio.create_task(self.clock.sleep(delay))
            woken = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_all([sleeper, woken])

    async def _catch_up(self, key: tuple[str, str]) -> None:
        """Start the latest run missed while no scheduler ran, if it is within startingDeadlineSeconds."""
        state = self._crons.get(key)
        if state is None:
            return
        spec = state.obj.get("spec") or {}
        deadline = spec.get("startingDeadlineSeconds")
        last = _parse_time((state.obj.get("status") or {}).get("lastScheduledTime"))
        if last is None or deadline is None:
            return
        now = self.clock.now()
        window_start = max(last, now - timedelta(seconds=float(deadline)) - timedelta(seconds=1))
        missed = [s.last_between(window_start, now) for s in state.schedules]
        candidates = [m for m in missed if m is not None and m > last and now < m + timedelta(seconds=float(deadline))]
        if candidates:
            when = max(candidates)
            log.info("CronWorkflow %s/%s: starting the run missed at %s", key[0], key[1], _rfc3339(when))
            await self._fire(key, when)

    async def _fire(self, key: tuple[str, str], when: datetime) -> str | None:
        """Apply the run policy and create the workflow scheduled at ``when``; its name or None."""
        state = self._crons.get(key)
        if state is None:
            return None
        async with state.lock:
            cron = await self._fresh(key)
            if cron is None:
                return None
            spec = cron.get("spec") or {}
            status = cron.get("status") or {}
            if spec.get("suspend"):
                log.info("CronWorkflow %s/%s is suspended: skipping %s", key[0], key[1], _rfc3339(when))
                return None
            if status.get("phase") == "Stopped":
                return None
            try:
                if self._should_stop(cron):
                    await self._update_status(key, lambda c: self._mark_stopped(c))
                    return None
                if not self._when(cron):
                    log.info("CronWorkflow %s/%s: 'when' is false, skipping %s", key[0], key[1], _rfc3339(when))
                    return None
            except ExprError as exc:
                await self._report(key, "SpecError", str(exc))
                return None
            active = await self._prune_active(key, cron)
            policy = spec.get("concurrencyPolicy") or "Allow"
            if active and policy == "Forbid":
                log.info("CronWorkflow %s/%s: Forbid and a workflow is active: skipping", *key)
                return None
            if active and policy == "Replace":
                for ref in active:
                    with contextlib.suppress(NotFoundError, InvalidError):
                        await ops.terminate(self.store, key[0], str(ref.get("name")))
            name = f"{key[1]}-{int(when.timestamp())}"
            workflow = ops.workflow_from_cron(cron, name=name, scheduled_time=when)
            try:
                created = await self.store.create(workflow)
            except AlreadyExistsError:
                created = await self.store.get(ops.WORKFLOW_KIND, key[0], name)
            except EventBridgeError as exc:
                await self._report(key, "SubmissionError", f"Failed to submit Workflow: {exc}", count=True)
                return None
            ref = _reference(created)

            def record(obj: Object) -> None:
                st = obj.setdefault("status", {})
                refs = [r for r in st.get("active") or [] if r.get("name") != ref["name"]]
                if (created.get("status") or {}).get("phase") not in _FINISHED:
                    refs.append(ref)
                st["active"] = refs
                previous = _parse_time(st.get("lastScheduledTime"))
                if previous is None or when > previous:
                    st["lastScheduledTime"] = _rfc3339(when)
                st["phase"] = "Active"
                st["conditions"] = [c for c in st.get("conditions") or [] if c.get("type") != "SubmissionError"]

            await self._update_status(key, record)
            self.created.append(name)
            del self.created[:-1000]
            return name

    # ------------------------------------------------------------------ policy pieces

    def _cron_env(self, cron: Object) -> dict[str, Any]:
        meta = cron.get("metadata") or {}
        status = cron.get("status") or {}
        return {
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace") or "default",
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
            "failed": int(status.get("failed") or 0),
            "succeeded": int(status.get("succeeded") or 0),
            "lastScheduledTime": _parse_time(status.get("lastScheduledTime")),
        }

    def _should_stop(self, cron: Object) -> bool:
        expression = ((cron.get("spec") or {}).get("stopStrategy") or {}).get("expression")
        if not expression:
            return False
        return evaluate_bool(expression, {"cronworkflow": self._cron_env(cron)}, now=self.clock.now)

    def _when(self, cron: Object) -> bool:
        """``when``: ``{{cronworkflow.*}}`` and ``{{=...}}`` substituted, then evaluated as govaluate."""
        text = (cron.get("spec") or {}).get("when")
        if not text:
            return True
        env = self._cron_env(cron)
        flat = {f"cronworkflow.{k}": v for k, v in env.items() if not isinstance(v, dict)}
        scope: dict[str, str] = {}
        for name, value in flat.items():
            scope[name] = (
                "" if value is None else (_rfc3339(value) if isinstance(value, datetime) else format_value(value))
            )
        scope["cronworkflow.labels.json"] = json.dumps(env["labels"], separators=(",", ":"))
        scope["cronworkflow.annotations.json"] = json.dumps(env["annotations"], separators=(",", ":"))
        for label, value in env["labels"].items():
            scope[f"cronworkflow.labels.{label}"] = str(value)
        for annotation, value in env["annotations"].items():
            scope[f"cronworkflow.annotations.{annotation}"] = str(value)
        nested = {**nest(scope), "cronworkflow": env}

        def expression(text: str, _scope: Mapping[str, str]) -> str:
            return format_value(evaluate(text, nested, now=self.clock.now))

        return evaluate_when(substitute(text, scope, strict_prefixes=("cronworkflow.",), expression=expression))

    @staticmethod
    def _mark_stopped(cron: Object) -> None:
        cron.setdefault("status", {})["phase"] = "Stopped"
        labels = cron.setdefault("metadata", {}).setdefault("labels", {})
        labels[COMPLETED_LABEL] = "true"

    async def _prune_active(self, key: tuple[str, str], cron: Object) -> list[dict[str, Any]]:
        """The active references that still run; finished or deleted ones are settled first."""
        refs = list((cron.get("status") or {}).get("active") or [])
        still: list[dict[str, Any]] = []
        for ref in refs:
            try:
                workflow = await self.store.get(ops.WORKFLOW_KIND, key[0], str(ref.get("name")))
            except NotFoundError:
                await self._settle(key, str(ref.get("name")), None)
                continue
            phase = (workflow.get("status") or {}).get("phase")
            if phase in _FINISHED:
                await self._settle(key, str(ref.get("name")), phase)
            else:
                still.append(ref)
        return still

    async def _report(self, key: tuple[str, str], kind: str, message: str, *, count: bool = False) -> None:
        log.error("CronWorkflow %s/%s: %s", key[0], key[1], message)

        def change(cron: Object) -> None:
            status = cron.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
            conditions.append({"type": kind, "status": "True", "message": message})
            status["conditions"] = conditions
            if count:
                status["failed"] = int(status.get("failed") or 0) + 1

        await self._update_status(key, change)

    # ------------------------------------------------------------------ workflows finishing

    async def _settle(self, key: tuple[str, str], name: str, phase: str | None) -> None:
        """``name`` finished (phase) or vanished (None): leave ``active``, count it once, apply limits."""

        def change(cron: Object) -> None:
            status = cron.setdefault("status", {})
            refs = status.get("active") or []
            kept = [r for r in refs if r.get("name") != name]
            if len(kept) == len(refs):
                return
            status["active"] = kept
            if phase is not None:
                counter = "succeeded" if phase == "Succeeded" else "failed"
                status[counter] = int(status.get(counter) or 0) + 1
                try:
                    if self._should_stop(cron):
                        self._mark_stopped(cron)
                except ExprError as exc:
                    log.error("CronWorkflow %s/%s: stopStrategy: %s", key[0], key[1], exc)

        await self._update_status(key, change)
        if phase is not None:
            await self._enforce_history(key)

    async def _enforce_history(self, key: tuple[str, str]) -> None:
        state = self._crons.get(key)
        if state is None:
            return
        spec = state.obj.get("spec") or {}
        workflows = await self.store.list(ops.WORKFLOW_KIND, key[0], {ops.LABEL_CRON_WORKFLOW: key[1]})
        finished = [w for w in workflows if (w.get("status") or {}).get("phase") in _FINISHED]
        for succeeded, limit_key, default in (
            (True, "successfulJobsHistoryLimit", 3),
            (False, "failedJobsHistoryLimit", 1),
        ):
            limit = spec.get(limit_key)
            keep = default if limit is None or int(limit) < 0 else int(limit)
            group = [w for w in finished if ((w.get("status") or {}).get("phase") == "Succeeded") == succeeded]
            group.sort(key=lambda w: str((w.get("status") or {}).get("finishedAt") or ""), reverse=True)
            for old in group[keep:]:
                with contextlib.suppress(NotFoundError):
                    await self.store.delete(ops.WORKFLOW_KIND, key[0], _key(old)[1])
                    log.info("CronWorkflow %s/%s: deleted %s (history limit)", key[0], key[1], _key(old)[1])

    async def _reconcile_workflows(self) -> None:
        """At start: settle workflows that finished while no scheduler ran; adopt unfinished ones."""
        by_cron: dict[tuple[str, str], list[Object]] = {}
        for workflow in await self.store.list(ops.WORKFLOW_KIND):
            cron_name = ((workflow.get("metadata") or {}).get("labels") or {}).get(ops.LABEL_CRON_WORKFLOW)
            if cron_name:
                by_cron.setdefault((_key(workflow)[0], cron_name), []).append(workflow)
        for key, state in list(self._crons.items()):
            workflows = by_cron.get(key, [])
            names = {_key(w)[1]: w for w in workflows}
            refs = {str(r.get("name")) for r in (state.obj.get("status") or {}).get("active") or []}
            for name in refs:
                found = names.get(name)
                phase = (found.get("status") or {}).get("phase") if found else None
                if found is None or phase in _FINISHED:
                    await self._settle(key, name, phase)
            adopt = [
                w for w in workflows if (w.get("status") or {}).get("phase") not in _FINISHED and _key(w)[1] not in refs
            ]
            if adopt:

                def change(cron: Object, adopt: list[Object] = adopt) -> None:
                    status = cron.setdefault("status", {})
                    known = {r.get("name") for r in status.get("active") or []}
                    status["active"] = list(status.get("active") or []) + [
                        _reference(w) for w in adopt if _key(w)[1] not in known
                    ]
                    latest = _parse_time(status.get("lastScheduledTime"))
                    for w in adopt:
                        scheduled = _parse_time(
                            ((w.get("metadata") or {}).get("annotations") or {}).get(ops.ANNOTATION_SCHEDULED_TIME)
                        )
                        if scheduled is not None and (latest is None or scheduled > latest):
                            latest = scheduled
                    if latest is not None:
                        status["lastScheduledTime"] = _rfc3339(latest)

                await self._update_status(key, change)

    # ------------------------------------------------------------------ store plumbing

    async def _fresh(self, key: tuple[str, str]) -> Object | None:
        try:
            obj = await self.store.get(CRON_KIND, *key)
        except NotFoundError:
            self._forget(key)
            return None
        state = self._crons.get(key)
        if state is not None:
            state.obj = obj
        return obj

    async def _update_status(self, key: tuple[str, str], change: Callable[[Object], None]) -> None:
        """Read-modify-write the CronWorkflow (status and labels only); retried on conflicts."""
        for _attempt in range(20):
            try:
                obj = await self.store.get(CRON_KIND, *key)
            except NotFoundError:
                self._forget(key)
                return
            before = json.dumps(obj, sort_keys=True)
            change(obj)
            if json.dumps(obj, sort_keys=True) == before:
                return
            try:
                updated = await self.store.update(obj)
            except ConflictError:
                continue
            except NotFoundError:
                self._forget(key)
                return
            state = self._crons.get(key)
            if state is not None:
                state.obj = updated
            return
        raise EventBridgeError(f"CronWorkflow {key[0]}/{key[1]}: too many write conflicts")

    async def _cron_events(self, stream: AsyncIterator[WatchEvent]) -> None:
        async for event in stream:
            try:
                key = _key(event.object)
                if event.type == "DELETED":
                    self._forget(key)
                else:
                    self._register(event.object)
            except Exception:
                log.exception("cron scheduler: could not handle a CronWorkflow %s event", event.type)

    async def _workflow_events(self, stream: AsyncIterator[WatchEvent]) -> None:
        async for event in stream:
            try:
                obj = event.object
                cron_name = ((obj.get("metadata") or {}).get("labels") or {}).get(ops.LABEL_CRON_WORKFLOW)
                if not cron_name:
                    continue
                namespace, name = _key(obj)
                key = (namespace, cron_name)
                state = self._crons.get(key)
                if state is None:
                    continue
                refs = {r.get("name") for r in (state.obj.get("status") or {}).get("active") or []}
                if name not in refs:
                    continue
                phase = (obj.get("status") or {}).get("phase")
                if event.type == "DELETED":
                    async with state.lock:
                        await self._settle(key, name, None)
                elif phase in _FINISHED:
                    async with state.lock:
                        await self._settle(key, name, phase)
            except Exception:
                log.exception("cron scheduler: could not handle a Workflow %s event", event.type)


def _reference(workflow: Object) -> dict[str, Any]:
    meta = workflow.get("metadata") or {}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": ops.WORKFLOW_KIND,
        "name": meta.get("name"),
        "namespace": meta.get("namespace") or "default",
        "uid": meta.get("uid"),
    }
