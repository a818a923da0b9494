"""Argo Events EventSource (``argoproj.io/v1alpha1``).

``spec`` has one map per source type; the map key is the **event name** (the CloudEvent
``subject``), the type key (``webhook``, ``github``...) is the CloudEvent ``type``. Types that
eventbridge does not run yet are kept as plain dicts and marked ``unsupported`` so lint warns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from eventbridge.models.base import ArgoModel, Finding, Manifest, unsupported

#: Argo's default for ``maxPayloadSize`` (1 MiB).
DEFAULT_MAX_PAYLOAD_SIZE = 1048576

#: Methods a webhook endpoint may declare.
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: Paths every webhook port answers itself.
RESERVED_ENDPOINTS = ("/health",)


def _not_yet(type_key: str) -> Any:
    return unsupported(f"event source type {type_key} is not supported yet")


class SecretKeySelector(ArgoModel):
    """Kubernetes ``SecretKeySelector``: one key of a Secret in the EventSource's namespace."""

    name: str = ""
    key: str
    optional: bool | None = None


class BasicAuth(ArgoModel):
    username: SecretKeySelector | None = None
    password: SecretKeySelector | None = None


class EventSourceFilter(ArgoModel):
    """``filter.expression``: an expr-lang boolean evaluated on the event data before publishing."""

    expression: str | None = None


