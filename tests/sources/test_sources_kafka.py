"""The kafka source against real brokers on loopback: Tansu and Apache Kafka (the ``kafka`` fixture of
conftest.py runs each test on both). Each test uses its own topic and consumer group."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from realservers import KafkaBroker
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.kafka import event_id, go_time_string
from eventbridge.sources.manager import SourceManager


@pytest.fixture
def topic() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def group() -> str:
    return f"billing-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def producer(kafka: KafkaBroker, topic: str) -> AsyncIterator[AIOKafkaProducer]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    p = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await p.start()
    yield p
    await p.stop()


async def committed(kafka: KafkaBroker, group: str, topic: str, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        result: int | None = await consumer.committed(TopicPartition(topic, partition))
        return result
    finally:
        await consumer.stop()


def group_spec(kafka: KafkaBroker, topic: str, group: str, **extra: object) -> dict[str, object]:
    return {
        "url": kafka.bootstrap,
        "topic": topic,
        "jsonBody": True,
        "consumerGroup": {"groupName": group, "oldest": True, "rebalanceStrategy": "roundrobin"},
        "metadata": {"team": "billing"},
        # Tansu holds a group join for half the session timeout: keep it short in tests
        "config": "consumer:\n  group:\n    session: {timeout: 2s}\n    heartbeat: {interval: 500ms}\n",
        **extra,
    }


async def test_group_consumer_publishes_argo_payloads_and_commits_after_dispatch(
    kafka: KafkaBroker, producer: AIOKafkaProducer, manager: SourceManager, bus: SqliteBus, topic: str, group: str
) -> None:
    await producer.send_and_wait(
        topic,
        b'{"id": 1}',
        key=b"k1",
        partition=0,
        headers=[("trace", b"t-1")],
        timestamp_ms=1714557600123,
    )
    await producer.send_and_wait(topic, b"not json", partition=0)
    await producer.send_and_wait(topic, b'{"id": 3}', key=b"k3", partition=1)
    await manager.apply([make_eventsource("k", kafka={"orders": group_spec(kafka, topic, group)})])
    await wait_for(lambda: _count(bus, 3), within=20)
    events = {(d.event.data["partition"], d.event.id): d.event for d in await bus.list_events()}
    first = events[(0, event_id("k", "orders", kafka.bootstrap, topic, 0, 0))]
    assert first.type == "kafka" and first.subject == "orders"
    assert first.data == {
        "topic": topic,
        "key": "k1",
        "partition": 0,
        "body": {"id": 1},
        "timestamp": "2024-05-01 10:00:00.123 +0000 UTC",
        "headers": {"trace": "t-1"},
        "metadata": {"team": "billing"},
    }
    raw = events[(0, f"k:orders:{kafka.bootstrap}:{topic}:0:1")]
    assert raw.data["body"] == "not json" and raw.data["key"] == ""  # invalid JSON still delivered
    assert events[(1, f"k:orders:{kafka.bootstrap}:{topic}:1:0")].data["body"] == {"id": 3}
    await wait_for(lambda: _committed_is(kafka, group, topic, {0: 2, 1: 1}), within=20)


async def _count(bus: SqliteBus, n: int) -> bool:
    return len(await bus.list_events()) >= n


async def _committed_is(kafka: KafkaBroker, group: str, topic: str, wanted: dict[int, int]) -> bool:
    return {p: await committed(kafka, group, topic, p) for p in wanted} == wanted


async def test_nothing_is_committed_while_the_bus_fails_and_nothing_is_lost(
    kafka: KafkaBroker,
    producer: AIOKafkaProducer,
    references: DictReferences,
    bus: SqliteBus,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    group: str,
) -> None:
    for n in range(3):
        await producer.send_and_wait(topic, json.dumps({"n": n}).encode(), partition=0)
    broken = SqliteBus(tmp_path / "never-started.db")
    failing = SourceManager(broken, references, host="127.0.0.1")
    try:
        with caplog.at_level(logging.WARNING, logger="eventbridge.sources.kafka"):
            await failing.apply([make_eventsource("k", kafka={"orders": group_spec(kafka, topic, group)})])
            await wait_for(lambda: failing.status()[0].state == "retrying", within=20)
        assert "not running" in (failing.status()[0].error or "")
    finally:
        await failing.stop()
    assert await committed(kafka, group, topic, 0) is None
    working = SourceManager(bus, references, host="127.0.0.1")
    try:
        await working.apply([make_eventsource("k", kafka={"orders": group_spec(kafka, topic, group)})])
        await wait_for(lambda: _count(bus, 3), within=20)
        assert sorted(d.event.data["body"]["n"] for d in await bus.list_events()) == [0, 1, 2]
        await wait_for(lambda: _committed_is(kafka, group, topic, {0: 3}), within=20)
    finally:
        await working.stop()


async def test_partition_consumer_starts_at_the_newest_offset_with_base64_bodies(
    kafka: KafkaBroker, producer: AIOKafkaProducer, manager: SourceManager, bus: SqliteBus, topic: str
) -> None:
    await producer.send_and_wait(topic, b"old", partition=1)
    spec = {"url": f"{kafka.bootstrap},127.0.0.1:1", "topic": topic, "partition": "1"}
    await manager.apply([make_eventsource("k", kafka={"p1": spec})])
    for attempt in range(100):  # until the consumer is positioned, new messages keep coming
        await producer.send_and_wait(topic, f"new-{attempt}".encode(), partition=1)
        await producer.send_and_wait(topic, b"other partition", partition=0)
        if await bus.list_events():
            break
        await asyncio.sleep(0.1)
    events = [d.event for d in await bus.list_events()]
    assert events, "no message arrived"
    bodies = [base64.b64decode(e.data["body"]) for e in events]
    assert b"old" not in bodies and b"other partition" not in bodies
    assert all(body.startswith(b"new-") for body in bodies)
    assert all(e.id.startswith(f"k:p1:{kafka.bootstrap}:{topic}:1:") for e in events)  # first url entry


async def test_partition_consumer_of_a_missing_partition_retries_with_the_reason(
    kafka: KafkaBroker, producer: AIOKafkaProducer, manager: SourceManager, topic: str
) -> None:
    spec = {"url": kafka.bootstrap, "topic": topic, "partition": "5"}  # the topic has partitions 0 and 1
    await manager.apply([make_eventsource("k", kafka={"p5": spec})])
    await wait_for(lambda: manager.status()[0].state == "retrying", within=20)
    assert f"partition 5 of topic {topic} is not available (partitions: [0, 1])" in (manager.status()[0].error or "")


def test_go_time_string() -> None:
    assert go_time_string(1714557600000) == "2024-05-01 10:00:00 +0000 UTC"
    assert go_time_string(1714557600120) == "2024-05-01 10:00:00.12 +0000 UTC"
    assert go_time_string(1714557600005) == "2024-05-01 10:00:00.005 +0000 UTC"


def test_lint_of_the_kafka_spec() -> None:
    es = make_eventsource(
        "k",
        kafka={
            "a": {"url": "", "topic": ""},
            "b": {
                "url": "x:1",
                "topic": "t",
                "consumerGroup": {"groupName": "g", "rebalanceStrategy": "magic"},
                "sasl": {"mechanism": "GSSAPI"},
                "connectionBackoff": {"steps": 3},
                "config": "net: {dialTimeout: 5s, keepAlive: 1s}",
            },
        },
    )
    found = {(f.path, f.severity) for f in es.check()}
    assert {
        ("spec.kafka.a.url", "error"),
        ("spec.kafka.a.topic", "error"),
        ("spec.kafka.a.partition", "error"),
    } <= found
    assert ("spec.kafka.b.consumerGroup.rebalanceStrategy", "warning") in found
    assert ("spec.kafka.b.sasl.mechanism", "error") in found
    assert ("spec.kafka.b.connectionBackoff", "warning") in found
    config_findings = [f for f in es.check() if f.path == "spec.kafka.b.config"]
    assert [f.message for f in config_findings] == ["sarama settings not applied by eventbridge: net.keepalive"]
