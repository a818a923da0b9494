"""The Kafka EventBus while its broker is killed mid-stream and comes back after a while.

The broker is Tansu with its storage in S3 (a moto server, ``TansuOnS3``), so a restarted broker
still has the topic, the records and the consumer groups' committed offsets. Publishers send a
paced stream through :class:`KafkaBus` (a retrying client: a publish that raises is sent again with
the same event id); a sensor (its own consumer group, as the cluster sensor role runs it) fires a
``log`` trigger per event, and an audit group records every delivery. The broker is ``SIGKILL``ed
mid-stream, kept down EVENTBRIDGE_FAULTS_BROKER_DOWN seconds (default 8; the issue's 30 works too)
and started again.

Proven: every publish that returned is delivered to both groups; no event is delivered twice to a
group (redeliveries of acknowledged records and repeated event ids are recognised by the bus and
counted in ``skipped``); publishes during the outage either wait and succeed or raise the retriable
:class:`TemporaryError`; the backlog catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from faults_helpers import NoReferences, TansuOnS3

from eventbridge.bus.kafka import KafkaBus, KafkaSettings, KafkaSubscription
from eventbridge.errors import TemporaryError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import SensorManager, SensorRecord
from eventbridge.store.sqlite import SqliteStore

DOWN = float(os.environ.get("EVENTBRIDGE_FAULTS_BROKER_DOWN", "8"))
TOPIC = "eventbus-default"
EVENTS = 600
RATE = 100.0  # events/s on schedule; after the outage the publishers catch up as fast as they can
PUBLISHERS = 8
KILL_AT = 150  # acknowledged publishes before the broker is killed


@dataclass
class Calls:
    """What the publishers saw: when each acknowledged publish started and returned, and the errors."""

    acked: dict[int, tuple[float, float]] = field(default_factory=dict)
    errors: list[tuple[int, float, float, BaseException]] = field(default_factory=list)


def event(number: int) -> Event:
    return Event(id=f"ev-{number}", source="orders", subject="created", type="webhook", namespace="shop",
                 data={"n": number})  # fmt: skip


async def publish_stream(bus: KafkaBus, calls: Calls) -> None:
    """Publish EVENTS events on a RATE/s schedule with PUBLISHERS concurrent retrying publishers."""
    numbers: asyncio.Queue[int] = asyncio.Queue()
    for number in range(EVENTS):
        numbers.put_nowait(number)
    started = time.monotonic()

    async def publisher() -> None:
        while not numbers.empty():
            number = numbers.get_nowait()
            await asyncio.sleep(max(0.0, started + number / RATE - time.monotonic()))
            while True:
                began = time.monotonic()
                try:
                    await bus.publish(event(number))
                except Exception as exc:  # every error is recorded and checked below
                    calls.errors.append((number, began, time.monotonic(), exc))
                    await asyncio.sleep(0.2)
                    continue
                calls.acked[number] = (began, time.monotonic())
                break

    await asyncio.gather(*(publisher() for _ in range(PUBLISHERS)))


async def audit(subscription: KafkaSubscription, seen: Counter[int]) -> None:
    async for delivery in subscription:
        seen[int(delivery.event.data["n"])] += 1
        await subscription.ack(delivery)


async def records_on_topic(bootstrap: str) -> Counter[int]:
    """Every record of the topic up to its end offsets, read from the start by a fresh consumer: {n: records}."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=500)  # fmt: skip
    await consumer.start()
    counts: Counter[int] = Counter()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the topic could not be read to its end within 60 s"
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    counts[int(Event.from_bytes(record.value).data["n"])] += 1
            if [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                continue
            # At the end offsets read at the start; read on until a poll brings nothing new. A run
            # once missed 4 records here that both groups had received, most likely an end offset
            # from Tansu on S3, after its restart, short of what it served.
            if not batches:
                break
    finally:
        await consumer.stop()
    return counts


async def until(predicate: Callable[[], bool], within: float, what: str | Callable[[], str]) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what if isinstance(what, str) else what()}")


