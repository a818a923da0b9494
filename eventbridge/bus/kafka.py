"""The Kafka EventBus (Argo's ``EventBus.spec.kafka``) on aiokafka.

* **Topic**: one per EventBus (``topic``, created with ``partitions`` if missing). Records are
  CloudEvents (``Event.to_bytes``) keyed ``<eventsource>.<event>`` (the event's ``source`` and
  ``subject``), so one event source's events keep their order within a partition.
* **Publish**: a producer with ``acks=all`` (idempotent unless ``idempotent=False``); ``publish``
  returns once the broker acknowledged the record. A repeat of an event this process published
  recently (same namespace, source, subject, id; an LRU of ``dedup_window`` keys) is not sent again
  and returns ``False``. When the broker does not acknowledge within ``publish_timeout_ms`` (it is
  down, say), ``publish`` raises :class:`TemporaryError`; the record stays queued in the producer,
  and a retry of the same event joins that queued send instead of sending a second record.
  Kafka itself has no key-level dedup, so a repeat from another process is stored twice; the
  subscriptions recognise it (below).
* **Subscribe**: each group is a Kafka consumer group with manual commits. A new group starts at
  the topic's end offsets captured when :meth:`KafkaBus.subscribe` is called (or at the start
  with ``from_start``; this process's publishes wait for that capture), so nothing published
  after that call is skipped; an existing group resumes after its committed offsets.
* **Acknowledgements** (``atLeastOnce``): ``ack`` may come out of order and costs no I/O. Per
  partition, the contiguous prefix of acknowledged records is committed every
  ``commit_interval_ms`` (one commit for all partitions), before a rebalance takes partitions
  away, and on ``close``.
* **Redeliveries**: while a subscription is open it never hands over an event again that it already
  handed over: not a record it acknowledged whose commit did not reach the broker (a broker outage,
  a rebalance), not a record still being handled, and not a second record with the same event key
  (namespace, source, subject, id; an LRU of ``dedup_window`` keys), e.g. from a publisher's retry.
  Such records are acknowledged without being delivered (:attr:`KafkaSubscription.skipped`).
  After a process restart, or when another member takes a partition over, delivery resumes at the
  committed offset: events acknowledged within the last ``commit_interval_ms`` are delivered again
  (the ``argoWorkflow`` trigger recognises them by event id).
* **Speed**: publishes are handed to the producer by one sender task (256 KB batches, no linger);
  the fetch wait is ``fetch_max_wait_ms`` (20 ms) while records flow, ``idle_fetch_max_wait_ms``
  after 2 s without records, and doubles up to 1 s while the broker has records it does not return
  (see :meth:`KafkaSubscription._adapt_fetch_wait`).
* ``Delivery.offset`` encodes (partition, offset) as ``offset * 1024 + partition``.
* **Conditions topics** (:meth:`KafkaBus.conditions`, :class:`KafkaConditions`): the held events of
  a sensor's ``&&`` conditions go through ``<topic>.<namespace>.<sensor>.conditions`` (created on
  first use with the bus topic's partition count), record key = the trigger's name, consumed by the
  group ``<sensor group>:conditions``, so each trigger's state lives on the one replica owning its
  partition; a member that loses a partition in a rebalance forgets it and tells the sensor.

TLS and SASL follow Argo's fields: pass an ``ssl.SSLContext`` and ``sasl`` options
(``mechanism``, ``username``, ``password``) from the EventBus's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from eventbridge import jsontree
from eventbridge.bus.base import ConditionDelivery, Delivery, LostPartitions
from eventbridge.errors import TemporaryError
from eventbridge.events import Event

log = logging.getLogger(__name__)

PARTITION_SLOTS = 1024
PRODUCER_BATCH_BYTES = 256 * 1024  # per partition and request; aiokafka's 16 KB holds only ~15 events of 1 KB
FETCH_WAIT_CEILING_MS = 1000  # the longest fetch wait while a subscription is behind (see _adapt_fetch_wait)
IDLE_AFTER_S = 2.0  # a subscription without records this long uses ``idle_fetch_max_wait_ms``

EventKey = tuple[str, str, str, str]


def encode_offset(partition: int, offset: int) -> int:
    return offset * PARTITION_SLOTS + partition


def decode_offset(value: int) -> tuple[int, int]:
    return value % PARTITION_SLOTS, value // PARTITION_SLOTS


def event_key(event: Event) -> bytes:
    """Argo's record key: ``<eventsource>.<event>``."""
    return f"{event.source}.{event.subject}".encode()


