"""The EventSource model: Argo's field names, round trip, unsupported markers, check()."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from eventbridge.models.base import UNSUPPORTED_KEY
from eventbridge.models.eventsource import (
    DEFAULT_MAX_PAYLOAD_SIZE,
    EventSource,
    EventSourceSpec,
    WebhookEventSource,
)

ARGO_EXAMPLE = """
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: webhook
spec:
  eventBusName: default
  replicas: 2
  service:
    ports:
      - port: 12000
        targetPort: 12000
  webhook:
    example:
      port: "12000"
      endpoint: /example
      method: POST
      url: http://example.com
      metadata: {team: a}
      authSecret: {name: my-secret, key: token}
      maxPayloadSize: 2048
      serverCertSecret: {name: tls, key: crt}
      serverKeySecret: {name: tls, key: key}
  sqs:
    queued: {region: us-east-1, queue: q}
"""


def load(text: str) -> EventSource:
    return EventSource.model_validate(yaml.safe_load(text))


def messages(es: EventSource) -> list[tuple[str, str, str]]:
    return [(f.path, f.severity, f.message) for f in es.check()]


def webhook_es(**hooks: dict[str, Any]) -> EventSource:
    return EventSource.model_validate({"metadata": {"name": "es"}, "spec": {"webhook": hooks}})


def test_argo_manifest_loads_and_round_trips() -> None:
    es = load(ARGO_EXAMPLE)
    hook = es.spec.webhook["example"]  # type: ignore[index]
    assert isinstance(hook, WebhookEventSource)
    assert (hook.port, hook.endpoint, hook.method, hook.max_payload_size) == (
        "12000",
        "/example",
        "POST",
        2048,
    )
    assert hook.auth_secret is not None and (hook.auth_secret.name, hook.auth_secret.key) == (
        "my-secret",
        "token",
    )
    assert es.spec.replicas == 2 and es.spec.event_bus_name == "default"
    assert [(t, n) for t, n, _ in es.spec.sources()] == [("webhook", "example"), ("sqs", "queued")]
    assert es.dump() == yaml.safe_load(ARGO_EXAMPLE)
    assert messages(es) == []


def test_defaults_and_port_as_number() -> None:
    es = webhook_es(a={"port": 12000, "endpoint": "/a", "method": "POST"})
    hook = es.spec.webhook["a"]  # type: ignore[index]
    assert hook.port == "12000"
    assert hook.max_payload_size == DEFAULT_MAX_PAYLOAD_SIZE == 1048576
    assert "maxPayloadSize" not in es.dump()["spec"]["webhook"]["a"]


IMPLEMENTED = {
    "webhook",
    "calendar",
    "file",
    "kafka",
    "sqs",
    "github",
    "gitlab",
    "bitbucketserver",
    "minio",
    "resource",
}


def test_types_not_run_yet_are_dicts_marked_unsupported() -> None:
    for field_name in EventSourceSpec.SOURCE_FIELDS:
        info = EventSourceSpec.model_fields[field_name]
        reason = (info.json_schema_extra or {}).get(UNSUPPORTED_KEY)  # type: ignore[union-attr]
        if field_name in IMPLEMENTED:
            assert reason is None
        else:
            assert reason == f"event source type {EventSourceSpec.type_key(field_name)} is not supported yet"
    assert EventSourceSpec.type_key("pub_sub") == "pubSub"
    assert EventSourceSpec.type_key("azure_queue_storage") == "azureQueueStorage"
    es = EventSource.model_validate(
        {"metadata": {"name": "x"}, "spec": {"pubSub": {"p": {"topic": "t"}}, "redisStream": {"r": {}}}}
    )
    assert [(t, n, s) for t, n, s in es.spec.sources()] == [
        ("pubSub", "p", {"topic": "t"}),
        ("redisStream", "r", {}),
    ]
    hook_fields = WebhookEventSource.model_fields
    assert UNSUPPORTED_KEY in (hook_fields["basic_auth"].json_schema_extra or {})  # type: ignore[operator]
    for name in ("server_cert_secret", "server_key_secret"):  # HTTPS is served
        assert not hook_fields[name].json_schema_extra


def test_duplicate_event_names_across_types() -> None:
    es = EventSource.model_validate(
        {
            "metadata": {"name": "x"},
            "spec": {
                "webhook": {"dup": {"port": "1", "endpoint": "/a", "method": "POST"}},
                "calendar": {"dup": {"interval": "1s"}},
            },
        }
    )
    [(path, severity, message)] = messages(es)
    assert path == "spec.webhook.dup" and severity == "error"
    assert "also used under spec.calendar" in message


@pytest.mark.parametrize(
    ("hook", "path", "severity", "fragment"),
    [
        ({"port": "1", "method": "POST"}, "endpoint", "error", "endpoint is required"),
        ({"port": "1", "endpoint": "a", "method": "POST"}, "endpoint", "error", "must start with '/'"),
        ({"port": "1", "endpoint": "/health", "method": "POST"}, "endpoint", "error", "reserved"),
        ({"endpoint": "/a", "method": "POST"}, "port", "error", "port is required"),
        ({"port": "http", "endpoint": "/a", "method": "POST"}, "port", "error", "not a number"),
        ({"port": "70000", "endpoint": "/a", "method": "POST"}, "port", "error", "not a number"),
        ({"port": "1", "endpoint": "/a"}, "method", "error", "method is required"),
        ({"port": "1", "endpoint": "/a", "method": "FETCH"}, "method", "error", "is not one of"),
        ({"port": "1", "endpoint": "/a", "method": "post"}, "method", "warning", "write 'POST'"),
        (
            {"port": "1", "endpoint": "/a", "method": "POST", "maxPayloadSize": 0},
            "maxPayloadSize",
            "error",
            "positive",
        ),
        (
            {"port": "1", "endpoint": "/a", "method": "POST", "authSecret": {"key": "k"}},
            "authSecret.name",
            "error",
            "name of a Secret",
        ),
    ],
)
def test_webhook_checks(hook: dict[str, Any], path: str, severity: str, fragment: str) -> None:
    [(got_path, got_severity, message)] = messages(webhook_es(h=hook))
    assert got_path == f"spec.webhook.h.{path}"
    assert got_severity == severity
    assert fragment in message


def test_two_webhooks_on_one_route() -> None:
    es = webhook_es(
        a={"port": "1", "endpoint": "/same", "method": "POST"},
        b={"port": 1, "endpoint": "/same", "method": "GET"},
        c={"port": "2", "endpoint": "/same", "method": "POST"},
    )
    [(path, _, message)] = messages(es)
    assert path == "spec.webhook.b.endpoint"
    assert "already used by spec.webhook.a" in message


def test_every_typed_source_type_is_registered() -> None:
    from eventbridge.sources.manager import load_source_types

    assert set(load_source_types()) == IMPLEMENTED
