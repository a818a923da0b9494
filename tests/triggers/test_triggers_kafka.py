"""The kafka trigger against real brokers (tests/servers/realservers.py): each broker test runs on
Tansu and on Apache Kafka (KRaft); it fails, never skips, when a broker cannot start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from realservers import KafkaBroker, shared_apache_kafka, tansu_broker

from eventbridge.errors import NotFoundError, PermanentError, TemporaryError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.triggers.base import TriggerServices, action_for
from eventbridge.triggers.kafka import KafkaTriggerAction


@pytest.fixture(scope="module", params=["tansu", "apache"])
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaBroker]:
    """A Tansu broker for the module, or the session's Apache Kafka (tests use their own topics)."""
    if request.param == "apache":
        yield shared_apache_kafka()
        return
    with tansu_broker() as broker:
        yield broker


class References:
    def secret(self, namespace: str, name: str, key: str) -> str:
        if (name, key) == ("kafka", "token"):
            return "t0ken"
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


EVENT = Event(
    id="e1",
    source="webhook",
    subject="example",
    type="webhook",
    namespace="ns",
    data={"body": {"id": "order-7", "amount": 12.5}},
)


def sensor(kafka_spec: dict[str, Any]) -> Sensor:
    return Sensor.model_validate(
        {
            "kind": "Sensor",
            "metadata": {"name": "s", "namespace": "ns"},
            "spec": {
                "dependencies": [{"name": "d", "eventSourceName": "webhook", "eventName": "example"}],
                "triggers": [{"template": {"name": "produce", "kafka": kafka_spec}}],
            },
        }
    )


async def consume(bootstrap: str, topic: str, count: int = 1) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"test-{uuid.uuid4().hex[:8]}")  # fmt: skip
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            return [await consumer.getone() for _ in range(count)]
    finally:
        await consumer.stop()


async def test_produces_payload_key_and_headers(kafka: KafkaBroker) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    spec = {
        "url": kafka.bootstrap,
        "topic": topic,
        "partitioningKey": "placeholder",
        "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.id"}, "dest": "partitioningKey"}],
        "payload": [
            {"src": {"dependencyName": "d", "dataKey": "body.id"}, "dest": "order"},
            {"src": {"dependencyName": "d", "dataKey": "body.amount", "useRawData": True}, "dest": "amount"},
        ],
        "headers": {"source": "eventbridge"},
        "secureHeaders": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "kafka", "key": "token"}}}],
    }
    the_sensor = sensor(spec)
    trigger = the_sensor.spec.triggers[0]
    action = action_for(the_sensor, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert isinstance(action, KafkaTriggerAction)
    try:
        outcome = await action.execute(make_call(the_sensor, trigger, {"d": EVENT}))
        assert outcome.summary.startswith(f"produced a record to {topic}/")
        [record] = await consume(kafka.bootstrap, topic)
    finally:
        await action.close()
    assert record.key == b"order-7"
    assert record.value == b'{"order":"order-7","amount":12.5}'
    assert dict(record.headers) == {"source": b"eventbridge", "token": b"t0ken"}


async def test_all_acks_gzip_and_a_fixed_partition(kafka: KafkaBroker) -> None:
    """requiredAcks -1 (every in-sync replica), gzip compression, no linger and a fixed partition."""
    topic = f"audit-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    payload = [{"src": {"dependencyName": "d", "dataKey": "body.id"}, "dest": "id"}]
    spec = {"url": kafka.bootstrap, "topic": topic, "partition": 2, "requiredAcks": -1, "compress": True,
            "flushFrequency": 0, "payload": payload}  # fmt: skip
    the_sensor = sensor(spec)
    trigger = the_sensor.spec.triggers[0]
    action = action_for(the_sensor, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    try:
        summaries = [(await action.execute(make_call(the_sensor, trigger, {"d": EVENT}))).summary for _ in range(3)]
        records = await consume(kafka.bootstrap, topic, 3)
    finally:
        await action.close()
    assert summaries == [f"produced a record to {topic}/2@{n}" for n in range(3)]
    assert [(r.partition, r.offset, r.value) for r in records] == [(2, n, b'{"id":"order-7"}') for n in range(3)]


async def test_payload_is_required_and_unreachable_broker_is_temporary() -> None:
    no_payload = sensor({"url": "127.0.0.1:9", "topic": "t"})
    trigger = no_payload.spec.triggers[0]
    action = action_for(no_payload, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    with pytest.raises(PermanentError, match="payload parameters are not specified"):
        await action.execute(make_call(no_payload, trigger, {"d": EVENT}))
    down = sensor(
        {
            "url": "127.0.0.1:9",
            "topic": "t",
            "payload": [{"src": {"dependencyName": "d", "dataKey": "body.id"}, "dest": "id"}],
        }
    )
    trigger = down.spec.triggers[0]
    action = action_for(down, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    with pytest.raises(TemporaryError, match="cannot connect"):
        await action.execute(make_call(down, trigger, {"d": EVENT}))
    await action.close()
