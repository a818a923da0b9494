"""The ``sqs`` event source: long-polls an AWS SQS queue (boto3, in worker threads).

Behaviour (Argo's, differences marked):

* Connects with ``region``, optional ``endpoint`` (e.g. a local moto or LocalStack), and
  ``accessKey``/``secretKey``/``sessionToken`` read from Secrets (without them boto3's default
  chain applies: environment, ``~/.aws``, instance role). The queue URL is looked up by name
  (``queue``), with ``queueAccountId`` as the owner account when set.
* Each long poll asks for up to 10 messages, waits ``waitTimeSeconds`` (default 3), hides them for
  120 s and reads every message attribute.
* A message becomes one event with id = the SQS ``MessageId`` (a duplicate delivery of a standard
  queue is stored once by the bus) and data
  ``{"messageId", "messageAttributes", "body", "metadata"}``: ``messageAttributes`` as Argo's Go
  SDK encodes them (``{name: {"BinaryListValues", "BinaryValue", "DataType", "StringListValues",
  "StringValue"}}``, ``null`` when there are none); ``body`` is the message parsed as JSON with
  ``jsonBody: true``, otherwise the message bytes **base64-encoded** (Go's ``[]byte``), exactly as
  Argo. ``metadata`` is left out when empty.
* The message is **deleted only after the event is durable on the bus**; if publishing fails it
  stays and SQS delivers it again after the visibility timeout.
* ``jsonBody: true`` and a body that is not JSON: with ``dlq: true`` the message is left in the
  queue (so the queue's redrive policy moves it to the dead-letter queue); without ``dlq`` it is
  deleted and logged, as Argo does.
* S3 notifications: the body is S3's ``{"Records": [...]}`` document unchanged, so object keys
  stay URL-encoded as S3 sends them (``my%2Fkey`` or ``a+b.txt``), as in Argo. The ``s3:TestEvent``
  message S3 sends when a notification is configured is deleted without publishing an event
  (*difference*: Argo publishes it, which makes ETL sensors fail on a body without ``Records``).
* The source never fails ``start()`` because AWS is unreachable: the poll loop reconnects with
  capped backoff and logs once per state change (the manager reports ``retrying``).
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
* Not supported yet (lint warns): ``roleARN``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eventbridge.models.eventsource import SQSEventSource
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources._retry import Reconnector
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, validated_spec

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 3
VISIBILITY_TIMEOUT = 120
MAX_MESSAGES = 10


def go_message_attributes(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """boto3's ``MessageAttributes`` in the JSON shape Argo (aws-sdk-go v1) gives them."""
    if not attributes:
        return None

    def b64(value: Any) -> str | None:
        return base64.b64encode(value).decode() if isinstance(value, bytes | bytearray) else None

    out: dict[str, Any] = {}
    for name, value in attributes.items():
        binary_list = value.get("BinaryListValues") or None
        string_list = value.get("StringListValues") or None
        out[name] = {
            "BinaryListValues": [b64(v) for v in binary_list] if binary_list else None,
            "BinaryValue": b64(value.get("BinaryValue")),
            "DataType": value.get("DataType"),
            "StringListValues": list(string_list) if string_list else None,
            "StringValue": value.get("StringValue"),
        }
    return out


def is_s3_test_event(text: str) -> bool:
    """True for the ``{"Event": "s3:TestEvent", ...}`` message S3 sends on configuration."""
    if "s3:TestEvent" not in text:
        return False
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("Event") == "s3:TestEvent"


