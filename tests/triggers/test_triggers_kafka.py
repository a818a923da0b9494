"""The kafka trigger against a real Tansu broker (tests/servers/realservers.py); it fails, never
skips, when the broker cannot start."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from realservers import KafkaBroker, tansu_broker

from eventbridge.errors import NotFoundError, PermanentError, TemporaryError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.triggers.base import TriggerServices, action_for
from eventbridge.triggers.kafka import KafkaTriggerAction


@pytest.fixture(scope="module")
def kafka() -> Iterator[KafkaBroker]:
    with tansu_broker() as broker:
        yield broker


class References:
    def secret(self, namespace: str, name: str, key: str) -> str:
        if (name, key) == ("kafka", "token"):
            return "t0ken"
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


EVENT = Event(id="e1", source="webhook", subject="example", type="webhook", namespace="ns",
              data={"body": {"id": "order-7", "amount": 12.5}})


def sensor(kafka_spec: dict[str, Any]) -> Sensor:
    return Sensor.model_validate({
        "kind": "Sensor", "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"dependencies": [{"name": "d", "eventSourceName": "webhook", "eventName": "example"}],
                 "triggers": [{"template": {"name": "produce", "kafka": kafka_spec}}]},
    })


async def consume_one(bootstrap: str, topic: str) -> Any:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"test-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        async with asyncio.timeout(20):
            return await consumer.getone()
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
        record = await consume_one(spec["url"], topic)
    finally:
        await action.close()
    assert record.key == b"order-7"
    assert record.value == b'{"order":"order-7","amount":12.5}'
    assert dict(record.headers) == {"source": b"eventbridge", "token": b"t0ken"}


async def test_payload_is_required_and_unreachable_broker_is_temporary() -> None:
    no_payload = sensor({"url": "127.0.0.1:9", "topic": "t"})
    trigger = no_payload.spec.triggers[0]
    action = action_for(no_payload, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    with pytest.raises(PermanentError, match="payload parameters are not specified"):
        await action.execute(make_call(no_payload, trigger, {"d": EVENT}))
    down = sensor({"url": "127.0.0.1:9", "topic": "t",
                   "payload": [{"src": {"dependencyName": "d", "dataKey": "body.id"}, "dest": "id"}]})
    trigger = down.spec.triggers[0]
    action = action_for(down, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    with pytest.raises(TemporaryError, match="cannot connect"):
        await action.execute(make_call(down, trigger, {"d": EVENT}))
    await action.close()
