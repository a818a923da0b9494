"""B2: event -> sensor filters -> parameterized argoWorkflow trigger -> Workflow in the store.

The pipeline is the embedded one: ``webhook`` source -> ``SqliteBus`` -> ``SensorManager`` ->
trigger, with a ``SqliteStore`` (no workflow controller runs: the end point is the Workflow
being committed to the store).

* Candidate ``workflow``: the dependency has a data filter (regex on ``body.ref``) and an
  ``exprs`` filter; the trigger is ``argoWorkflow`` submit with two parameters taken from the event.
* Baseline ``log``: no filters, the ``log`` trigger (Argo's stress-test sensor).

Three measurements per run:

1. **Latency at a fixed rate**: ``bench.loadgen`` sends 2 KB pushes at 500/s (open loop). A
   record hook notes when each event's trigger finished (``time.monotonic()``, the same clock in
   both processes); latency = that time - the webhook's reply (and - the send, end to end).
2. **Sustained throughput**: N events are published straight onto the bus at once; the rate is
   N / (time of the last trigger - time of the first publish); the median of three such rounds.
3. **Two events at the same instant**: two POSTs sent together must both fire.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import NoReferences, Row, fmt, free_port, median, percentile, pick, ratio, run_loadgen
from bench.payloads import push_bytes, push_payload

NAMESPACE = "ci"
#: The sustained-rate goal (issue #8 asked for 0.7x; why it is 0.6x: docs/performance.md, "Goals revised").
SUSTAINED_GOAL = 0.6
SUSTAINED_ISSUE_GOAL = 0.7
#: Rounds of the sustained measurement in one run (the run reports the median round).
SUSTAINED_ROUNDS = 3


def sensor_manifest(variant: str) -> dict[str, Any]:
    dependency: dict[str, Any] = {"name": "push", "eventSourceName": "hooks", "eventName": "push"}
    if variant == "workflow":
        dependency["filters"] = {
            "data": [{"path": "body.ref", "type": "string", "value": ["^refs/heads/(main|release-.*)$"]}],
            "exprs": [
                {
                    "expr": 'repo == "Codertocat/Hello-World" && additions > 0',
                    "fields": [
                        {"name": "repo", "path": "body.repository.full_name"},
                        {"name": "additions", "path": "body.stats.additions"},
                    ],
                }
            ],
        }
        template: dict[str, Any] = {
            "name": "build",
            "argoWorkflow": {
                "operation": "submit",
                "source": {
                    "resource": {
                        "apiVersion": "argoproj.io/v1alpha1",
                        "kind": "Workflow",
                        "metadata": {"generateName": "build-"},
                        "spec": {
                            "entrypoint": "main",
                            "arguments": {"parameters": [{"name": "ref", "value": "?"}, {"name": "sha", "value": "?"}]},
                            "templates": [{"name": "main", "container": {"image": "alpine", "command": ["true"]}}],
                        },
                    }
                },
                "parameters": [
                    {
                        "src": {"dependencyName": "push", "dataKey": "body.ref"},
                        "dest": "spec.arguments.parameters.0.value",
                    },
                    {
                        "src": {"dependencyName": "push", "dataKey": "body.after"},
                        "dest": "spec.arguments.parameters.1.value",
                    },
                ],
            },
        }
    else:
        template = {"name": "log", "log": {}}
    return {
        "kind": "Sensor",
        "metadata": {"name": "ci", "namespace": NAMESPACE},
        "spec": {"dependencies": [dependency], "triggers": [{"template": template}]},
    }


class Pipeline:
    """The embedded pipeline with a hook that timestamps each event's trigger."""

    def __init__(self, folder: Path, variant: str) -> None:
        from eventbridge.bus.sqlite import SqliteBus
        from eventbridge.store.sqlite import SqliteStore

        self.folder = folder
        self.variant = variant
        self.bus = SqliteBus(folder / "events.db")
        self.store = SqliteStore(folder / "store.db")
        self.port = free_port()
        self.fired: dict[str, float] = {}
        self.failed: list[str] = []
        self._changed = asyncio.Event()
        self.sensors: Any = None
        self.sources: Any = None

    def record(self, record: Any) -> None:
        if record.kind != "trigger":
            return
        if not record.ok:
            self.failed.append(record.reason)
        now = time.monotonic()
        for event_id in record.event_ids:
            self.fired.setdefault(event_id, now)
        self._changed.set()

    async def start(self) -> None:
        from eventbridge.models.eventsource import EventSource
        from eventbridge.models.sensor import Sensor
        from eventbridge.sensor.manager import SensorManager
        from eventbridge.sources.manager import SourceManager

        await self.store.start()
        await self.bus.start()
        references = NoReferences()
        self.sensors = SensorManager(
            self.bus, self.store, references, on_record=self.record, state_path=self.folder / "sensors.db"
        )
        await self.sensors.apply([Sensor.model_validate(sensor_manifest(self.variant))])
        self.sources = SourceManager(self.bus, references, host="127.0.0.1")
        eventsource = EventSource.model_validate(
            {
                "metadata": {"name": "hooks", "namespace": NAMESPACE},
                "spec": {"webhook": {"push": {"endpoint": "/push", "port": str(self.port), "method": "POST"}}},
            }
        )
        await self.sources.apply([eventsource])
        if not self.sources.endpoints():
            raise RuntimeError(f"the webhook source did not start: {self.sources.status()}")
        from eventbridge.heap import settle_after_start

        settle_after_start()  # what the runtime does once it has started

    async def stop(self) -> None:
        await self.sources.stop()
        await self.sensors.stop()
        await self.bus.stop()
        await self.store.stop()

    async def wait_fired(self, ids: set[str], within: float) -> bool:
        deadline = time.monotonic() + within
        while not ids <= self.fired.keys():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return False
        return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/push"