class SqsSource:
    """One ``spec.sqs.<event name>`` queue consumer."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        spec = validated_spec(SQSEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.labels = context.labels(event_name)
        self.wait_seconds = spec.wait_time_seconds or DEFAULT_WAIT_SECONDS
        self._credentials: dict[str, str] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._loop: Reconnector | None = None
        self._filter: EventFilter | None = None
        self.queue_url: str | None = None

    @property
    def problem(self) -> str | None:
        return self._loop.problem if self._loop is not None else None

    async def start(self) -> None:
        """Read the credentials, then poll in the background (never waits for AWS)."""
        if self.spec.access_key is not None and self.spec.secret_key is not None:
            self._credentials = {
                "aws_access_key_id": self.context.secret(self.spec.access_key),
                "aws_secret_access_key": self.context.secret(self.spec.secret_key),
            }
            if self.spec.session_token is not None:
                self._credentials["aws_session_token"] = self.context.secret(self.spec.session_token)
        self._filter = EventFilter(self.spec.filter, log, self.labels)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"sqs-{self.event_name}")
        self._loop = Reconnector(f"sqs queue {self.spec.queue}", self._session, logger=log, labels=self.labels)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None
        if self._executor is not None:
            # a long poll still running finishes on its own; what it received becomes visible again
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def _blocking(self, fn: Any, /, **kwargs: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(**kwargs))

    def _client(self) -> Any:
        import boto3  # here, not at import: boto3 is large and only these sources need it
        from botocore.config import Config

        config = Config(
            connect_timeout=5,
            read_timeout=self.wait_seconds + 10,
            retries={"max_attempts": 1, "mode": "standard"},  # the Reconnector retries
        )
        return boto3.session.Session().client(
            "sqs",
            region_name=self.spec.region,
            endpoint_url=self.spec.endpoint or None,
            config=config,
            **self._credentials,
        )

    async def _session(self, connected: Any) -> None:
        client = await self._blocking(self._client)
        lookup: dict[str, str] = {"QueueName": self.spec.queue}
        if self.spec.queue_account_id:
            lookup["QueueOwnerAWSAccountId"] = self.spec.queue_account_id
        self.queue_url = (await self._blocking(client.get_queue_url, **lookup))["QueueUrl"]
        connected()
        log.info("listening for messages on %s", self.queue_url, extra=self.labels)
        while True:
            answer = await self._blocking(
                client.receive_message,
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=MAX_MESSAGES,
                VisibilityTimeout=VISIBILITY_TIMEOUT,
                WaitTimeSeconds=self.wait_seconds,
                AttributeNames=["SentTimestamp"],
                MessageAttributeNames=["All"],
            )
            connected()
            for message in answer.get("Messages", []):
                await self._process(client, message)

    async def _process(self, client: Any, message: dict[str, Any]) -> None:
        text = str(message.get("Body", ""))
        message_id = str(message["MessageId"])
        if is_s3_test_event(text):
            log.info("deleting the s3:TestEvent message %s (not an event)", message_id, extra=self.labels)
            await self._delete(client, message)
            return
        body: Any
        if self.spec.json_body:
            try:
                body = json.loads(text)
            except ValueError:
                if self.spec.dlq:
                    log.error(
                        "message %s is not JSON; leaving it for the dead-letter queue",
                        message_id,
                        extra=self.labels,
                    )
                else:
                    log.error(
                        "message %s is not JSON; deleting it (set dlq to keep it)",
                        message_id,
                        extra=self.labels,
                    )
                    await self._delete(client, message)
                return
        else:
            body = base64.b64encode(text.encode()).decode()
        data: dict[str, Any] = {
            "messageId": message_id,
            "messageAttributes": go_message_attributes(message.get("MessageAttributes")),
            "body": body,
        }
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        if self._filter is None or self._filter.accepts(data):
            try:
                await self.context.dispatch(self.event_name, data, event_id=message_id)
            except Exception as exc:  # noqa: BLE001
                log.error(
                    "failed to record message %s (it will be delivered again): %s",
                    message_id,
                    exc,
                    extra=self.labels,
                )
                return
        await self._delete(client, message)

    async def _delete(self, client: Any, message: dict[str, Any]) -> None:
        try:
            await self._blocking(client.delete_message, QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:  # noqa: BLE001 - it comes back after the visibility timeout; the bus dedups it
            log.warning("failed to delete message %s: %s", message.get("MessageId"), exc, extra=self.labels)


SOURCE_TYPES.register("sqs")(SqsSource)

__all__ = ["SqsSource", "go_message_attributes", "is_s3_test_event"]