class WebhookContext(ArgoModel):
    """Argo's ``WebhookContext``: where and how an HTTP endpoint listens.

    ``port`` is a string in Argo; an integer in YAML is accepted and turned into a string.
    """

    endpoint: str = ""
    method: str = ""
    port: str = ""
    url: str = ""
    server_cert_secret: SecretKeySelector | None = unsupported(
        "TLS on webhook ports is not supported yet; terminate TLS in a proxy in front of eventbridge"
    )
    server_key_secret: SecretKeySelector | None = unsupported(
        "TLS on webhook ports is not supported yet; terminate TLS in a proxy in front of eventbridge"
    )
    metadata: dict[str, str] | None = None
    auth_secret: SecretKeySelector | None = None
    max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE
    basic_auth: BasicAuth | None = unsupported("webhook basicAuth is not supported yet; use authSecret")

    @field_validator("port", mode="before")
    @classmethod
    def _port_as_string(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    def check_context(self, path: str) -> list[Finding]:
        """Semantic problems of this context; ``path`` is where it sits in the manifest."""
        findings: list[Finding] = []
        if not self.endpoint:
            findings.append(Finding(f"{path}.endpoint", "endpoint is required, e.g. /push"))
        elif not self.endpoint.startswith("/"):
            findings.append(Finding(f"{path}.endpoint", f"endpoint {self.endpoint!r} must start with '/'"))
        elif self.endpoint in RESERVED_ENDPOINTS:
            findings.append(
                Finding(f"{path}.endpoint", f"endpoint {self.endpoint} is reserved for the health check")
            )
        if not self.port:
            findings.append(Finding(f"{path}.port", 'port is required, e.g. "12000"'))
        elif self.port_number() is None:
            findings.append(
                Finding(f"{path}.port", f"port {self.port!r} is not a number between 0 and 65535")
            )
        if not self.method:
            findings.append(
                Finding(f"{path}.method", f"method is required: one of {', '.join(WEBHOOK_METHODS)}")
            )
        elif self.method.upper() not in WEBHOOK_METHODS:
            findings.append(
                Finding(
                    f"{path}.method", f"method {self.method!r} is not one of {', '.join(WEBHOOK_METHODS)}"
                )
            )
        elif self.method != self.method.upper():
            findings.append(
                Finding(
                    f"{path}.method",
                    f"Argo compares methods case-sensitively; write {self.method.upper()!r}",
                    "warning",
                )
            )
        if self.max_payload_size <= 0:
            findings.append(
                Finding(f"{path}.maxPayloadSize", "maxPayloadSize must be a positive number of bytes")
            )
        if self.auth_secret is not None and not self.auth_secret.name:
            findings.append(Finding(f"{path}.authSecret.name", "authSecret needs the name of a Secret"))
        return findings

    def port_number(self) -> int | None:
        """``port`` as an int, or ``None`` when it is not a valid TCP port."""
        text = self.port.strip()
        if not text.isdigit():
            return None
        number = int(text)
        return number if 0 <= number <= 65535 else None


class WebhookEventSource(WebhookContext):
    """``spec.webhook.<event name>``: an inline WebhookContext plus ``filter``."""

    filter: EventSourceFilter | None = unsupported(
        "filter.expression on event sources is not supported yet; filter in the Sensor instead"
    )


class EventSourceSpec(ArgoModel):
    """Argo's EventSourceSpec: deployment settings plus one map per source type."""

    event_bus_name: str | None = None
    template: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    replicas: int | None = None

    webhook: dict[str, WebhookEventSource] | None = None

    minio: dict[str, dict[str, Any]] | None = _not_yet("minio")
    calendar: dict[str, dict[str, Any]] | None = _not_yet("calendar")
    file: dict[str, dict[str, Any]] | None = _not_yet("file")
    resource: dict[str, dict[str, Any]] | None = _not_yet("resource")
    amqp: dict[str, dict[str, Any]] | None = _not_yet("amqp")
    kafka: dict[str, dict[str, Any]] | None = _not_yet("kafka")
    mqtt: dict[str, dict[str, Any]] | None = _not_yet("mqtt")
    nats: dict[str, dict[str, Any]] | None = _not_yet("nats")
    sns: dict[str, dict[str, Any]] | None = _not_yet("sns")
    sqs: dict[str, dict[str, Any]] | None = _not_yet("sqs")
    pub_sub: dict[str, dict[str, Any]] | None = _not_yet("pubSub")
    github: dict[str, dict[str, Any]] | None = _not_yet("github")
    gitlab: dict[str, dict[str, Any]] | None = _not_yet("gitlab")
    hdfs: dict[str, dict[str, Any]] | None = _not_yet("hdfs")
    slack: dict[str, dict[str, Any]] | None = _not_yet("slack")
    storage_grid: dict[str, dict[str, Any]] | None = _not_yet("storageGrid")
    azure_events_hub: dict[str, dict[str, Any]] | None = _not_yet("azureEventsHub")
    stripe: dict[str, dict[str, Any]] | None = _not_yet("stripe")
    emitter: dict[str, dict[str, Any]] | None = _not_yet("emitter")
    redis: dict[str, dict[str, Any]] | None = _not_yet("redis")
    nsq: dict[str, dict[str, Any]] | None = _not_yet("nsq")
    pulsar: dict[str, dict[str, Any]] | None = _not_yet("pulsar")
    generic: dict[str, dict[str, Any]] | None = _not_yet("generic")
    bitbucketserver: dict[str, dict[str, Any]] | None = _not_yet("bitbucketserver")
    bitbucket: dict[str, dict[str, Any]] | None = _not_yet("bitbucket")
    redis_stream: dict[str, dict[str, Any]] | None = _not_yet("redisStream")
    azure_service_bus: dict[str, dict[str, Any]] | None = _not_yet("azureServiceBus")
    azure_queue_storage: dict[str, dict[str, Any]] | None = _not_yet("azureQueueStorage")
    sftp: dict[str, dict[str, Any]] | None = _not_yet("sftp")
    gerrit: dict[str, dict[str, Any]] | None = _not_yet("gerrit")
    mns: dict[str, dict[str, Any]] | None = _not_yet("mns")

    #: Python field names of the per-type maps, in Argo's order.
    SOURCE_FIELDS: ClassVar[tuple[str, ...]] = (
        "minio", "calendar", "file", "resource", "webhook", "amqp", "kafka", "mqtt", "nats", "sns",
        "sqs", "pub_sub", "github", "gitlab", "hdfs", "slack", "storage_grid", "azure_events_hub",
        "stripe", "emitter", "redis", "nsq", "pulsar", "generic", "bitbucketserver", "bitbucket",
        "redis_stream", "azure_service_bus", "azure_queue_storage", "sftp", "gerrit", "mns",
    )  # fmt: skip

    @classmethod
    def type_key(cls, field_name: str) -> str:
        """Argo's spec key (e.g. ``pubSub``) for a Python field name (``pub_sub``)."""
        return cls.model_fields[field_name].alias or field_name

    def sources(self) -> Iterator[tuple[str, str, Any]]:
        """Every configured event as ``(type key, event name, spec)``, in Argo's type order."""
        for field_name in self.SOURCE_FIELDS:
            entries = getattr(self, field_name)
            if entries:
                key = self.type_key(field_name)
                for event_name, spec in entries.items():
                    yield key, event_name, spec


class EventSource(Manifest):
    kind: Literal["EventSource"] = "EventSource"
    spec: EventSourceSpec = Field(default_factory=EventSourceSpec)
    status: dict[str, Any] | None = None

    def check(self) -> list[Finding]:
        """Duplicate event names across types, webhook endpoint problems, route clashes."""
        findings: list[Finding] = []
        first_seen: dict[str, str] = {}
        routes: dict[tuple[str, str], str] = {}
        for type_key, event_name, spec in self.spec.sources():
            path = f"spec.{type_key}.{event_name}"
            if event_name in first_seen:
                findings.append(
                    Finding(
                        path,
                        f"event name {event_name!r} is also used under spec.{first_seen[event_name]}; "
                        "event names must be unique across all types of one EventSource",
                    )
                )
            else:
                first_seen[event_name] = type_key
            if isinstance(spec, WebhookContext):
                findings.extend(spec.check_context(path))
                if spec.endpoint and spec.port:
                    route = (spec.port.strip(), spec.endpoint)
                    if route in routes:
                        findings.append(
                            Finding(
                                f"{path}.endpoint",
                                f"port {route[0]} endpoint {route[1]} is already used by {routes[route]}",
                            )
                        )
                    else:
                        routes[route] = path
        return findings