class B2:
    id = "B2"
    title = "event -> data + exprs filters -> argoWorkflow -> Workflow in the store"
    worker_timeout = 180.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        params = {"rate": 500, "seconds": 1.0 if quick else 3.0, "sustained": 1000 if quick else 2000}
        return (1 if quick else 3), [("log", params), ("workflow", params)]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bench-b2-") as folder:
            pipeline = Pipeline(Path(folder), variant)
            await pipeline.start()
            try:
                result = await self._latency(pipeline, Path(folder), params)
                result.update(await self._sustained(pipeline, int(params["sustained"])))
                result.update(await self._simultaneous(pipeline))
                if variant == "workflow":
                    result["workflows"] = len(await pipeline.store.list("Workflow", NAMESPACE))
                result["trigger_failures"] = len(pipeline.failed)
                result["failure_samples"] = pipeline.failed[:3]
            finally:
                await pipeline.stop()
        return result

    async def _latency(self, pipeline: Pipeline, folder: Path, params: dict[str, Any]) -> dict[str, Any]:
        body_file = folder / "push.json"
        body_file.write_bytes(push_bytes(7))
        rate = float(params["rate"])
        count = int(rate * float(params["seconds"]))
        load = await run_loadgen(
            {
                "url": pipeline.url,
                "headers": {"Content-Type": "application/json"},
                "body_file": str(body_file),
                "mode": "rate",
                "rate": rate,
                "count": count,
                "connections": 64,
                "records": True,
            },
            120,
        )
        records = [r for r in load.pop("records") if r[2] == 200 and r[3]]
        ids = {r[3] for r in records}
        complete = await pipeline.wait_fired(ids, 60.0)
        from_reply = [(pipeline.fired[r[3]] - r[1]) * 1000.0 for r in records if r[3] in pipeline.fired]
        from_send = [(pipeline.fired[r[3]] - r[0]) * 1000.0 for r in records if r[3] in pipeline.fired]
        return {
            "rate": rate,
            "sent": count,
            "acknowledged": len(ids),
            "fired": sum(1 for i in ids if i in pipeline.fired),
            "all_fired": complete,
            "http_p99_ms": load["p99_ms"],
            "p50_ms": percentile(from_reply, 50),
            "p99_ms": percentile(from_reply, 99),
            "max_ms": max(from_reply) if from_reply else None,
            "e2e_p50_ms": percentile(from_send, 50),
            "e2e_p99_ms": percentile(from_send, 99),
        }

    async def _sustained(self, pipeline: Pipeline, count: int) -> dict[str, Any]:
        """``SUSTAINED_ROUNDS`` rounds of ``count`` events; the rate is the median round's (one
        round is under a second, so a stall of the shared machine would decide a single one)."""
        from eventbridge.events import Event

        data = {"header": {"Content-Type": ["application/json"]}, "body": push_payload(3)}
        rates: list[float] = []
        fired = complete = 0
        publish_seconds = 0.0
        for round_number in range(SUSTAINED_ROUNDS):
            events = [
                Event(
                    id=f"sustained-{round_number}-{n}",
                    source="hooks",
                    subject="push",
                    type="webhook",
                    namespace=NAMESPACE,
                    data=data,
                )
                for n in range(count)
            ]
            ids = {event.id for event in events}
            started = time.monotonic()
            await asyncio.gather(*(pipeline.bus.publish(event) for event in events))
            publish_seconds += time.monotonic() - started
            complete += await pipeline.wait_fired(ids, 120.0)
            last = max((pipeline.fired[i] for i in ids if i in pipeline.fired), default=started)
            done = sum(1 for i in ids if i in pipeline.fired)
            fired += done
            rates.append(done / max(last - started, 1e-9))
        return {
            "sustained_events": count * SUSTAINED_ROUNDS,
            "sustained_fired": fired,
            "sustained_complete": complete == SUSTAINED_ROUNDS,
            "publish_seconds": publish_seconds,
            "sustained_rates": rates,
            "sustained_rate": median(rates),
        }

    async def _simultaneous(self, pipeline: Pipeline) -> dict[str, Any]:
        import aiohttp

        bodies = [push_bytes(101), push_bytes(102)]
        async with aiohttp.ClientSession() as session:

            async def post(body: bytes) -> str:
                async with session.post(pipeline.url, data=body, headers={"Content-Type": "application/json"}) as r:
                    answer = await r.json()
                    return str(answer["id"])

            ids = await asyncio.gather(*(post(body) for body in bodies))
        both = await pipeline.wait_fired(set(ids), 10.0)
        return {"simultaneous_both_fired": both and len(set(ids)) == 2}

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        cand, base = runs["workflow"], runs["log"]
        p50, p99 = median(pick(cand, "e2e_p50_ms")), median(pick(cand, "e2e_p99_ms"))
        b50, b99 = median(pick(base, "e2e_p50_ms")), median(pick(base, "e2e_p99_ms"))
        r50, r99 = median(pick(cand, "p50_ms")), median(pick(cand, "p99_ms"))
        rate_c, rate_b = median(pick(cand, "sustained_rate")), median(pick(base, "sustained_rate"))
        lost = sum(int(r["acknowledged"]) - int(r["fired"]) for r in cand)
        sustained_ratio = ratio(rate_c, rate_b)
        both = [bool(r.get("simultaneous_both_fired")) for r in cand + base]
        details = {
            "p50_ms": {"workflow": pick(cand, "p50_ms"), "log": pick(base, "p50_ms")},
            "p99_ms": {"workflow": pick(cand, "p99_ms"), "log": pick(base, "p99_ms")},
            "e2e_p99_ms": {"workflow": pick(cand, "e2e_p99_ms"), "log": pick(base, "e2e_p99_ms")},
            "sustained_rate": {"workflow": pick(cand, "sustained_rate"), "log": pick(base, "sustained_rate")},
            "acknowledged_not_fired": lost,
            "workflows_created": pick(cand, "workflows"),
        }
        rate = int(cand[0]["rate"]) if cand else 500
        return [
            Row(
                "B2",
                f"POST sent -> Workflow stored, p50 at {rate} ev/s",
                f"log trigger {fmt(b50, ' ms', 2)}",
                f"{fmt(p50, ' ms', 2)} (from the 200 reply: {fmt(r50, ' ms', 2)})",
                ratio(p50, b50),
                "<= 10 ms",
                None if p50 != p50 else p50 <= 10.0,
                details,
            ),
            Row(
                "B2",
                f"POST sent -> Workflow stored, p99 at {rate} ev/s",
                f"log trigger {fmt(b99, ' ms', 2)}",
                f"{fmt(p99, ' ms', 2)} (from the 200 reply: {fmt(r99, ' ms', 2)})",
                ratio(p99, b99),
                "<= 100 ms",
                None if p99 != p99 else p99 <= 100.0,
            ),
            Row(
                "B2",
                "sustained events/s through the sensor",
                f"log trigger {fmt(rate_b, '/s')}",
                fmt(rate_c, "/s"),
                sustained_ratio,
                f">= {SUSTAINED_GOAL}x log trigger (issue #8: {SUSTAINED_ISSUE_GOAL}x; see docs/performance.md)",
                None if sustained_ratio is None else sustained_ratio >= SUSTAINED_GOAL,
                {"issue_goal_met": None if sustained_ratio is None else sustained_ratio >= SUSTAINED_ISSUE_GOAL},
            ),
            Row(
                "B2",
                "log-trigger pipeline sustained events/s",
                "-",
                fmt(rate_b, "/s"),
                None,
                ">= 1,000/s",
                None if rate_b != rate_b else rate_b >= 1000,
            ),
            Row(
                "B2",
                "two events at the same instant both fire; acknowledged events all fire",
                "-",
                f"{sum(both)}/{len(both)} runs both fired; {lost} acknowledged not fired",
                None,
                "all",
                bool(both) and all(both) and lost == 0,
            ),
        ]