async def test_kafka_bus_survives_a_broker_outage_mid_stream(broker: TansuOnS3, tmp_path: Path) -> None:
    # Tansu has no InitProducerId (idempotent producers), with S3 storage either.
    # Tansu holds a JoinGroup for half the rebalance timeout (waiting for other members): 1 s here.
    settings = KafkaSettings(broker.bootstrap, TOPIC, partitions=2, idempotent=False, session_timeout_ms=6_000,
                             rebalance_timeout_ms=2_000, publish_timeout_ms=2_000)  # fmt: skip
    fired: Counter[int] = Counter()
    delivered: Counter[int] = Counter()
    calls = Calls()

    def record(entry: SensorRecord) -> None:
        if entry.kind == "trigger" and entry.ok:
            for event_id in entry.event_ids:
                fired[int(event_id.removeprefix("ev-"))] += 1

    sensor = Sensor.model_validate({
        "metadata": {"name": "orders", "namespace": "shop"},
        "spec": {"dependencies": [{"name": "created", "eventSourceName": "orders", "eventName": "created"}],
                 "triggers": [{"template": {"name": "log", "log": {}}}]},
    })  # fmt: skip
    store = SqliteStore(tmp_path / "store.db")
    await store.start()
    bus = KafkaBus(settings)
    await bus.start()
    sensors = SensorManager(bus, store, NoReferences(), on_record=record)
    auditor = bus.subscribe("audit")
    reader = asyncio.create_task(audit(auditor, delivered))
    try:
        await sensors.apply([sensor])
        await until(lambda: set(bus.subscription_states().values()) == {"open"}, 30, "both groups to open")
        began = time.monotonic()
        await bus.publish(event(-1))  # a warm-up event: both groups have joined once it is delivered
        calls.acked[-1] = (began, time.monotonic())
        await until(lambda: -1 in fired and -1 in delivered, 30, "the warm-up event")
        stream = asyncio.create_task(publish_stream(bus, calls))
        await until(lambda: len(calls.acked) >= KILL_AT, 30, f"{KILL_AT} acknowledged publishes")
        broker.kill()
        killed = time.monotonic()
        at_kill = (len(calls.acked), sum(fired.values()))
        await asyncio.sleep(max(0.0, DOWN - (time.monotonic() - killed)))
        during = (len(calls.acked), sum(fired.values()))
        await asyncio.to_thread(broker.start)
        restarted = time.monotonic()
        await asyncio.wait_for(stream, 120)
        published = time.monotonic()
        acked = set(calls.acked)
        await until(
            lambda: acked <= set(fired) and acked <= set(delivered),
            90,
            lambda: (
                f"the groups to catch up: {len(acked)} acknowledged, {len(fired)} fired, {len(delivered)} delivered"
            ),
        )
        caught_up = time.monotonic()
        await asyncio.sleep(1.5)  # anything redelivered late would show up as a duplicate now
        sensor_skipped = sum(s.skipped for s in bus._subscriptions if s.group != "audit")
        states = bus.subscription_states()
    finally:
        await sensors.stop()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await auditor.close()
        await bus.stop()
        await store.stop()
    records = await records_on_topic(broker.bootstrap)

    waited = [n for n, (began, ended) in calls.acked.items() if killed <= began < restarted and ended >= restarted]
    failed_in_outage = [e for e in calls.errors if e[1] < restarted and e[2] >= killed]
    print(
        f"kafka bus outage: {DOWN:.0f}s down; acknowledged at the kill {at_kill[0]} (fired {at_kill[1]}), "
        f"while down {during[0]} (fired {during[1]}); publishes that waited through the outage and succeeded "
        f"{len(waited)}; retriable errors {len(calls.errors)}; all {EVENTS} published "
        f"{published - restarted:.1f}s and caught up {caught_up - restarted:.1f}s after the restart; "
        f"fired {sum(fired.values())}, audit deliveries {sum(delivered.values())}; recognised redeliveries "
        f"sensor {sensor_skipped}, audit {auditor.skipped}; records on the topic {sum(records.values())} "
        f"({sum(1 for c in records.values() if c > 1)} event ids with more than one record)"
    )
    assert KILL_AT <= at_kill[0] < EVENTS - 100, "the broker was not killed mid-stream"
    assert during[0] - at_kill[0] < PUBLISHERS, "publishes were acknowledged while the broker was down"
    assert acked == set(range(-1, EVENTS))
    assert set(fired) == acked and set(delivered) == acked
    assert [n for n, times in fired.items() if times > 1] == [], "the sensor fired twice for an event"
    assert [n for n, times in delivered.items() if times > 1] == [], "an event was delivered twice to a group"
    assert set(records) == acked, "an acknowledged publish is not on the topic"
    # Every failed publish failed loudly with the retriable error, and the outage was felt by publishers.
    assert all(isinstance(exc, TemporaryError) for *_, exc in calls.errors), {type(e[3]) for e in calls.errors}
    assert all("Kafka" in str(exc) for *_, exc in calls.errors)
    assert waited or failed_in_outage, "no publish overlapped the outage"
    assert len(states) == 2 and set(states.values()) == {"open"}, states
