"""The ``kafka`` event source: consumes a Kafka topic with aiokafka.

Behaviour (Argo's, differences marked):

* ``url``: bootstrap brokers, comma separated. Without ``consumerGroup`` one ``partition`` of
  ``topic`` is read from its newest offset (the partition must exist). With ``consumerGroup``
  (``groupName``, ``oldest`` = start a new group at the earliest offset instead of the newest,
  ``rebalanceStrategy`` ``range`` (default), ``roundrobin`` or ``sticky``) every partition of the
  topic is consumed in the group.
* Event id: ``<eventsource>:<event>:<first url entry>:<topic>:<partition>:<offset>`` (as Argo),
  so a message read twice is stored once by the bus.
* Event data ``{"topic", "key", "partition", "body", "timestamp", "headers", "metadata"}``:
  ``key`` as text (``""`` without a key), ``headers`` as ``{name: text}``, ``timestamp`` in Go's
  ``time.String()`` form in UTC (``2024-05-01 10:00:00.123 +0000 UTC``), ``metadata`` left out
  when empty. ``body``: with ``jsonBody`` the value parsed as JSON, otherwise the value bytes
  base64-encoded (Go's ``[]byte``), as Argo.
* ``jsonBody`` and a value that is not JSON: the event is still published, with ``body`` the
  value as text (base64 if it is not UTF-8) and a warning in the log (*difference*: Argo fails to
  encode it, logs and skips the message, so it is lost).
* Offsets (consumer group mode) are committed **only after the event is durable on the bus**; if
  publishing fails, the consumer restarts from the last committed offset. Without a group nothing
  is committed: after a reconnect reading resumes after the last published message; after a
  process restart it starts at the newest offset (as Argo).
* ``limitEventsPerSecond``: a pause of 1/limit seconds after each message, as Argo.
* ``tls`` (CA, client certificate and key from Secrets, ``insecureSkipVerify``) and ``sasl``
  (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, user and password from Secrets) are applied.
* An unreachable broker never fails ``start()``: the consumer reconnects with capped backoff and
  logs once per state change (the manager reports ``retrying``).
* ``config`` (sarama YAML): ``clientID``, ``consumer.group.session.timeout``,
  ``consumer.group.heartbeat.interval``, ``consumer.group.rebalance.timeout``,
  ``consumer.fetch.min|default|max``, ``consumer.maxWaitTime`` and ``net.dialTimeout`` are
  applied; other keys are logged and reported by lint as not applied.
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (its offset is still committed, as Argo).
* Not supported (lint warns): ``version``, ``connectionBackoff`` (eventbridge's own backoff
  applies), ``schemaRegistry``, ``awsMskIamAuth``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from eventbridge.errors import TemporaryError
from eventbridge.models.eventsource import KafkaEventSource, sarama_config
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources._retry import Reconnector
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, validated_spec

log = logging.getLogger(__name__)

METADATA_WAIT = 5.0  # seconds a partition consumer waits for its topic's metadata before retrying

_ASSIGNORS: dict[str, Any] = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
}


def go_time_string(timestamp_ms: int) -> str:
    """Go's ``time.Time.String()`` of a Kafka timestamp, in UTC: fractional seconds without
    trailing zeros (``2024-05-01 10:00:00.12 +0000 UTC``; none when whole)."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    fraction = f"{timestamp_ms % 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "") + " +0000 UTC"


def event_id(eventsource: str, event_name: str, url: str, topic: str, partition: int, offset: int) -> str:
    """Argo's Kafka event id (the first entry of ``url``, as written)."""
    return f"{eventsource}:{event_name}:{url.split(',')[0]}:{topic}:{partition}:{offset}"


