"""B4: schedule lateness with 1,000 and 10,000 schedules.

Method (real time, no virtual clock):

* Candidate ``calendar``: one EventSource with N ``calendar`` events whose ``interval`` is 1 to 5 s
  (schedule i gets ``1 + i % 5`` seconds), run by the ``SourceManager`` on a ``SqliteBus`` with a
  state directory, exactly as the embedded runtime wires them. The calendar's 5-field cron has
  minute resolution, so ``interval`` is what makes thousands of fires per second possible in a
  bounded run. Its fire times are whole seconds, so many schedules fire at the same instant
  (the worst case, like ``0 * * * *`` on every CronWorkflow). Lateness = the moment the event is
  durable on the bus (the publish returned) - its scheduled time (the event id).
* Candidate ``nostate``: the same without a state directory (the calendar then writes no state
  file per fire): what the fix for the cost found here gives.
* Baseline ``sleep``: N asyncio tasks that sleep until the same kind of deadlines (whole seconds,
  the same intervals) and note how late they woke: the event loop's own timer jitter under the
  same burst of wake-ups.

Only fires scheduled after every schedule has started (plus 1 s) count. Missed = a scheduled
time inside the window that never reached the bus; duplicate = a second publish of one fire.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import NoReferences, Row, fmt, median, percentile, pick, ratio

NAMESPACE = "bench"


def interval_of(index: int) -> int:
    return 1 + index % 5


class TimingBus:
    """Wraps a bus: notes when each publish became durable (wall clock) and counts repeats."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fires: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], float] = {}
        self.duplicates = 0

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def publish(self, event: Any) -> bool:
        self.calls.setdefault((event.subject, event.id), time.time())
        result: bool = await self.inner.publish(event)
        key = (event.subject, event.id)
        if key in self.fires:
            self.duplicates += 1
        else:
            self.fires[key] = time.time()
        return result

    async def publish_many(self, events: list[Any]) -> list[Any]:
        called = time.time()
        for event in events:
            self.calls.setdefault((event.subject, event.id), called)
        results: list[Any] = await self.inner.publish_many(events)
        durable = time.time()
        for event in events:
            key = (event.subject, event.id)
            if key in self.fires:
                self.duplicates += 1
            else:
                self.fires[key] = durable
        return results

    def subscribe(self, group: str, *, from_start: bool = False) -> Any:
        return self.inner.subscribe(group, from_start=from_start)