def _copy_outcome(source: asyncio.Future[Any], target: asyncio.Future[None]) -> None:
    """Settle ``target`` as the producer settled ``source`` (acknowledged, or failed)."""
    if target.done():
        return
    if source.cancelled():
        target.set_exception(KafkaError("the send was cancelled"))
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(None)


def identity(event: Event) -> EventKey:
    """What makes two events the same event: (namespace, source, subject, id)."""
    return (event.namespace, event.source, event.subject, event.id)


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
    # The longest a fetch waits at the broker for data. Apache Kafka answers as soon as a record is
    # there; some brokers (Tansu) hold every empty fetch this long, so it bounds delivery latency.
    fetch_max_wait_ms: int = 20
    idle_fetch_max_wait_ms: int = 200  # the same after IDLE_AFTER_S without records: fewer empty fetches
    commit_interval_ms: int = 50  # acknowledged offsets are committed this often (and on rebalance/close)
    publish_timeout_ms: int = 10_000  # publish raises TemporaryError when not acknowledged within this

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
        self.dedup_window = dedup_window
        self._producer: AIOKafkaProducer | None = None
        self._recent: OrderedDict[EventKey, None] = OrderedDict()
        self._sending: dict[EventKey, asyncio.Future[None]] = {}  # published, not acknowledged yet
        self._outbox: deque[tuple[str, bytes, bytes, asyncio.Future[None]]] = deque()  # not handed to the producer yet
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._subscriptions: set[KafkaSubscription] = set()
        self._conditions: KafkaConditions | None = None

    async def start(self) -> None:
        """Create the topic if missing and start the producer."""
        await self._ensure_topic(self.settings.topic, self.settings.partitions)
        producer = AIOKafkaProducer(
            **self.settings.client_options(),
            enable_idempotence=self.settings.idempotent,
            acks="all",
            max_batch_size=PRODUCER_BATCH_BYTES,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self._sender = asyncio.create_task(self._send_loop(producer), name=f"kafka bus {self.settings.topic} sender")

    async def _ensure_topic(self, topic: str, partitions: int) -> None:
        """Create ``topic`` with ``partitions`` unless it exists."""
        admin = AIOKafkaAdminClient(**self.settings.client_options())
        await admin.start()
        try:
            topics = await admin.list_topics()
            if topic not in topics:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([NewTopic(topic, partitions, self.settings.replication_factor)])
        finally:
            await admin.close()

    async def stop(self) -> None:
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        while self._outbox:
            *_, acknowledged = self._outbox.popleft()
            if not acknowledged.done():
                acknowledged.set_exception(KafkaError("the Kafka bus stopped before the event was sent"))
        if self._producer is not None:
            await self._producer.stop()  # waits for what the producer holds to be acknowledged
            self._producer = None

    async def __aenter__(self) -> KafkaBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(self, event: Event) -> bool:
        """Send ``event`` and wait for the broker's acknowledgement; see the module docstring.

        Raises :class:`TemporaryError` (retry later) when the bus is not started, the broker refused
        the record, or no acknowledgement came within ``publish_timeout_ms``."""
        if self._producer is None:
            raise TemporaryError("the Kafka bus is not started")
        opening = [s._ready for s in self._subscriptions if not s._ready.done() and s.topic == self.settings.topic]
        if opening:  # a group subscribed here just now starts before this event
            await asyncio.gather(*opening, return_exceptions=True)
        key = identity(event)
        if key in self._recent:
            self._recent.move_to_end(key)
            return False
        acknowledged = self._sending.get(key)
        joined = acknowledged is not None
        if acknowledged is None:
            acknowledged = asyncio.get_running_loop().create_future()
            self._sending[key] = acknowledged
            acknowledged.add_done_callback(lambda done: self._settled(key, done))
            self._enqueue(self.settings.topic, event.to_bytes(), event_key(event), acknowledged)
        timeout = self.settings.publish_timeout_ms / 1000
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(acknowledged)
        except TimeoutError:
            raise TemporaryError(
                f"Kafka did not acknowledge event {event.id} within {timeout:g}s (is the broker reachable?); "
                "it stays queued, and publishing it again waits for that send instead of sending it twice"
            ) from None
        except KafkaError as exc:
            raise TemporaryError(f"Kafka did not accept the event: {exc}") from exc
        return not joined

    def _enqueue(self, topic: str, value: bytes, key: bytes, acknowledged: asyncio.Future[None]) -> None:
        self._outbox.append((topic, value, key, acknowledged))
        self._outbox_ready.set()

    async def _send_loop(self, producer: AIOKafkaProducer) -> None:
        """Hand queued records to the producer one at a time, in publish order.

        One sender instead of one ``send`` per waiting publish: when the producer's batch is full,
        aiokafka wakes every waiting ``send`` on each drain and all but one go back to sleep, which
        cost more CPU than the rest of the bus at a few thousand events/s."""
        outbox = self._outbox
        while True:
            if not outbox:
                self._outbox_ready.clear()
                await self._outbox_ready.wait()
                continue
            topic, value, key, acknowledged = outbox.popleft()
            try:
                sent = await producer.send(topic, value, key=key)
            except KafkaError as exc:
                if not acknowledged.done():
                    acknowledged.set_exception(exc)
                continue
            except asyncio.CancelledError:
                if not acknowledged.done():
                    acknowledged.set_exception(KafkaError("the Kafka bus stopped before the event was sent"))
                raise
            sent.add_done_callback(lambda done, target=acknowledged: _copy_outcome(done, target))

    def _settled(self, key: EventKey, done: asyncio.Future[None]) -> None:
        """A send finished: forget it; remember its key when the broker acknowledged it."""
        if self._sending.get(key) is done:
            del self._sending[key]
        if done.cancelled() or done.exception() is not None:
            return
        self._recent[key] = None
        while len(self._recent) > self.dedup_window:
            self._recent.popitem(last=False)

    def subscribe(self, group: str, *, from_start: bool = False) -> KafkaSubscription:
        subscription = KafkaSubscription(self, group, from_start)
        self._subscriptions.add(subscription)
        return subscription

    def subscription_states(self) -> dict[str, str]:
        """``{group: state}`` of the open subscriptions (see :attr:`KafkaSubscription.state`),
        conditions subscriptions included."""
        return {s.group: s.state for s in self._subscriptions}

    def assignments(self) -> dict[str, list[int]]:
        """``{group: partitions}`` this process's subscriptions own now (of their own topic)."""
        return {s.group: s.assigned() for s in self._subscriptions}

    def conditions(self) -> KafkaConditions:
        """The sensors' conditions topics on this bus (see :class:`KafkaConditions`); one per bus."""
        if self._conditions is None:
            self._conditions = KafkaConditions(self)
        return self._conditions


@dataclass(slots=True)
class _Partition:
    """Acknowledgement bookkeeping of one partition; kept across rebalances while the subscription is open."""

    fetched: deque[int] = field(default_factory=deque)  # offsets >= position fetched in this assignment, in order
    done: set[int] = field(default_factory=set)  # acknowledged (or skipped) offsets >= position
    handing: set[int] = field(default_factory=set)  # handed to the subscriber, not acknowledged yet
    position: int = -1  # every offset below it is handled (-1: nothing yet); the offset to commit
    fetched_until: int = -1  # the offset after the last one fetched in this assignment
    committed: int = -1  # the last position the broker accepted from this subscription
    generation: int = 0  # counts this member's ownerships of the partition (KafkaConditionsSubscription)

    def advance(self) -> bool:
        """Fold the acknowledged prefix of ``fetched`` into ``position``; True when it moved."""
        fetched, done = self.fetched, self.done
        moved = False
        while fetched and fetched[0] in done:
            offset = fetched.popleft()
            done.discard(offset)
            self.position = offset + 1
            moved = True
        if len(done) > 2 * len(fetched) + 64:  # acks of offsets this assignment will never fetch
            self.done = {offset for offset in done if offset >= self.position}
        return moved


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription
        self._revoked: set[int] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._revoked = {tp.partition for tp in revoked}
        await self._subscription._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        owned = {tp.partition for tp in assigned}
        log.debug("Kafka group %s assigned %s", self._subscription.group, sorted(owned))
        lost, self._revoked = self._revoked - owned, set()
        if lost:
            await self._subscription._lost(lost)


class KafkaSubscription:
    """One consumer group member; iterate for deliveries, ``ack`` each when handled."""

    def __init__(self, bus: KafkaBus, group: str, from_start: bool, topic: str | None = None) -> None:
        self._bus = bus
        self.group = group
        self._from_start = from_start
        self.topic = topic or bus.settings.topic
        self._consumer: AIOKafkaConsumer | None = None
        self._ready = asyncio.ensure_future(self._open())
        self._buffer: deque[tuple[int, int, Any]] = deque()  # (partition, offset, decoded) fetched, not handed out
        self._partitions: dict[int, _Partition] = {}
        self._handed: OrderedDict[EventKey, None] = OrderedDict()  # keys handed out (LRU of dedup_window)
        self._dirty = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._committer: asyncio.Task[None] | None = None
        self.skipped = 0  # records acknowledged without delivery: redeliveries and repeated event keys
        self._last_records = time.monotonic()  # when the last fetch brought records (see _adapt_fetch_wait)
        self._behind = False

    async def _open(self) -> None:
        settings = self._bus.settings
        consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            rebalance_timeout_ms=settings.rebalance_timeout_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 5),
        )
        await consumer.start()
        try:
            partitions = sorted(consumer.partitions_for_topic(self.topic) or [])
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = sorted(consumer.partitions_for_topic(self.topic) or [])
            tps = [TopicPartition(self.topic, p) for p in partitions]
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
                try:
                    await consumer.commit({tp: offset for tp, offset in missing.items()})
                except KafkaError as exc:
                    # Another replica joined the group meanwhile (the broker refuses a commit from
                    # outside an active group): it committed the group's start before joining.
                    log.info("Kafka group %s: the start was not committed here (%s); joining", self.group, exc)
                consumer.unsubscribe()
            consumer.subscribe([self.topic], listener=_CommitBeforeRevoke(self))
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._committer = asyncio.create_task(self._commit_loop(), name=f"kafka commits {self.group}")

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
        buffer = self._buffer
        while True:
            while buffer:
                partition, offset, decoded = buffer.popleft()
                track = self._track(partition)
                delivery = self._deliver(partition, offset, decoded, track)
                if delivery is None:
                    self.skipped += 1
                    track.done.add(offset)
                    if track.advance():
                        self._dirty.set()
                    continue
                track.handing.add(offset)
                return delivery
            if self._consumer is None:
                raise StopAsyncIteration
            await self._fetch(self._consumer)

    def _decode(self, value: bytes) -> Any:
        """A record's value as handed to :meth:`_deliver` (raises on a foreign record)."""
        return Event.from_bytes(value)

    def _deliver(self, partition: int, offset: int, decoded: Any, track: _Partition) -> Delivery | None:
        """The delivery of a fetched record, or None to skip it (acknowledged without delivery)."""
        event: Event = decoded
        key = identity(event)
        if key in self._handed:  # the same event again (another record, e.g. a publisher's retry)
            self._handed.move_to_end(key)
            return None
        self._handed[key] = None
        if len(self._handed) > self._bus.dedup_window:
            self._handed.popitem(last=False)
        return Delivery(event, encode_offset(partition, offset))

    def assigned(self) -> list[int]:
        """The partitions of this subscription's topic its group gave this member."""
        if self._consumer is None:
            return []
        return sorted(tp.partition for tp in self._consumer.assignment() if tp.topic == self.topic)

    def _track(self, partition: int) -> _Partition:
        track = self._partitions.get(partition)
        if track is None:
            track = self._partitions[partition] = _Partition()
        return track

    async def _fetch(self, consumer: AIOKafkaConsumer) -> None:
        """Fill the buffer with records not handled or being handled by this subscription."""
        try:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
        except KafkaError as exc:
            log.warning("Kafka consumer %s: %s; retrying", self.group, exc)
            await asyncio.sleep(1.0)
            return
        if not batches:
            await self._adapt_fetch_wait(consumer)
            return
        self._last_records = time.monotonic()
        if not self._behind and consumer._fetcher._fetch_max_wait_ms != self._bus.settings.fetch_max_wait_ms:
            consumer._fetcher._fetch_max_wait_ms = self._bus.settings.fetch_max_wait_ms  # no longer idle
        moved = False
        for tp, records in batches.items():
            track = self._track(tp.partition)
            fetched, done, handing = track.fetched, track.done, track.handing
            for record in records:
                offset = record.offset
                if offset < track.position or offset < track.fetched_until:
                    # Fetched again: handled here already (its commit had not reached the broker), or
                    # still buffered or being handled (the fetch position moved back, e.g. an offset reset).
                    self.skipped += 1
                    continue
                fetched.append(offset)
                track.fetched_until = offset + 1
                if offset in done:  # acknowledged here out of order before a rebalance
                    self.skipped += 1
                    continue
                if offset in handing:  # handed out before a rebalance, its ack is still to come
                    self.skipped += 1
                    continue
                try:
                    decoded = self._decode(record.value)
                except Exception as exc:  # noqa: BLE001  (a foreign record must not stop the group)
                    log.warning("skipping an undecodable record at %s/%d: %s", tp, offset, exc)
                    done.add(offset)
                    continue
                self._buffer.append((tp.partition, offset, decoded))
            moved = track.advance() or moved
        if moved:
            self._dirty.set()

    async def _adapt_fetch_wait(self, consumer: AIOKafkaConsumer) -> None:
        """After an empty fetch: set how long the broker may hold the next fetch.

        * Behind (the broker has records past our position): a broker that reads from slow storage
          (Tansu on S3 after a restart) answers a fetch with no records when reading takes longer than
          the fetch wait, and keeps doing so for ever with a short wait. So the wait doubles, up to
          ``FETCH_WAIT_CEILING_MS``, until caught up.
        * Caught up: ``fetch_max_wait_ms``, which keeps the latency of new records low on brokers that
          hold every empty fetch (Tansu); after ``IDLE_AFTER_S`` without records,
          ``idle_fetch_max_wait_ms``, so an idle subscription costs a few fetches a second, not fifty.
          The first record fetched brings the short wait back."""
        settings = self._bus.settings
        floor = settings.fetch_max_wait_ms
        fetcher = consumer._fetcher  # aiokafka reads this attribute for every fetch request it builds
        current = int(fetcher._fetch_max_wait_ms)
        behind = False
        for tp in consumer.assignment():
            end = consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = consumer.highwater(tp)
            if end is None:
                continue
            try:
                async with asyncio.timeout(1.0):
                    position = await consumer.position(tp)
            except (KafkaError, TimeoutError):
                continue
            if end > position:
                behind = True
                break
        self._behind = behind
        if behind:
            wanted = min(max(current * 2, floor), max(FETCH_WAIT_CEILING_MS, floor))
        elif time.monotonic() - self._last_records >= IDLE_AFTER_S:
            wanted = max(settings.idle_fetch_max_wait_ms, floor)
        else:
            wanted = floor
        if wanted != current:
            log.debug("Kafka group %s: fetch wait %d ms (%s)", self.group, wanted, "behind" if behind else "caught up")
            fetcher._fetch_max_wait_ms = wanted

    async def ack(self, delivery: Delivery) -> None:
        """Mark handled; the contiguous acknowledged prefix of its partition is committed shortly."""
        partition, offset = decode_offset(delivery.offset)
        track = self._track(partition)
        if isinstance(delivery, ConditionDelivery) and delivery.generation != track.generation:
            return  # handed out before another member owned the partition: that member redelivered it
        track.handing.discard(offset)
        if offset < track.position:
            return
        track.done.add(offset)
        if track.advance():
            self._dirty.set()

    async def _commit_loop(self) -> None:
        interval = self._bus.settings.commit_interval_ms / 1000
        while True:
            await self._dirty.wait()
            await asyncio.sleep(interval)
            self._dirty.clear()
            if not await self._commit():
                self._dirty.set()  # retried after the next interval

    async def _commit(self, only: set[TopicPartition] | None = None) -> bool:
        """Commit every moved position of an assigned partition (``only`` these); False when it failed."""
        consumer = self._consumer
        if consumer is None:
            return True
        async with self._commit_lock:
            assigned = consumer.assignment()
            offsets = {
                tp: track.position
                for tp in (assigned if only is None else only & assigned)
                if (track := self._partitions.get(tp.partition)) is not None and track.position > track.committed
            }
            if not offsets:
                return True
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                # A rebalance or an outage: these records may be fetched again; they are skipped then.
                log.info("Kafka commit for group %s failed: %s", self.group, exc)
                return False
            for tp, position in offsets.items():
                track = self._partitions[tp.partition]
                track.committed = max(track.committed, position)
            return True

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: commit what is acknowledged, and forget what was fetched but not handed out."""
        await self._commit(revoked)
        gone = {tp.partition for tp in revoked}
        if self._buffer:
            keep = [item for item in self._buffer if item[0] not in gone]
            self._buffer.clear()
            self._buffer.extend(keep)
        for partition in gone:
            track = self._partitions.get(partition)
            if track is not None:
                track.fetched.clear()  # fetched again from the committed offset after the rebalance
                track.fetched_until = -1

    async def _lost(self, partitions: set[int]) -> None:
        """After a rebalance: ``partitions`` belong to another member now (nothing to do here)."""

    async def close(self) -> None:
        """Commit what is acknowledged (bounded by the session timeout) and leave the group."""
        self._bus._subscriptions.discard(self)
        if not self._ready.done():
            self._ready.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._ready
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer
            self._committer = None
        if self._consumer is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._bus.settings.session_timeout_ms / 1000):
                    await self._commit()
            await self._consumer.stop()
            self._consumer = None


MAX_TOPIC_LENGTH = 249


def conditions_topic(topic: str, namespace: str, sensor: str) -> str:
    """The conditions topic of Sensor ``namespace/sensor`` on the bus topic ``topic``:
    ``<topic>.<namespace>.<sensor>.conditions`` (a namespace has no dots, so names cannot collide),
    or ``<topic>.<sha256 of namespace/sensor, 16 hex>.conditions`` when that exceeds Kafka's 249 characters."""
    name = f"{topic}.{namespace}.{sensor}.conditions"
    if len(name) <= MAX_TOPIC_LENGTH:
        return name
    digest = hashlib.sha256(f"{namespace}/{sensor}".encode()).hexdigest()[:16]
    return f"{topic[: MAX_TOPIC_LENGTH - 40]}.{digest}.conditions"


