"""The CronWorkflow scheduler with a manual clock and the real SqliteStore."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from workflow_helpers import Obj, phase, sh, wait_for

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.executors.host import HostExecutor
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.cron import CronScheduler, ManualClock, Schedule, next_schedule_time
from eventbridge.workflow.operations import ANNOTATION_SCHEDULED_TIME, LABEL_CRON_WORKFLOW, workflow_from_cron

LA = ZoneInfo("America/Los_Angeles")
START = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


def cron(name: str = "tick", schedules: list[str] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "schedules": schedules or ["* * * * *"],
            "workflowSpec": {"entrypoint": "main", "templates": [sh("main", "echo tick")]},
            **spec,
        },
    }


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def scheduler(store: SqliteStore, clock: ManualClock) -> AsyncIterator[CronScheduler]:
    s = CronScheduler(store, clock=clock)
    yield s
    await s.stop()


async def workflows(store: SqliteStore, cron_name: str = "tick") -> list[Obj]:
    found = await store.list("Workflow", "default", {LABEL_CRON_WORKFLOW: cron_name})
    return sorted(found, key=lambda w: w["metadata"]["name"])


async def wait_workflows(store: SqliteStore, count: int, cron_name: str = "tick") -> list[Obj]:
    for _ in range(300):
        found = await workflows(store, cron_name)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} workflows, found {len(await workflows(store, cron_name))}")


async def finish(store: SqliteStore, name: str, result: str, finished_at: str = "2024-05-01T12:00:00Z") -> None:
    """Finish a workflow as the controller would (status written to the store)."""
    obj = await store.get("Workflow", "default", name)
    obj["status"] = {"phase": result, "finishedAt": finished_at}
    await store.update(obj)


async def settle() -> None:
    await asyncio.sleep(0.1)


# ------------------------------------------------------------------ schedules


def local_times(schedule: str, after: datetime, count: int) -> list[str]:
    parsed = Schedule.parse(schedule, "America/Los_Angeles")
    out = []
    current = after
    for _ in range(count):
        nxt = parsed.next_after(current)
        assert nxt is not None
        out.append(nxt.astimezone(LA).strftime("%m-%d %H:%M %Z"))
        current = nxt
    return out


def test_dst_spring_forward_skips_the_missing_hour() -> None:
    after = datetime(2020, 3, 8, 0, 0, tzinfo=LA)
    assert local_times("59 1 * * *", after, 3) == ["03-08 01:59 PST", "03-09 01:59 PDT", "03-10 01:59 PDT"]
    assert local_times("0 2 * * *", after, 2) == ["03-09 02:00 PDT", "03-10 02:00 PDT"]
    assert local_times("1 2 * * *", after, 1) == ["03-09 02:01 PDT"]


def test_dst_fall_back_runs_the_repeated_hour_twice() -> None:
    after = datetime(2020, 11, 1, 0, 0, tzinfo=LA)
    assert local_times("59 1 * * *", after, 3) == ["11-01 01:59 PDT", "11-01 01:59 PST", "11-02 01:59 PST"]
    assert local_times("0 2 * * *", after, 2) == ["11-01 02:00 PST", "11-02 02:00 PST"]
    assert local_times("*/30 1 * * *", after, 4) == [
        "11-01 01:00 PDT",
        "11-01 01:30 PDT",
        "11-01 01:00 PST",
        "11-01 01:30 PST",
    ]


def test_schedule_forms_and_errors() -> None:
    at = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert Schedule.parse("@hourly").next_after(at) == at + timedelta(hours=1)
    assert Schedule.parse("@every 90s").next_after(at) == at + timedelta(seconds=90)
    assert Schedule.parse("CRON_TZ=Asia/Tokyo 0 9 * * *").next_after(at) == datetime(
        2024, 1, 1, 0, 0, tzinfo=UTC
    ) + timedelta(days=1)
    for bad in ("* * * *", "* * * * * *", "61 * * * *", "@every soon"):
        with pytest.raises(InvalidError, match="invalid schedule"):
            Schedule.parse(bad)
    with pytest.raises(InvalidError, match="unknown timezone"):
        Schedule.parse("* * * * *", "Mars/Olympus")
    assert next_schedule_time(cron(schedules=["0 3 * * *", "0 2 * * *"]), at) == at + timedelta(hours=2)


# ------------------------------------------------------------------ firing


async def test_fires_with_deterministic_names_and_records_status(
    store: SqliteStore, clock: ManualClock, scheduler: CronScheduler
) -> None:
    await store.create(cron(schedules=["* * * * *", "*/2 * * * *"], workflowMetadata={"labels": {"team": "a"}}))
    await scheduler.start()
    assert scheduler.next_fire("default", "tick") == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    await clock.advance(30)
    (first,) = await wait_workflows(store, 1)
    due = datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert first["metadata"]["name"] == f"tick-{unix(due)}"
    assert first["metadata"]["labels"] == {"team": "a", LABEL_CRON_WORKFLOW: "tick"}
    assert first["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME] == "2024-05-01T12:01:00Z"
    await clock.advance(60)  # 12:02 is due for both schedules: still one workflow
    found = await wait_workflows(store, 2)
    await settle()
    assert len(await workflows(store)) == 2
    stored = await store.get("CronWorkflow", "default", "tick")
    assert stored["status"]["lastScheduledTime"] == "2024-05-01T12:02:00Z"
    assert [r["name"] for r in stored["status"]["active"]] == [w["metadata"]["name"] for w in found]
    assert stored["status"]["phase"] == "Active"


async def test_forbid_skips_while_active_and_replace_terminates(
    store: SqliteStore, clock: ManualClock, scheduler: CronScheduler
) -> None:
    await store.create(cron("forbid", concurrencyPolicy="Forbid"))
    await store.create(cron("replace", concurrencyPolicy="Replace"))
    await scheduler.start()
    await clock.advance(30)
    (forbid_first,) = await wait_workflows(store, 1, "forbid")
    (replace_first,) = await wait_workflows(store, 1, "replace")
    await clock.advance(60)
    await wait_workflows(store, 2, "replace")
    await settle()
    assert len(await workflows(store, "forbid")) == 1
    old = await store.get("Workflow", "default", replace_first["metadata"]["name"])
    assert old["spec"]["shutdown"] == "Terminate"
    await finish(store, forbid_first["metadata"]["name"], "Succeeded")
    await settle()
    forbid = await store.get("CronWorkflow", "default", "forbid")
    assert forbid["status"]["active"] == [] and forbid["status"]["succeeded"] == 1
    await clock.advance(60)
    await wait_workflows(store, 2, "forbid")


async def test_suspend_when_and_stop_strategy(store: SqliteStore, clock: ManualClock, scheduler: CronScheduler) -> None:
    await store.create(cron("suspended", suspend=True))
    await store.create(cron("never", when="{{cronworkflow.name}} == other"))
    await store.create(
        cron(
            "hourly-at-most",
            when="{{= cronworkflow.lastScheduledTime == nil"
            " || (now() - cronworkflow.lastScheduledTime).Seconds() > 90 }}",
        )
    )
    await store.create(cron("once", stopStrategy={"expression": "cronworkflow.succeeded >= 1"}))
    await scheduler.start()
    for minute in range(1, 4):  # 12:01, 12:02, 12:03
        await clock.advance(60)
        await wait_workflows(store, minute, "once")
    await settle()
    assert await workflows(store, "suspended") == []
    assert await workflows(store, "never") == []
    limited = await workflows(store, "hourly-at-most")
    assert [w["metadata"]["name"] for w in limited] == [
        f"hourly-at-most-{unix(datetime(2024, 5, 1, 12, m, tzinfo=UTC))}" for m in (1, 3)
    ]
    once = await workflows(store, "once")
    assert len(once) == 3
    await finish(store, once[0]["metadata"]["name"], "Succeeded")
    await settle()
    stopped = await store.get("CronWorkflow", "default", "once")
    assert stopped["status"]["phase"] == "Stopped"
    assert stopped["metadata"]["labels"]["workflows.argoproj.io/cron-workflow-completed"] == "true"
    await clock.advance(60)
    await settle()
    assert len(await workflows(store, "once")) == 3


async def test_history_limits_delete_the_oldest_finished(
    store: SqliteStore, clock: ManualClock, scheduler: CronScheduler
) -> None:
    await store.create(cron(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0))
    await scheduler.start()
    for minute in range(1, 5):
        await clock.advance(60 if minute > 1 else 30)
        await wait_workflows(store, minute)
    names = [w["metadata"]["name"] for w in await workflows(store)]
    await finish(store, names[0], "Succeeded", "2024-05-01T12:01:10Z")
    await finish(store, names[1], "Succeeded", "2024-05-01T12:02:10Z")
    await finish(store, names[2], "Failed", "2024-05-01T12:03:10Z")
    await settle()
    left = [w["metadata"]["name"] for w in await workflows(store)]
    assert left == [names[1], names[3]]
    status = (await store.get("CronWorkflow", "default", "tick"))["status"]
    assert (status["succeeded"], status["failed"]) == (2, 1)
    assert [r["name"] for r in status["active"]] == [names[3]]


async def test_restart_runs_a_missed_schedule_only_within_the_deadline(store: SqliteStore) -> None:
    clock = ManualClock(START)
    await store.create(cron("late", startingDeadlineSeconds=30))
    await store.create(cron("strict"))
    first = CronScheduler(store, clock=clock)
    await first.start()
    await clock.advance(30)  # 12:01 fires for both
    await wait_workflows(store, 1, "late")
    await wait_workflows(store, 1, "strict")
    await first.stop()
    # Down from 12:01:00 to 12:03:10: 12:02 and 12:03 were missed; 12:03 is within 30 s.
    await clock.set(datetime(2024, 5, 1, 12, 3, 10, tzinfo=UTC))
    second = CronScheduler(store, clock=clock)
    await second.start()
    late = [w["metadata"]["name"] for w in await workflows(store, "late")]
    assert late == [f"late-{unix(datetime(2024, 5, 1, 12, m, tzinfo=UTC))}" for m in (1, 3)]
    assert len(await workflows(store, "strict")) == 1
    await second.stop()
    # A restart right away repeats nothing.
    third = CronScheduler(store, clock=clock)
    await third.start()
    await settle()
    assert len(await workflows(store, "late")) == 2
    await third.stop()


async def test_crash_between_create_and_status_write_creates_no_duplicate(store: SqliteStore) -> None:
    clock = ManualClock(datetime(2024, 5, 1, 12, 1, 5, tzinfo=UTC))
    created = await store.create(
        cron("c", startingDeadlineSeconds=60) | {"status": {"lastScheduledTime": "2024-05-01T12:00:00Z"}}
    )
    assert created["status"]["lastScheduledTime"]
    # The workflow of 12:01 was created, then the process died before the status write.
    due = datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    await store.create(workflow_from_cron(created, name=f"c-{unix(due)}", scheduled_time=due))
    scheduler = CronScheduler(store, clock=clock)
    await scheduler.start()
    await settle()
    assert [w["metadata"]["name"] for w in await workflows(store, "c")] == [f"c-{unix(due)}"]
    status = (await store.get("CronWorkflow", "default", "c"))["status"]
    assert status["lastScheduledTime"] == "2024-05-01T12:01:00Z"
    assert [r["name"] for r in status["active"]] == [f"c-{unix(due)}"]
    await scheduler.stop()


async def test_schedule_change_and_delete_are_followed(
    store: SqliteStore, clock: ManualClock, scheduler: CronScheduler
) -> None:
    await store.create(cron(schedules=["0 * * * *"]))
    await scheduler.start()
    assert scheduler.next_fire("default", "tick") == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
    obj = await store.get("CronWorkflow", "default", "tick")
    obj["spec"]["schedules"] = ["*/5 * * * *"]
    await store.update(obj)
    for _ in range(100):
        if scheduler.next_fire("default", "tick") == datetime(2024, 5, 1, 12, 5, tzinfo=UTC):
            break
        await asyncio.sleep(0.01)
    assert scheduler.next_fire("default", "tick") == datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    await store.delete("CronWorkflow", "default", "tick")
    await settle()
    assert scheduler.next_fire("default", "tick") is None
    await clock.advance(600)
    await settle()
    assert await workflows(store) == []
    with pytest.raises(NotFoundError):
        await store.get("CronWorkflow", "default", "tick")


async def test_scheduled_workflow_runs_and_is_counted(store: SqliteStore, clock: ManualClock, tmp_path: Path) -> None:
    controller = Controller(store, HostExecutor(tmp_path / "steps"), write_interval=0.05)
    await controller.start()
    scheduler = CronScheduler(store, clock=clock)
    try:
        await store.create(cron())
        await scheduler.start()
        await clock.advance(30)
        (workflow,) = await wait_workflows(store, 1)
        done = await wait_for(store, workflow["metadata"]["name"], lambda o: phase(o) == "Succeeded")
        assert done["status"]["phase"] == "Succeeded"
        counted = await wait_for(
            store, "tick", lambda o: (o.get("status") or {}).get("succeeded") == 1, kind="CronWorkflow"
        )
        assert counted["status"]["active"] == []
    finally:
        await scheduler.stop()
        await controller.stop()


async def test_thousands_of_schedules_are_cheap(store: SqliteStore, clock: ManualClock) -> None:
    for i in range(2000):
        await store.create(cron(f"c{i}", schedules=[f"{i % 60} {i % 24} * * *"], suspend=True))
    scheduler = CronScheduler(store, clock=clock)
    started = time.perf_counter()
    await scheduler.start()
    elapsed = time.perf_counter() - started
    try:
        assert len(scheduler._heap) == 2000
        assert elapsed < 5.0, elapsed
        started = time.perf_counter()
        await clock.advance(3600)  # ~83 schedules are due in the hour; only they are recomputed
        await asyncio.sleep(0.2)
        assert len(scheduler._heap) == 2000
    finally:
        await scheduler.stop()
