"""Argo Events EventBus.

eventbridge has its own buses: embedded mode always uses its SQLite-backed log, cluster mode
uses Kafka and reads ``spec.kafka``. Of a JetStream bus (``jetstream`` or ``jetstreamExotic``),
embedded mode reads the retention in ``streamConfig`` (``maxAge``, ``maxMsgs``: see
:meth:`EventBus.retention`); lint warns that the rest has no effect. NATS Streaming is declared
:func:`unsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import Field

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported
from eventbridge.models.core import SecretKeySelector
from eventbridge.models.eventsource import parse_go_duration

_NOT_OUR_BUS = (
    "embedded mode uses the SQLite log (its retention: EVENTBRIDGE_BUS_MAX_AGE, EVENTBRIDGE_BUS_MAX_EVENTS); "
    "cluster mode uses kafka"
)

_JETSTREAM = (
    "embedded mode keeps events in its SQLite log: of this bus only streamConfig's maxAge and maxMsgs are used, "
    "as the log's retention (EVENTBRIDGE_BUS_MAX_AGE and EVENTBRIDGE_BUS_MAX_EVENTS win when set); "
    "cluster mode uses spec.kafka"
)
#: The keys of a JetStream ``streamConfig`` that embedded mode uses.
RETENTION_KEYS = ("maxAge", "maxMsgs")

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
    """Argo's EventBusSpec: ``kafka`` is cluster mode's bus; of ``jetstream``/``jetstreamExotic``
    embedded mode reads only the retention in ``streamConfig``."""

    nats: dict[str, Any] | None = unsupported(_NOT_OUR_BUS)
    jetstream: dict[str, Any] | None = None
    jetstream_exotic: dict[str, Any] | None = None
    kafka: KafkaBus | None = None

    def jetstreams(self) -> list[tuple[str, dict[str, Any]]]:
        """The JetStream buses set, as (Argo's key, spec)."""
        pairs = (("jetstream", self.jetstream), ("jetstreamExotic", self.jetstream_exotic))
        return [(key, spec) for key, spec in pairs if spec]


@dataclass(frozen=True)
class Retention:
    """A bus's retention: ``max_age`` seconds, ``max_events`` events (``0``: no bound; ``None``: not given)."""

    max_age: float | None = None
    max_events: int | None = None


def _stream_config(raw: object) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A ``streamConfig`` (a YAML text, as Argo takes it) as a mapping, and its problems as
    (key, reason): the retention keys read, as JetStream reads them."""
    if raw in (None, ""):
        return {}, []
    if isinstance(raw, dict):
        config: object = raw
    else:
        try:
            config = yaml.safe_load(str(raw))
        except yaml.YAMLError as exc:
            return {}, [("", f"not YAML: {str(exc).splitlines()[0]}")]
    if config is None:
        return {}, []
    if not isinstance(config, dict):
        return {}, [("", "must be a YAML mapping (maxAge: 72h, maxMsgs: 1000000, ...)")]
    problems: list[tuple[str, str]] = []
    age = config.get("maxAge")
    if age is not None:
        try:
            if parse_go_duration(str(age)) < 0:
                problems.append(("maxAge", "must be 0 (keep all) or more"))
        except ValueError as exc:
            problems.append(("maxAge", f"{age!r} is not a Go duration like 72h or 30m ({exc})"))
    count = config.get("maxMsgs")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        problems.append(("maxMsgs", f"{count!r} is not a whole number (-1 or 0 keeps all)"))
    return config, problems


class EventBus(Manifest):
    kind: Literal["EventBus"] = "EventBus"
    spec: EventBusSpec = Field(default_factory=EventBusSpec)
    status: dict[str, Any] | None = None

    def retention(self) -> Retention:
        """The retention a JetStream ``streamConfig`` asks for (``maxAge``; ``maxMsgs``, where
        JetStream's ``-1`` is no bound); what is not given or not valid stays ``None``."""
        age: float | None = None
        events: int | None = None
        for _, spec in self.spec.jetstreams():
            config, problems = _stream_config(spec.get("streamConfig"))  # ({}, ...) when not a mapping
            bad = {key for key, _ in problems}
            if config.get("maxAge") is not None and "maxAge" not in bad:
                age = parse_go_duration(str(config["maxAge"]))
            if config.get("maxMsgs") is not None and "maxMsgs" not in bad:
                events = max(int(config["maxMsgs"]), 0)
        return Retention(age, events)

    def check(self) -> list[Finding]:
        spec = self.spec
        findings: list[Finding] = []
        for key, jetstream in spec.jetstreams():
            findings.append(Finding(f"spec.{key}", _JETSTREAM, "warning"))
            config, problems = _stream_config(jetstream.get("streamConfig"))
            for field, reason in problems:
                findings.append(Finding(".".join(p for p in (f"spec.{key}.streamConfig", field) if p), reason))
            unused = sorted(str(name) for name in config if name not in RETENTION_KEYS)
            if unused:
                findings.append(
                    Finding(
                        f"spec.{key}.streamConfig",
                        f"{', '.join(unused)}: not used (embedded mode reads only {' and '.join(RETENTION_KEYS)})",
                        "warning",
                    )
                )
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


#: The EventBus that sensors and event sources use when they name none (``eventBusName``).
DEFAULT_EVENT_BUS = "default"


def _loosest(values: list[Any]) -> Any:
    given = [value for value in values if value is not None]
    if not given:
        return None
    return 0 if 0 in given else max(given)


def log_retention(buses: list[EventBus]) -> Retention:
    """The embedded log's retention from the EventBus objects named ``default`` (one log serves
    every namespace, so with several the loosest bound of each kind wins: the log keeps what any
    of them would keep)."""
    wanted = [bus.retention() for bus in buses if bus.name == DEFAULT_EVENT_BUS]
    return Retention(_loosest([r.max_age for r in wanted]), _loosest([r.max_events for r in wanted]))