class KafkaConditions:
    """The sensors' conditions topics of one :class:`KafkaBus` (:class:`~eventbridge.bus.base.ConditionsBus`).

    The second stage of ``&&`` conditions in cluster mode: the replica that filtered an event forwards
    it for each trigger waiting on it to the sensor's conditions topic (:func:`conditions_topic`,
    created on first use with as many partitions as the bus topic has), record key = the trigger's
    name, so all of one trigger's events land on one partition, owned by one replica of the sensor's
    group ``<group>:conditions``, which keeps that trigger's held events. The record value is
    ``{"trigger", "dependency", "event": CloudEvent}``. Records go through the bus's producer and
    sender, in the order of the ``forward`` calls."""

    def __init__(self, bus: KafkaBus) -> None:
        self._bus = bus
        self._ready: set[str] = set()

    def topic(self, namespace: str, sensor: str) -> str:
        return conditions_topic(self._bus.settings.topic, namespace, sensor)

    async def ensure_topic(self, namespace: str, sensor: str) -> str:
        """Create the sensor's conditions topic unless it exists; returns its name."""
        topic = self.topic(namespace, sensor)
        if topic in self._ready:
            return topic
        producer = self._bus._producer
        if producer is None:
            raise TemporaryError("the Kafka bus is not started")
        partitions = len(await producer.partitions_for(self._bus.settings.topic)) or self._bus.settings.partitions
        await self._bus._ensure_topic(topic, partitions)
        self._ready.add(topic)
        return topic

    def forward(self, namespace: str, sensor: str, trigger: str, dependency: str, event: Event) -> Awaitable[None]:
        """Queue the record now; the awaitable returns once the broker acknowledged it."""
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._bus._producer is None:
            acknowledged.set_exception(TemporaryError("the Kafka bus is not started"))
        else:
            value = jsontree.dumps({"trigger": trigger, "dependency": dependency, "event": event.to_cloudevent()})
            self._bus._enqueue(self.topic(namespace, sensor), value, trigger.encode(), acknowledged)
        return self._stored(acknowledged, f"{namespace}/{sensor}", trigger, event.id)

    async def _stored(self, acknowledged: asyncio.Future[None], sensor: str, trigger: str, event_id: str) -> None:
        """Wait for the broker (warning every ``publish_timeout_ms``; a retry would only store it twice)."""
        timeout = self._bus.settings.publish_timeout_ms / 1000
        while True:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(acknowledged)
                return
            except TimeoutError:
                log.warning("sensor %s trigger %s: Kafka has not acknowledged event %s on the conditions topic "
                            "after %gs; still waiting", sensor, trigger, event_id, timeout)  # fmt: skip
            except KafkaError as exc:
                raise TemporaryError(f"Kafka did not store event {event_id} on the conditions topic: {exc}") from exc

    async def subscribe(
        self, namespace: str, sensor: str, group: str, on_lost: LostPartitions
    ) -> KafkaConditionsSubscription:
        """Join ``group`` on the sensor's conditions topic (created if missing); a new group reads
        it from the start. ``on_lost`` is called with the partitions another member took over."""
        topic = await self.ensure_topic(namespace, sensor)
        subscription = KafkaConditionsSubscription(self._bus, group, topic, on_lost)
        self._bus._subscriptions.add(subscription)
        return subscription