def _text_or_base64(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return base64.b64encode(value).decode()


class KafkaSource:
    """One ``spec.kafka.<event name>`` consumer."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        spec = validated_spec(KafkaEventSource, spec, context, event_name)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.labels = context.labels(event_name)
        self.brokers = [url.strip() for url in spec.url.split(",") if url.strip()]
        self._client_options: dict[str, Any] = {}
        self._next_offset: dict[TopicPartition, int] = {}
        self._loop: Reconnector | None = None
        self._filter: EventFilter | None = None

    @property
    def problem(self) -> str | None:
        return self._loop.problem if self._loop is not None else None

    async def start(self) -> None:
        """Read TLS/SASL secrets, then consume in the background (never waits for the broker)."""
        self._client_options = self._security_options()
        self._filter = EventFilter(self.spec.filter, log, self.labels)
        if self.spec.config:
            options, ignored = sarama_config(self.spec.config)
            self._client_options.update(options)
            if ignored:
                log.warning(
                    "kafka config: sarama settings not applied: %s",
                    ", ".join(sorted(ignored)),
                    extra=self.labels,
                )
        self._loop = Reconnector(f"kafka topic {self.spec.topic}", self._session, logger=log, labels=self.labels)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None

    def _security_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        tls = self.spec.tls
        if tls is not None:
            context = ssl.create_default_context()
            if tls.ca_cert_secret is not None:
                context.load_verify_locations(cadata=self.context.secret(tls.ca_cert_secret))
            if tls.client_cert_secret is not None and tls.client_key_secret is not None:
                self._load_client_cert(
                    context,
                    self.context.secret(tls.client_cert_secret),
                    self.context.secret(tls.client_key_secret),
                )
            if tls.insecure_skip_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            options["ssl_context"] = context
        sasl = self.spec.sasl
        if sasl is not None:
            assert sasl.user_secret is not None and sasl.password_secret is not None
            options["sasl_mechanism"] = sasl.mechanism.upper()
            options["sasl_plain_username"] = self.context.secret(sasl.user_secret)
            options["sasl_plain_password"] = self.context.secret(sasl.password_secret)
        if tls is not None and sasl is not None:
            options["security_protocol"] = "SASL_SSL"
        elif tls is not None:
            options["security_protocol"] = "SSL"
        elif sasl is not None:
            options["security_protocol"] = "SASL_PLAINTEXT"
        return options

    @staticmethod
    def _load_client_cert(context: ssl.SSLContext, cert: str, key: str) -> None:
        # ssl only loads certificate chains from files: write them 0600 and remove them at once
        with tempfile.TemporaryDirectory(prefix="eventbridge-kafka-") as folder:
            cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
            for path, text in ((cert_path, cert), (key_path, key)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(text)
            context.load_cert_chain(cert_path, key_path)

    def _consumer(self) -> AIOKafkaConsumer:
        group = self.spec.consumer_group
        options: dict[str, Any] = {
            "bootstrap_servers": self.brokers,
            "enable_auto_commit": False,
            "client_id": f"eventbridge-{self.context.eventsource.name}-{self.event_name}",
        }
        options.update(self._client_options)
        if group is not None:
            strategy = _ASSIGNORS.get(group.rebalance_strategy, RangePartitionAssignor)
            options.update(
                group_id=group.group_name,
                auto_offset_reset="earliest" if group.oldest else "latest",
                partition_assignment_strategy=(strategy,),
            )
            return AIOKafkaConsumer(self.spec.topic, **options)
        return AIOKafkaConsumer(group_id=None, auto_offset_reset="latest", **options)

    async def _session(self, connected: Any) -> None:
        consumer = self._consumer()
        try:
            await consumer.start()  # inside the try: a consumer that failed to start is closed too
            # Let the tasks start() created take their first step: aiokafka's stop() (0.14) awaits a
            # cancelled task of its own and raises CancelledError when that task never ran, leaving the
            # consumer half closed (seen when a partition check failed right after start()).
            await asyncio.sleep(0)
            if self.spec.consumer_group is None:
                await self._assign_partition(consumer)
            connected()
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=100)
                for partition, records in batches.items():
                    await self._handle_batch(consumer, partition, records)
        finally:
            await consumer.stop()

    async def _assign_partition(self, consumer: AIOKafkaConsumer) -> None:
        number = int(self.spec.partition)
        partition = TopicPartition(self.spec.topic, number)
        # Assigning makes the client ask for this topic's metadata. (Its refreshes name only the topics
        # it tracks; Apache Kafka answers those with those topics alone, some brokers with all.)
        consumer.assign([partition])
        available = await self._partitions_of_topic(consumer)
        if number not in available:
            raise TemporaryError(
                f"partition {number} of topic {self.spec.topic} is not available (partitions: {sorted(available)})"
            )
        if partition in self._next_offset:
            consumer.seek(partition, self._next_offset[partition])
        else:
            await consumer.seek_to_end(partition)
            self._next_offset[partition] = await consumer.position(partition)

    async def _partitions_of_topic(self, consumer: AIOKafkaConsumer) -> set[int]:
        """The topic's partitions once the client's metadata holds them; empty after
        ``METADATA_WAIT`` seconds (the topic does not exist)."""
        deadline = asyncio.get_running_loop().time() + METADATA_WAIT
        while True:
            partitions: set[int] | None = consumer.partitions_for_topic(self.spec.topic)
            if partitions or asyncio.get_running_loop().time() >= deadline:
                return set(partitions or ())
            await asyncio.sleep(0.05)

    async def _handle_batch(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, records: list[ConsumerRecord[Any, Any]]
    ) -> None:
        done: int | None = None
        try:
            for record in records:
                await self._publish(record)
                done = record.offset + 1
                self._next_offset[partition] = done
                if self.spec.limit_events_per_second > 0:
                    await asyncio.sleep(1 / self.spec.limit_events_per_second)
        finally:
            if done is not None and self.spec.consumer_group is not None:
                await consumer.commit({partition: done})

    async def _publish(self, record: ConsumerRecord[Any, Any]) -> None:
        value: bytes = record.value or b""
        body: Any
        if self.spec.json_body:
            try:
                body = json.loads(value)
            except ValueError:
                log.warning(
                    "message %s/%d@%d is not JSON; publishing it as text",
                    record.topic,
                    record.partition,
                    record.offset,
                    extra=self.labels,
                )
                body = _text_or_base64(value)
        else:
            body = base64.b64encode(value).decode()
        data: dict[str, Any] = {
            "topic": record.topic,
            "key": record.key.decode(errors="replace") if record.key else "",
            "partition": record.partition,
            "body": body,
            "timestamp": go_time_string(record.timestamp),
            "headers": {name: (raw or b"").decode(errors="replace") for name, raw in record.headers},
        }
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        if self._filter is not None and not self._filter.accepts(data):
            return
        identity = event_id(
            self.context.eventsource.name,
            self.event_name,
            self.spec.url,
            record.topic,
            record.partition,
            record.offset,
        )
        await self.context.dispatch(self.event_name, data, event_id=identity)


SOURCE_TYPES.register("kafka")(KafkaSource)

__all__ = ["KafkaSource", "event_id", "go_time_string"]