def _score(
    observed: dict[str, list[float]], late: list[float], count: int, window: tuple[float, float]
) -> dict[str, Any]:
    """Missed fires per schedule: expected times in the window that were not observed."""
    start, end = window
    missed = 0
    for index in range(count):
        interval = interval_of(index)
        times = sorted(t for t in observed.get(f"s{index}", []) if start <= t <= end - 1.0)
        if not times:
            missed += max(0, math.floor((end - 1.0 - start) / interval))
            continue
        expected = {times[0] + k * interval for k in range(int((end - 1.0 - times[0]) // interval) + 1)}
        # fires before the first observed one that were in the window
        k = 1
        while times[0] - k * interval >= start:
            expected.add(times[0] - k * interval)
            k += 1
        missed += len(expected - set(times))
    return {
        "fires": len(late),
        "p50_ms": percentile(late, 50),
        "p99_ms": percentile(late, 99),
        "max_ms": max(late) if late else None,
        "missed": missed,
    }


class B4:
    id = "B4"
    title = "schedule lateness with 1,000 and 10,000 schedules"
    grace = 2.0
    worker_timeout = 180.0

    def sizes(self, quick: bool) -> list[int]:
        return [1000] if quick else [1000, 10000]

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        window = 2.0 if quick else 3.0
        round_: list[tuple[str, dict[str, Any]]] = []
        for size in self.sizes(quick):
            params: dict[str, Any] = {"schedules": size, "window": window, "grace": 1.5 if quick else 2.0}
            stateful = dict(params)
            if size >= 10000:
                stateful["max_pairs"] = 1  # once at 10,000: it adds nothing the stateless variant shows
            round_ += [(f"sleep-{size}", params), (f"nostate-{size}", params), (f"calendar-{size}", stateful)]
        return (1 if quick else 3), round_

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        count, window = int(params["schedules"]), float(params["window"])
        self.grace = float(params.get("grace", 2.0))
        if variant.startswith("sleep"):
            return await self._sleep(count, window)
        with tempfile.TemporaryDirectory(prefix="bench-b4-") as folder:
            return await self._calendar(Path(folder), count, window, stateful=variant.startswith("calendar"))

    async def _sleep(self, count: int, window: float) -> dict[str, Any]:
        observed: dict[str, list[float]] = {}
        late: list[float] = []
        measure: list[float] = []

        async def schedule(index: int) -> None:
            interval = interval_of(index)
            last = time.time()
            times = observed.setdefault(f"s{index}", [])
            while True:
                due = math.floor(last + interval)
                while (wait := due - time.time()) > 0:  # noqa: ASYNC110 - sleep until the deadline, as the calendar does
                    await asyncio.sleep(wait)
                woke = time.time()
                times.append(due)
                if measure and measure[0] <= due <= measure[1]:
                    late.append((woke - due) * 1000.0)
                last = due

        tasks = [asyncio.create_task(schedule(i)) for i in range(count)]
        started = time.time()
        measure += [started + 1.0, started + 1.0 + window]
        await asyncio.sleep(window + self.grace)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        result = _score(observed, late, count, (measure[0], measure[1]))
        result.update(duplicates=0, setup_seconds=0.0)
        return result

    async def _calendar(self, folder: Path, count: int, window: float, *, stateful: bool) -> dict[str, Any]:
        from eventbridge.bus.sqlite import SqliteBus
        from eventbridge.models.eventsource import EventSource
        from eventbridge.sources.manager import SourceManager

        bus = TimingBus(SqliteBus(folder / "events.db"))
        await bus.start()
        state_dir = folder / "sources" if stateful else None
        manager = SourceManager(bus, NoReferences(), host="127.0.0.1", state_dir=state_dir)
        calendar = {f"s{i}": {"interval": f"{interval_of(i)}s"} for i in range(count)}
        eventsource = EventSource.model_validate(
            {"metadata": {"name": "cron", "namespace": NAMESPACE}, "spec": {"calendar": calendar}}
        )
        setup_start = time.time()
        extra: dict[str, Any] = {"running": 0}
        measure_box: list[tuple[float, float]] = []
        finished = threading.Event()
        # When the loop falls far behind (a blocking write per fire), it cannot even get to the
        # end of the run: a watchdog thread reports what reached the bus by then and exits.
        hard_stop = setup_start + window + self.grace + 12.0
        threading.Thread(
            target=self._watchdog, args=(finished, hard_stop, bus, count, measure_box, extra, folder), daemon=True
        ).start()
        await manager.apply([eventsource])
        started = time.time()
        extra["setup_seconds"] = started - setup_start
        extra["running"] = sum(1 for s in manager.status() if s.state == "running")
        measure = (started + 1.0, started + 1.0 + window)
        measure_box.append(measure)
        await asyncio.sleep(window + self.grace)
        await manager.stop()
        await bus.stop()
        finished.set()
        return self._calendar_result(dict(bus.fires), bus.duplicates, count, measure, extra, dict(bus.calls))

    @staticmethod
    def _calendar_result(
        fires: dict[tuple[str, str], float],
        duplicates: int,
        count: int,
        measure: tuple[float, float],
        extra: dict[str, Any],
        calls: dict[tuple[str, str], float] | None = None,
    ) -> dict[str, Any]:
        observed: dict[str, list[float]] = {}
        late: list[float] = []
        to_call: list[float] = []
        for (subject, event_id), durable in fires.items():
            scheduled = datetime.fromisoformat(event_id.replace("Z", "+00:00")).timestamp()
            observed.setdefault(subject, []).append(scheduled)
            if measure[0] <= scheduled <= measure[1]:
                late.append((durable - scheduled) * 1000.0)
                if calls and (subject, event_id) in calls:
                    to_call.append((calls[(subject, event_id)] - scheduled) * 1000.0)
        result = _score(observed, late, count, measure)
        result.update(duplicates=duplicates, call_p99_ms=percentile(to_call, 99) if to_call else None, **extra)
        return result

    def _watchdog(
        self,
        finished: threading.Event,
        hard_stop: float,
        bus: TimingBus,
        count: int,
        measure_box: list[tuple[float, float]],
        extra: dict[str, Any],
        folder: Path,
    ) -> None:
        if finished.wait(max(0.0, hard_stop - time.time())):
            return
        fires = dict(bus.fires)
        if measure_box:
            result = self._calendar_result(fires, bus.duplicates, count, measure_box[0], extra)
            result["cut_short"] = f"the loop was still busy {hard_stop - measure_box[0][1]:.0f} s after the window"
        else:
            late = sorted(fires.values())
            result = {
                "fires": len(fires),
                "p50_ms": None,
                "p99_ms": None,
                "missed": None,
                "duplicates": bus.duplicates,
                **extra,
                "cut_short": f"starting the {count} schedules had not finished after "
                f"{hard_stop - (late[0] if late else hard_stop):.0f} s of firing",
            }
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        shutil.rmtree(folder, ignore_errors=True)  # bench.common.run_worker removes what is left
        os._exit(0)

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        rows: list[Row] = []
        sizes = sorted({int(v.split("-")[1]) for v in runs})
        for size in sizes:
            base = runs[f"sleep-{size}"]
            p99_b = median(pick(base, "p99_ms"))
            for kind, label in (("calendar", "state dir, as the runtime"), ("nostate", "no state dir")):
                cand = runs[f"{kind}-{size}"]
                p99_c, p50_c = median(pick(cand, "p99_ms")), median(pick(cand, "p50_ms"))
                call_p99 = median(pick(cand, "call_p99_ms"))
                missed = sum(int(r["missed"] or 0) for r in cand)
                cut = [str(r["cut_short"]) for r in cand if r.get("cut_short")]
                duplicates = sum(int(r["duplicates"]) for r in cand)
                fires = sum(int(r["fires"]) for r in cand)
                if size >= 10000:
                    goal, met = "p99 <= 1 s; 0 missed, 0 duplicate", p99_c <= 1000.0
                else:
                    goal, met = "p99 <= baseline + 20 ms; 0 missed, 0 duplicate", p99_c <= p99_b + 20.0
                text = (
                    f"p99 {fmt(p99_c, ' ms', 1)} (p50 {fmt(p50_c, ' ms', 1)}; publish called: p99 "
                    f"{fmt(call_p99, ' ms', 1)}); {fires:,} fires, "
                    f"{missed} missed or not fired by the end of the run, {duplicates} duplicate"
                )
                if cut:
                    text += f"; {len(cut)}/{len(cand)} runs cut short: {cut[0]}"
                rows.append(
                    Row(
                        "B4",
                        f"{size:,} calendar schedules, 1-5 s intervals ({label}): lateness until durable",
                        f"asyncio sleep-until p99 {fmt(p99_b, ' ms', 1)}",
                        text,
                        ratio(p99_c, p99_b),
                        goal,
                        False if cut else None if p99_c != p99_c else met and missed == 0 and duplicates == 0,
                        {
                            "p99_ms": {kind: pick(cand, "p99_ms"), "sleep": pick(base, "p99_ms")},
                            "max_ms": pick(cand, "max_ms"),
                            "setup_seconds": pick(cand, "setup_seconds"),
                            "baseline_missed": sum(int(r["missed"]) for r in base),
                        },
                    )
                )
        return rows