class KafkaConditionsSubscription(KafkaSubscription):
    """A member of a sensor's conditions group: hands out :class:`ConditionDelivery` records.

    Unlike the bus topic's subscription, a record is never skipped for its event id (one event is
    forwarded once per trigger and dependency; the sensor recognises repeats). When a rebalance
    gives a partition to another member, this member forgets it (a later ownership reads it again
    from the committed offset, and acknowledgements of records handed out before are ignored) and
    calls ``on_lost`` so the sensor drops the state built from it."""

    def __init__(self, bus: KafkaBus, group: str, topic: str, on_lost: LostPartitions) -> None:
        super().__init__(bus, group, True, topic)
        self._on_lost = on_lost

    def __aiter__(self) -> AsyncIterator[ConditionDelivery]:
        return self

    async def __anext__(self) -> ConditionDelivery:
        delivery = await super().__anext__()
        assert isinstance(delivery, ConditionDelivery)
        return delivery

    def _decode(self, value: bytes) -> Any:
        record = jsontree.loads(value)
        return str(record["trigger"]), str(record["dependency"]), Event.from_cloudevent(record["event"])

    def _deliver(self, partition: int, offset: int, decoded: Any, track: _Partition) -> Delivery | None:
        trigger, dependency, event = decoded
        return ConditionDelivery(event, encode_offset(partition, offset), trigger, dependency, partition,
                                 track.generation)  # fmt: skip

    async def _lost(self, partitions: set[int]) -> None:
        for partition in partitions:
            old = self._partitions.get(partition)
            self._partitions[partition] = _Partition(generation=(old.generation + 1) if old is not None else 1)
        log.info("Kafka group %s: partitions %s moved to another member", self.group, sorted(partitions))
        try:
            await self._on_lost(set(partitions))
        except Exception:
            log.exception("Kafka group %s: the handler of lost partitions failed", self.group)
