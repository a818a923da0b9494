"""The Kafka buses of cluster mode: which bus an object uses (its EventBus, else the flags), and a
pool that opens each bus once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventbridge.bus.base import Subscription
from eventbridge.bus.kafka import KafkaBus, KafkaSettings
from eventbridge.errors import (
    InvalidError,
    PermanentError,
    TemporaryError,
)
from eventbridge.events import Event
from eventbridge.models.base import Manifest, References
from eventbridge.models.core import SecretKeySelector
from eventbridge.models.eventbus import EventBus
from eventbridge.runtime.cluster.common import ClusterSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusConfig:
    """What an EventBus (or the flags) says: the Kafka settings and the sensor group options."""

    fingerprint: str
    settings: KafkaSettings = field(compare=False)
    group_prefix: str = "sensor"
    from_start: bool = False


def _ssl_context(tls: Any, namespace: str, references: References) -> ssl.SSLContext:
    def value(selector: SecretKeySelector | None) -> str | None:
        return references.secret(namespace, selector.name, selector.key) if selector is not None else None

    context = ssl.create_default_context()
    ca = value(tls.ca_cert_secret)
    if ca:
        context.load_verify_locations(cadata=ca)
    cert, key = value(tls.client_cert_secret), value(tls.client_key_secret)
    if cert and key:
        with tempfile.TemporaryDirectory(prefix="eventbridge-tls-") as folder:
            cert_file, key_file = Path(folder) / "tls.crt", Path(folder) / "tls.key"
            cert_file.write_text(cert)
            key_file.write_text(key)
            key_file.chmod(0o600)
            context.load_cert_chain(str(cert_file), str(key_file))
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def bus_config(
    settings: ClusterSettings, namespace: str, bus_name: str, eventbus: EventBus | None, references: References
) -> BusConfig:
    """The Kafka bus of EventBus ``namespace/bus_name`` (``spec.kafka``), else the flags' bus.

    Raises InvalidError when neither configures Kafka, or when a secret it names is missing."""
    kafka = eventbus.spec.kafka if eventbus is not None else None
    if eventbus is not None and kafka is None:
        raise InvalidError(f"EventBus {namespace}/{bus_name} has no spec.kafka (cluster mode uses Kafka)")
    url = (kafka.url if kafka is not None else None) or (settings.kafka_bootstrap if eventbus is None else None)
    if not url:
        raise InvalidError(
            f"no EventBus {namespace}/{bus_name} and no Kafka bootstrap servers given "
            "(create the EventBus with spec.kafka.url, or set --kafka-bootstrap / EVENTBRIDGE_KAFKA_BOOTSTRAP)"
        )
    topic = (kafka.topic if kafka is not None else None) or settings.kafka_topic or f"{namespace}-{bus_name}"
    ssl_context: ssl.SSLContext | None = None
    sasl: dict[str, str] = {}
    group_prefix, from_start = "sensor", False
    identity: list[Any] = [url, topic]
    if kafka is not None:
        if kafka.tls is not None and (
            kafka.tls.enabled is not False
            or kafka.tls.ca_cert_secret
            or kafka.tls.client_cert_secret
            or kafka.tls.insecure_skip_verify
        ):
            ssl_context = _ssl_context(kafka.tls, namespace, references)
            identity.append(kafka.tls.dump())
        if kafka.sasl is not None:
            sasl = {"mechanism": (kafka.sasl.mechanism or "PLAIN").upper()}
            if kafka.sasl.user_secret is not None:
                sasl["username"] = references.secret(namespace, kafka.sasl.user_secret.name, kafka.sasl.user_secret.key)
            if kafka.sasl.password_secret is not None:
                selector = kafka.sasl.password_secret
                sasl["password"] = references.secret(namespace, selector.name, selector.key)
            identity.append(hashlib.sha256(json.dumps(sasl, sort_keys=True).encode()).hexdigest())
        group = kafka.consumer_group
        if group is not None:
            group_prefix = group.group_name or group_prefix
            from_start = bool(group.oldest)
    kafka_settings = KafkaSettings(
        bootstrap_servers=url,
        topic=topic,
        partitions=settings.kafka_partitions,
        ssl_context=ssl_context,
        sasl=sasl,
        idempotent=settings.kafka_idempotent,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    identity += [group_prefix, from_start, settings.kafka_partitions, settings.kafka_idempotent]
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return BusConfig(fingerprint, kafka_settings, group_prefix, from_start)


class BusPool:
    """Started Kafka buses by configuration; ``retain`` stops the ones no longer used."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self._buses: dict[str, KafkaBus] = {}
        self._start_timeout = start_timeout

    async def get(self, config: BusConfig) -> KafkaBus:
        bus = self._buses.get(config.fingerprint)
        if bus is None:
            bus = KafkaBus(config.settings)
            try:
                await asyncio.wait_for(bus.start(), self._start_timeout)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await bus.stop()
                if isinstance(exc, Exception):
                    raise TemporaryError(
                        f"Kafka bus {config.settings.bootstrap_servers} topic {config.settings.topic} "
                        f"cannot be reached: {exc or type(exc).__name__}"
                    ) from exc
                raise
            self._buses[config.fingerprint] = bus
            log.info("Kafka bus %s topic %s connected", config.settings.bootstrap_servers, config.settings.topic)
        return bus

    async def retain(self, fingerprints: set[str]) -> None:
        for fingerprint in [f for f in self._buses if f not in fingerprints]:
            await self._buses.pop(fingerprint).stop()

    async def stop(self) -> None:
        await self.retain(set())


class RoutingBus:
    """A publish-only Bus that sends each event to the bus of its EventSource (namespace, name)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], KafkaBus] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, event: Event) -> bool:
        bus = self.routes.get((event.namespace, event.source))
        if bus is None:
            raise TemporaryError(f"EventSource {event.namespace}/{event.source} has no event bus right now")
        return await bus.publish(event)

    def subscribe(self, group: str, *, from_start: bool = False) -> Subscription:
        raise PermanentError("the eventsource role only publishes")


def eventbuses_of(objects: Iterable[Manifest]) -> dict[tuple[str, str], EventBus]:
    return {(m.namespace, m.name): m for m in objects if isinstance(m, EventBus)}


# ---------------------------------------------------------------------------------------------
# Health, readiness and metrics
