"""Argo Events EventBus.

eventbridge has its own buses: embedded mode always uses its SQLite-backed log (the EventBus
object is accepted but nothing in it is used), cluster mode uses Kafka and reads ``spec.kafka``.
Argo's NATS Streaming and JetStream buses are declared :func:`unsupported` so lint says so.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported
from eventbridge.models.core import SecretKeySelector

_NOT_OUR_BUS = (
    "embedded mode uses the SQLite log (its retention: EVENTBRIDGE_BUS_MAX_AGE, EVENTBRIDGE_BUS_MAX_EVENTS); "
    "cluster mode uses kafka"
)

KAFKA_PARTITIONERS = ("random", "hash", "roundrobin", "manual")
KAFKA_REBALANCE_STRATEGIES = ("range", "sticky", "roundrobin")
SASL_MECHANISMS = ("PLAIN", "OAUTHBEARER", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI")


class TLSConfig(ArgoModel):
    """Argo's TLSConfig (client TLS towards Kafka and other brokers)."""

    ca_cert_secret: SecretKeySelector | None = None
    client_cert_secret: SecretKeySelector | None = None
    client_key_secret: SecretKeySelector | None = None
    insecure_skip_verify: bool | None = None
    enabled: bool | None = None


class SASLConfig(ArgoModel):
    """Argo's SASLConfig. Argo treats an empty or unknown mechanism as PLAIN."""

    mechanism: str | None = None
    user_secret: SecretKeySelector | None = None
    password_secret: SecretKeySelector | None = None


class KafkaConsumerGroup(ArgoModel):
    """Consumer group settings; Argo's default group name is ``{namespace}-{sensor}``."""

    group_name: str | None = None
    oldest: bool | None = None
    rebalance_strategy: str | None = None


class KafkaBus(ArgoModel):
    """Argo's KafkaBus: an existing Kafka cluster used as the event bus (cluster mode)."""

    url: str | None = None
    topic: str | None = None
    version: str | None = None
    tls: TLSConfig | None = None
    sasl: SASLConfig | None = None
    consumer_group: KafkaConsumerGroup | None = None
    partitioner: str | None = None


class EventBusSpec(ArgoModel):
    """Argo's EventBusSpec; only ``kafka`` has a meaning here (and only in cluster mode)."""

    nats: dict[str, Any] | None = unsupported(_NOT_OUR_BUS)
    jetstream: dict[str, Any] | None = unsupported(_NOT_OUR_BUS)
    jetstream_exotic: dict[str, Any] | None = unsupported(_NOT_OUR_BUS)
    kafka: KafkaBus | None = None


class EventBus(Manifest):
    kind: Literal["EventBus"] = "EventBus"
    spec: EventBusSpec = Field(default_factory=EventBusSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        spec = self.spec
        findings: list[Finding] = []
        if not (spec.nats or spec.jetstream or spec.jetstream_exotic or spec.kafka):
            findings.append(
                Finding(
                    "spec",
                    "no bus configured (Argo requires nats, jetstream, jetstreamExotic or kafka); "
                    "embedded mode uses its SQLite log, cluster mode needs spec.kafka",
                    "warning",
                )
            )
        kafka = spec.kafka
        if kafka is None:
            return findings
        if not kafka.url:
            findings.append(Finding("spec.kafka.url", "required: Kafka bootstrap servers (host:port,...)"))
        if kafka.partitioner and kafka.partitioner not in KAFKA_PARTITIONERS:
            findings.append(Finding("spec.kafka.partitioner", f"must be one of {', '.join(KAFKA_PARTITIONERS)}"))
        group = kafka.consumer_group
        if group and group.rebalance_strategy and group.rebalance_strategy not in KAFKA_REBALANCE_STRATEGIES:
            findings.append(
                Finding(
                    "spec.kafka.consumerGroup.rebalanceStrategy",
                    f"must be one of {', '.join(KAFKA_REBALANCE_STRATEGIES)}",
                )
            )
        if kafka.sasl and kafka.sasl.mechanism and kafka.sasl.mechanism not in SASL_MECHANISMS:
            findings.append(
                Finding(
                    "spec.kafka.sasl.mechanism",
                    f"unknown mechanism; Argo falls back to PLAIN (known: {', '.join(SASL_MECHANISMS)})",
                    "warning",
                )
            )
        return findings
