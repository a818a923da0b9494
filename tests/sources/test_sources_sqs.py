"""The sqs source against moto's real S3 + SQS server on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from realservers import MotoServer, free_port
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources._retry import Reconnector
from eventbridge.sources.manager import SourceManager
from eventbridge.sources.sqs import go_message_attributes

REGION = "us-east-1"


@pytest.fixture
def refs(references: DictReferences) -> DictReferences:
    references.secrets[("team", "aws", "accessKey")] = "testing-key"
    references.secrets[("team", "aws", "secretKey")] = "testing-secret"
    return references


def aws(moto: MotoServer, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret",
    )


@pytest.fixture
def sqs(moto: MotoServer) -> Iterator[Any]:
    client = aws(moto, "sqs")
    yield client
    client.close()


def counts(sqs: Any, url: str) -> tuple[int, int]:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def sqs_spec(moto: MotoServer, queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "region": REGION,
        "queue": queue,
        "endpoint": moto.url,
        "waitTimeSeconds": 1,
        "accessKey": {"name": "aws", "key": "accessKey"},
        "secretKey": {"name": "aws", "key": "secretKey"},
        **extra,
    }


async def test_s3_upload_reaches_the_bus_with_bucket_and_key_and_is_deleted_after(
    moto: MotoServer, sqs: Any, manager: SourceManager, refs: DictReferences, bus: SqliteBus
) -> None:
    s3 = aws(moto, "s3")
    queue_url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="raw-data")
    s3.put_bucket_notification_configuration(
        Bucket="raw-data",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    await manager.apply(
        [make_eventsource("s3", sqs={"upload": sqs_spec(moto, "uploads", jsonBody=True, metadata={"k": "v"})})]
    )
    await asyncio.to_thread(s3.put_object, Bucket="raw-data", Key="incoming/day 1.csv", Body=b"a,b\n1,2\n")
    await wait_for(bus.list_events, within=15)
    await wait_for(lambda: counts(sqs, queue_url) == (0, 0), within=15)  # deleted after dispatch
    (stored,) = await bus.list_events()  # the s3:TestEvent was not published
    event = stored.event
    assert (event.type, event.source, event.subject) == ("sqs", "s3", "upload")
    data = event.data
    assert set(data) == {"messageId", "messageAttributes", "body", "metadata"}
    assert event.id == data["messageId"]
    assert data["metadata"] == {"k": "v"}
    record = data["body"]["Records"][0]
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == "raw-data"
    assert record["s3"]["object"]["key"] in ("incoming%2Fday+1.csv", "incoming/day+1.csv")  # URL-encoded
    s3.close()


async def test_raw_body_is_base64_and_attributes_have_argos_shape(
    moto: MotoServer, sqs: Any, manager: SourceManager, refs: DictReferences, bus: SqliteBus
) -> None:
    url = sqs.create_queue(QueueName="plain")["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=url,
        MessageBody="hello, world",
        MessageAttributes={"team": {"DataType": "String", "StringValue": "ops"}},
    )
    await manager.apply([make_eventsource("q", sqs={"plain": sqs_spec(moto, "plain")})])
    await wait_for(bus.list_events, within=15)
    (stored,) = await bus.list_events()
    assert stored.event.id == sent["MessageId"]
    assert stored.event.data == {
        "messageId": sent["MessageId"],
        "messageAttributes": {
            "team": {
                "BinaryListValues": None,
                "BinaryValue": None,
                "DataType": "String",
                "StringListValues": None,
                "StringValue": "ops",
            }
        },
        "body": base64.b64encode(b"hello, world").decode(),
    }


async def test_message_stays_when_the_bus_cannot_store_it(
    moto: MotoServer, sqs: Any, refs: DictReferences, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqs.create_queue(QueueName="keep")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"n": 1}')
    broken = SqliteBus(tmp_path / "stopped.db")  # never started: every publish fails
    manager = SourceManager(broken, refs, host="127.0.0.1")
    try:
        with caplog.at_level(logging.ERROR, logger="eventbridge.sources.sqs"):
            await manager.apply([make_eventsource("q", sqs={"keep": sqs_spec(moto, "keep", jsonBody=True)})])
            await wait_for(lambda: "failed to record message" in caplog.text, within=15)
        await asyncio.sleep(0.3)
        assert counts(sqs, url) == (0, 1)  # received (in flight), not deleted
    finally:
        await manager.stop()


@pytest.mark.parametrize(("dlq", "left"), [(True, (0, 1)), (False, (0, 0))])
async def test_invalid_json_with_json_body_follows_dlq(
    moto: MotoServer,
    sqs: Any,
    manager: SourceManager,
    refs: DictReferences,
    bus: SqliteBus,
    dlq: bool,
    left: tuple[int, int],
) -> None:
    url = sqs.create_queue(QueueName=f"strict-{dlq}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="{not json")
    sqs.send_message(QueueUrl=url, MessageBody='{"ok": true}')
    await manager.apply(
        [make_eventsource("q", sqs={"strict": sqs_spec(moto, f"strict-{dlq}", jsonBody=True, dlq=dlq)})]
    )
    await wait_for(bus.list_events, within=15)
    await wait_for(lambda: counts(sqs, url) == left, within=15)
    assert [d.event.data["body"] for d in await bus.list_events()] == [{"ok": True}]


async def test_unreachable_endpoint_retries_with_backoff_and_logs_once(
    manager: SourceManager,
    refs: DictReferences,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Reconnector, "initial_delay", 0.1)
    dead = f"http://127.0.0.1:{free_port()}"
    spec = {**sqs_spec(MotoServer(dead, 0), "q")}
    with caplog.at_level(logging.DEBUG, logger="eventbridge.sources.sqs"):
        await manager.apply([make_eventsource("q", sqs={"down": spec})])
        await wait_for(lambda: manager.status()[0].state == "retrying", within=15)
        await wait_for(lambda: len([r for r in caplog.records if "still failing" in r.getMessage()]) >= 2)
    (status,) = manager.status()
    assert "EndpointConnectionError" in (status.error or "")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "retrying with backoff" in warnings[0].getMessage()
    assert "testing-secret" not in caplog.text


def test_message_attribute_conversion() -> None:
    assert go_message_attributes(None) is None
    assert go_message_attributes({"b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}) == {
        "b": {
            "BinaryListValues": None,
            "BinaryValue": "AAE=",
            "DataType": "Binary",
            "StringListValues": None,
            "StringValue": None,
        }
    }
    assert json.dumps(go_message_attributes({})) == "null"
