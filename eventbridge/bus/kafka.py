"""The Kafka EventBus (Argo's ``EventBus.spec.kafka``) on aiokafka.

* **Topic**: one per EventBus (``topic``, created with ``partitions`` if missing). Records are
  CloudEvents (``Event.to_bytes``) keyed ``<eventsource>.<event>`` (the event's ``source`` and
  ``subject``), so one event source's events keep their order within a partition.
* **Publish**: an idempotent producer with ``acks=all``; ``publish`` returns once the broker
  acknowledged the record. A repeat of an event this process published recently (same
  namespace, source, subject, id; an LRU of ``dedup_window`` keys) is not sent again and returns
  ``False``. Kafka itself has no key-level dedup, so a repeat from another process is stored twice;
  consumers are at-least-once anyway.
* **Subscribe**: each group is a Kafka consumer group with manual commits. A new group starts at
  the topic's end offsets captured when :meth:`KafkaBus.subscribe` is called (or at the start
  with ``from_start``; this process's publishes wait for that capture), so nothing published
  after that call is skipped; an existing group
  resumes after its committed offsets. ``ack`` may come out of order: per partition the committed
  offset only moves over a contiguous prefix of acknowledged records (``atLeastOnce``).
* ``Delivery.offset`` encodes (partition, offset) as ``offset * 1024 + partition``.

TLS and SASL follow Argo's fields: pass an ``ssl.SSLContext`` and ``sasl`` options
(``mechanism``, ``username``, ``password``) from the EventBus's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from eventbridge.bus.base import Delivery
from eventbridge.errors import TemporaryError
from eventbridge.events import Event

log = logging.getLogger(__name__)

PARTITION_SLOTS = 1024


def encode_offset(partition: int, offset: int) -> int:
    return offset * PARTITION_SLOTS + partition


def decode_offset(value: int) -> tuple[int, int]:
    return value % PARTITION_SLOTS, value // PARTITION_SLOTS


def event_key(event: Event) -> bytes:
    """Argo's record key: ``<eventsource>.<event>``."""
    return f"{event.source}.{event.subject}".encode()


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the bus lives and how to reach it."""

    bootstrap_servers: str
    topic: str
    partitions: int = 3
    replication_factor: int = 1
    ssl_context: ssl.SSLContext | None = None
    sasl: dict[str, str] = field(default_factory=dict)
    idempotent: bool = True  # brokers without InitProducerId (Tansu's memory storage) need False
    rebalance_timeout_ms: int = 10_000  # how long a rebalance waits for members to rejoin
    session_timeout_ms: int = 10_000  # a member silent this long leaves the group

    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        protocol = "SSL" if self.ssl_context else "PLAINTEXT"
        if self.sasl:
            protocol = "SASL_SSL" if self.ssl_context else "SASL_PLAINTEXT"
            options["sasl_mechanism"] = self.sasl.get("mechanism", "PLAIN")
            options["sasl_plain_username"] = self.sasl.get("username")
            options["sasl_plain_password"] = self.sasl.get("password")
        if self.ssl_context:
            options["ssl_context"] = self.ssl_context
        options["security_protocol"] = protocol
        return options


class KafkaBus:
    """Bus protocol on a Kafka topic; see the module docstring."""

    def __init__(self, settings: KafkaSettings, *, dedup_window: int = 10_000) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._recent: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self._dedup_window = dedup_window
        self._subscriptions: set[KafkaSubscription] = set()

    async def start(self) -> None:
        """Create the topic if missing and start the producer."""
        admin = AIOKafkaAdminClient(**self.settings.client_options())
        await admin.start()
        try:
            topics = await admin.list_topics()
            if self.settings.topic not in topics:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [NewTopic(self.settings.topic, self.settings.partitions, self.settings.replication_factor)]
                    )
        finally:
            await admin.close()
        producer = AIOKafkaProducer(
            **self.settings.client_options(), enable_idempotence=self.settings.idempotent, acks="all"
        )
        await producer.start()
        self._producer = producer

    async def stop(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> KafkaBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, event: Event) -> bool:
        if self._producer is None:
            raise TemporaryError("the Kafka bus is not started")
        opening = [s._ready for s in self._subscriptions if not s._ready.done()]
        if opening:  # a group subscribed here just now starts before this event
            await asyncio.gather(*opening, return_exceptions=True)
        key = (event.namespace, event.source, event.subject, event.id)
        if key in self._recent:
            self._recent.move_to_end(key)
            return False
        try:
            await self._producer.send_and_wait(self.settings.topic, event.to_bytes(), key=event_key(event))
        except KafkaError as exc:
            raise TemporaryError(f"Kafka did not accept the event: {exc}") from exc
        self._recent[key] = None
        while len(self._recent) > self._dedup_window:
            self._recent.popitem(last=False)
        return True

    def subscribe(self, group: str, *, from_start: bool = False) -> KafkaSubscription:
        subscription = KafkaSubscription(self, group, from_start)
        self._subscriptions.add(subscription)
        return subscription

    def subscription_states(self) -> dict[str, str]:
        """``{group: state}`` of the open subscriptions (see :attr:`KafkaSubscription.state`)."""
        return {s.group: s.state for s in self._subscriptions}


class KafkaSubscription:
    """One consumer group member; iterate for deliveries, ``ack`` each when handled."""

    def __init__(self, bus: KafkaBus, group: str, from_start: bool) -> None:
        self._bus = bus
        self.group = group
        self._from_start = from_start
        self._consumer: AIOKafkaConsumer | None = None
        self._ready = asyncio.ensure_future(self._open())
        self._buffer: list[Delivery] = []
        self._acked: dict[int, set[int]] = {}
        self._committed: dict[int, int] = {}  # partition -> next offset to consume (committed)
        self._lock = asyncio.Lock()

    async def _open(self) -> None:
        settings = self._bus.settings
        consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            rebalance_timeout_ms=settings.rebalance_timeout_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 5),
        )
        await consumer.start()
        try:
            partitions = sorted(consumer.partitions_for_topic(settings.topic) or [])
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = sorted(consumer.partitions_for_topic(settings.topic) or [])
            tps = [TopicPartition(settings.topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            # A new group starts at the ends seen now (or the beginning): commit that position
            # before joining, so nothing published after subscribe() is skipped.
            missing = {}
            for tp in tps:
                if await consumer.committed(tp) is None:
                    missing[tp] = 0 if self._from_start else ends[tp]
            if missing:
                consumer.assign(list(missing))
                for tp, offset in missing.items():
                    consumer.seek(tp, offset)
                await consumer.commit({tp: offset for tp, offset in missing.items()})
                consumer.unsubscribe()
            consumer.subscribe([settings.topic])
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer

    @property
    def state(self) -> str:
        """``opening``; ``open`` once the group's start is committed (anything published from now
        on will be delivered); ``failed`` when opening raised (iterating raises that error)."""
        if not self._ready.done():
            return "opening"
        if self._ready.cancelled() or self._ready.exception() is not None:
            return "failed"
        return "open"

    def __aiter__(self) -> AsyncIterator[Delivery]:
        return self

    async def __anext__(self) -> Delivery:
        await self._ready
        consumer = self._consumer
        if consumer is None:
            raise StopAsyncIteration
        while not self._buffer:
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
            except KafkaError as exc:
                log.warning("Kafka consumer %s: %s; retrying", self.group, exc)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                for record in records:
                    try:
                        event = Event.from_bytes(record.value)
                    except Exception as exc:  # noqa: BLE001  (a foreign record must not stop the group)
                        log.warning("skipping an undecodable record at %s/%d: %s", tp, record.offset, exc)
                        self._acked.setdefault(tp.partition, set()).add(record.offset)
                        continue
                    self._buffer.append(Delivery(event, encode_offset(tp.partition, record.offset)))
        return self._buffer.pop(0)

    async def ack(self, delivery: Delivery) -> None:
        """Mark handled; commit each partition's contiguous acknowledged prefix."""
        partition, offset = decode_offset(delivery.offset)
        consumer = self._consumer
        if consumer is None:
            return
        async with self._lock:
            done = self._acked.setdefault(partition, set())
            done.add(offset)
            tp = TopicPartition(self._bus.settings.topic, partition)
            start = self._committed.get(partition)
            if start is None:
                committed = await consumer.committed(tp)
                start = committed if committed is not None else min(done)
            position = start
            while position in done:
                done.discard(position)
                position += 1
            if position != start:
                try:
                    await consumer.commit({tp: position})
                except KafkaError as exc:  # a rebalance moved the partition: it will be redelivered
                    log.warning("Kafka commit for %s failed: %s", self.group, exc)
                    return
                self._committed[partition] = position

    async def close(self) -> None:
        self._bus._subscriptions.discard(self)
        if not self._ready.done():
            self._ready.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._ready
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
