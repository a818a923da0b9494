"""B6: a burst of events against a slow (50 ms) trigger: memory, back-pressure, loss.

Pipeline: ``webhook`` source -> ``SqliteBus`` -> ``SensorManager`` -> ``http`` trigger that
POSTs to a local server answering after 50 ms (in the worker process).

* Baseline ``idle``: the same process, everything started, no load: its RSS over the same time.
* Candidate ``burst``: ``bench.loadgen`` posts N events as fast as 64 connections allow, against
  a bus whose backlog bound is ``BACKLOG_BOUND`` (``EVENTBRIDGE_MAX_BACKLOG`` in a deployment), so
  the burst outruns the trigger and meets the bound. RSS is sampled every 50 ms; "queued" =
  acknowledged (2xx) - triggered. After the burst the sensor drains until every acknowledged
  event fired (or a time limit). Every acknowledged event id is then looked up on the bus (an
  acknowledged event missing = lost). Refusals (429/503 with Retry-After) are counted from the
  load generator's answers. Then the same burst runs again (``repeats`` bursts in all) and the
  RSS after each drain shows whether memory keeps growing (a leak) or levels off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import NoReferences, Row, RssSampler, fmt, free_port, median, pick, rss_bytes, run_loadgen
from bench.payloads import push_bytes

NAMESPACE = "bench"
TRIGGER_DELAY = 0.05
#: The backlog bound of the candidate's bus: a fifth of the full burst, so the bound is met.
BACKLOG_BOUND = 10_000
#: How long after a drain the memory figure waits for the runtime's janitor (it looks every second).
RELEASE_WAIT = 5.0


def sensor_manifest(url: str) -> dict[str, Any]:
    return {
        "kind": "Sensor",
        "metadata": {"name": "slow", "namespace": NAMESPACE},
        "spec": {
            "dependencies": [{"name": "push", "eventSourceName": "hooks", "eventName": "push"}],
            "triggers": [{"template": {"name": "notify", "http": {"url": url, "method": "POST"}}}],
        },
    }


class B6:
    id = "B6"
    title = "burst against a 50 ms trigger: memory, back-pressure, loss"
    worker_timeout = 480.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        params = {
            "events": 3000 if quick else 50000,
            "drain": 10.0 if quick else 60.0,
            "bound": 1000 if quick else BACKLOG_BOUND,
            "repeats": 3 if quick else 4,
        }
        return (1 if quick else 3), [("idle", params), ("burst", params)]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        from eventbridge.bus.sqlite import SqliteBus
        from eventbridge.heap import Janitor, settle_after_start, unsettle
        from eventbridge.models.eventsource import EventSource
        from eventbridge.models.sensor import Sensor
        from eventbridge.sensor.manager import SensorManager
        from eventbridge.sources.manager import SourceManager
        from eventbridge.store.sqlite import SqliteStore

        # Only counts are kept in this process while memory is measured: sets of tens of thousands
        # of event ids would be the benchmark's own memory, not the service's.
        fired = [0]
        progress = asyncio.Event()

        def record(entry: Any) -> None:
            if entry.kind == "trigger":
                fired[0] += len(entry.event_ids)
                progress.set()

        async def slow(request: web.Request) -> web.Response:
            await request.read()
            await asyncio.sleep(TRIGGER_DELAY)
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/slow", slow)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        slow_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", slow_port).start()
        with tempfile.TemporaryDirectory(prefix="bench-b6-") as folder:
            bus = SqliteBus(Path(folder) / "events.db", max_backlog=int(params["bound"]))
            store = SqliteStore(Path(folder) / "store.db")
            await store.start()
            await bus.start()
            references = NoReferences()
            sensors = SensorManager(bus, store, references, on_record=record)
            await sensors.apply([Sensor.model_validate(sensor_manifest(f"http://127.0.0.1:{slow_port}/slow"))])
            sources = SourceManager(bus, references, host="127.0.0.1")
            port = free_port()
            await sources.apply(
                [
                    EventSource.model_validate(
                        {
                            "metadata": {"name": "hooks", "namespace": NAMESPACE},
                            "spec": {"webhook": {"push": {"endpoint": "/push", "port": str(port), "method": "POST"}}},
                        }
                    )
                ]
            )
            body_file = Path(folder) / "push.json"
            body_file.write_bytes(push_bytes(5))
            # as the embedded runtime does once started (eventbridge.runtime.embedded)
            janitor = Janitor(lambda: bus.backlog, [bus.release_memory, store.release_memory])
            janitor.start()
            settle_after_start()
            try:
                gc.collect()
                await asyncio.sleep(0.5)
                idle = rss_bytes()
                if variant == "idle":
                    sampler = RssSampler()
                    sampler.start()
                    await asyncio.sleep(3.0)
                    await sampler.stop()
                    return {"idle_rss": idle, "peak_rss": sampler.peak, "end_rss": rss_bytes()}
                return await self._burst(params, bus, janitor, fired, progress, port, body_file, idle)
            finally:
                await janitor.stop()
                unsettle()
                await sources.stop()
                await sensors.stop()
                await bus.stop()
                await store.stop()
                await runner.cleanup()

    async def _burst(
        self,
        params: dict[str, Any],
        bus: Any,
        janitor: Any,
        fired: list[int],
        progress: asyncio.Event,
        port: int,
        body_file: Path,
        idle: int,
    ) -> dict[str, Any]:
        count = int(params["events"])
        # The acknowledged ids go straight from the load generator to a file, read only for the
        # loss check after the memory figures: holding them here would be the benchmark's memory.
        acked_file = body_file.with_name("acked.txt")
        sampler = RssSampler()
        sampler.extra = lambda: bus.backlog
        sampler.start()
        started = time.monotonic()
        burst = {
            "url": f"http://127.0.0.1:{port}/push",
            "headers": {"Content-Type": "application/json"},
            "body_file": str(body_file),
            "mode": "count",
            "count": count,
            "connections": 64,
        }
        load = await run_loadgen({**burst, "acked_file": str(acked_file)}, 200)
        burst_seconds = time.monotonic() - started
        acked_count = int(load["acked"])
        gc.collect()
        after_burst = rss_bytes()
        queued_after_burst = bus.backlog
        drain_from, drain_started = fired[0], time.monotonic()
        drain_deadline = drain_started + float(params["drain"])
        releases = janitor.releases
        while bus.backlog > 0 and time.monotonic() < drain_deadline:
            progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(progress.wait(), drain_deadline - time.monotonic())
        drain_seconds = time.monotonic() - drain_started
        drained = fired[0] - drain_from
        drained_all = bus.backlog == 0
        await sampler.stop()
        drain_rate = drained / max(drain_seconds, 1e-9)
        gc.collect()
        drained_rss = rss_bytes()
        release_seconds = await self._released(janitor, releases)
        after_drain = rss_bytes()
        # loss check: every acknowledged id must be on the bus
        acked = set(acked_file.read_text().split())
        stored: set[str] = set()
        offset = 0
        while True:
            page = await bus.list_events(after=offset, limit=5000)
            if not page:
                break
            stored.update(d.event.id for d in page)
            offset = page[-1].offset
        lost = len(acked - stored)
        del acked, stored
        queued_at_peak = max(sampler.peak_extra_at_peak, 1)
        # The same burst again, several times: memory that grows burst after burst would be a leak;
        # memory that stays where the first bursts left it is the allocators keeping their arenas.
        after_drains: list[int | None] = [after_drain]
        for _ in range(int(params.get("repeats", 3)) - 1):
            releases = janitor.releases
            await run_loadgen(burst, 200)
            again_deadline = time.monotonic() + float(params["drain"])
            while bus.backlog > 0 and time.monotonic() < again_deadline:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), again_deadline - time.monotonic())
            await self._released(janitor, releases)
            gc.collect()
            after_drains.append(rss_bytes() if bus.backlog == 0 else None)
        return {
            "events": count,
            "acknowledged": acked_count,
            "statuses": load["statuses"],
            "errors": load["errors"],
            "retry_after": load["retry_after"],
            "ingress_rps": load["rps"],
            "burst_seconds": burst_seconds,
            "idle_rss": idle,
            "peak_rss": sampler.peak,
            "after_burst_rss": after_burst,
            "drained_rss": drained_rss,
            "after_drain_rss": after_drain,
            "release_seconds": release_seconds,
            "after_drains_rss": after_drains,
            "queued_at_peak": queued_at_peak,
            "queued_after_burst": queued_after_burst,
            "bytes_per_queued_event": (sampler.peak - idle) / queued_at_peak,
            "drain_rate": drain_rate,
            "full_drain_seconds": queued_after_burst / drain_rate if drain_rate else None,
            "drained_all": drained_all,
            "bound": int(params["bound"]),
            "lost": lost,
        }

    @staticmethod
    async def _released(janitor: Any, releases: int) -> float | None:
        """Seconds from the end of a drain until the janitor gave memory back (its count passed
        ``releases``); None when it did not within ``RELEASE_WAIT`` s (the figure is taken as is)."""
        started = time.monotonic()
        while janitor.releases <= releases:
            if time.monotonic() - started > RELEASE_WAIT:
                return None
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        cand, base = runs["burst"], runs["idle"]
        idle = median(pick(base, "idle_rss")) / 2**20
        idle_peak = median(pick(base, "peak_rss")) / 2**20
        peak = median(pick(cand, "peak_rss")) / 2**20
        per_event = median(pick(cand, "bytes_per_queued_event")) / 1024
        queued = median(pick(cand, "queued_at_peak"))
        refused = sum(sum(n for status, n in r["statuses"].items() if status in ("429", "503")) for r in cand)
        retry_after = sum(int(r["retry_after"]) for r in cand)
        lost = sum(int(r["lost"]) for r in cand)
        acked = sum(int(r["acknowledged"]) for r in cand)
        drain = median(pick(cand, "drain_rate"))
        full_drain = median(pick(cand, "full_drain_seconds"))
        after = median(pick(cand, "after_drain_rss")) / 2**20
        drained = median(pick(cand, "drained_rss")) / 2**20
        waits = [r.get("release_seconds") for r in cand]
        released = (
            f"{median([w for w in waits if w is not None]):.1f} s later"
            if waits and None not in waits
            else "did not come within 5 s"
        )
        cand_idle = median(pick(cand, "idle_rss")) / 2**20
        events = int(cand[0]["events"]) if cand else 0
        drained_all = bool(cand) and all(r.get("drained_all") for r in cand)
        back_within = after <= cand_idle * 1.10 if drained_all else None
        # RSS after each drain of the repeated bursts (median over runs, per burst)
        series = [r.get("after_drains_rss") or [] for r in cand]
        drains = min((len(x) for x in series), default=0)
        complete = drains >= 3 and all(None not in x for x in series)
        levels = [median([x[i] for x in series]) / 2**20 for i in range(drains)] if complete else []
        last_step = levels[-1] / levels[-2] if levels else None
        bound = int(cand[0].get("bound", 0)) if cand else 0
        return [
            Row(
                "B6",
                f"{events:,}-event burst: RSS per queued event",
                f"idle RSS {fmt(idle, ' MiB')} (peak {fmt(idle_peak, ' MiB')} over 3 s)",
                f"peak {fmt(peak, ' MiB')}; {fmt(per_event, ' KiB', 2)}/event at {fmt(queued, '')} queued",
                None,
                "<= 10 KB per queued event",
                None if per_event != per_event else per_event <= 10.0,
                {
                    "per_event_kib": [b / 1024 for b in pick(cand, "bytes_per_queued_event")],
                    "ingress_rps": pick(cand, "ingress_rps"),
                },
            ),
            Row(
                "B6",
                f"back-pressure at the configured bound ({bound:,} unprocessed events)",
                "-",
                f"{refused} refused (429/503), {retry_after} with Retry-After, of {events * len(cand):,} sent",
                None,
                "429/503 + Retry-After at the bound",
                refused > 0 and retry_after >= refused,
                {"statuses": [r["statuses"] for r in cand]},
            ),
            Row(
                "B6",
                "acknowledged events lost",
                "0",
                f"{lost} of {acked:,} acknowledged",
                None,
                "0",
                lost == 0 if cand else None,
            ),
            Row(
                "B6",
                "memory after draining",
                f"idle RSS {fmt(cand_idle, ' MiB')}",
                f"{fmt(after, ' MiB')} after draining ({fmt(drained, ' MiB')} at the drain's end, then the "
                f"janitor's release {released}); drain {fmt(drain, ' ev/s')}, "
                f"{'all drained' if drained_all else 'NOT all drained'} in ~{fmt(full_drain, ' s', 0)}",
                None if not cand_idle else after / cand_idle,
                "within +10% of idle after draining",
                back_within,
                {
                    "after_drain_mib": [v / 2**20 for v in pick(cand, "after_drain_rss")],
                    "drained_mib": [v / 2**20 for v in pick(cand, "drained_rss")],
                    "release_seconds": [r.get("release_seconds") for r in cand],
                },
            ),
            Row(
                "B6",
                f"memory across {drains} identical bursts (leak check): RSS after each drain",
                f"after the first drain {fmt(after, ' MiB')}",
                ", ".join(fmt(level, " MiB") for level in levels) if levels else "bursts not all drained",
                last_step,
                "levels off: the last drain within +2% of the one before (proposed)",
                None if last_step is None else last_step <= 1.02,
                {"after_drains_mib": [[v / 2**20 if v else None for v in x] for x in series]},
            ),
        ]
