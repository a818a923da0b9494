"""Secret/ConfigMap references from loaded manifests, and parse_manifest for API input."""

from __future__ import annotations

import base64

import pytest

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.models.core import ConfigMap, Secret
from eventbridge.models.eventbus import EventBus
from eventbridge.models.kinds import KINDS, parse_manifest
from eventbridge.models.loader import load_text
from eventbridge.models.references import ManifestReferences, env_var_name


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: github, namespace: ci}}
data:
  token: {b64("from-data")}
  webhook: {b64("hook-secret")}
stringData:
  token: from-string-data
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data:
  region: eu-west-1
---
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {{name: default}}
spec: {{kafka: {{url: "k:9092"}}}}
"""


def references(environ: dict[str, str] | None = None) -> ManifestReferences:
    result = load_text(MANIFESTS, "refs.yaml")
    assert result.errors == []
    return ManifestReferences(result.manifests, environ=environ)


def test_string_data_wins_over_data() -> None:
    refs = references()
    assert refs.secret("ci", "github", "token") == "from-string-data"
    assert refs.secret("ci", "github", "webhook") == "hook-secret"
    assert refs.config_map("default", "settings", "region") == "eu-west-1"


def test_not_found_messages_name_the_key_never_a_value() -> None:
    refs = references()
    with pytest.raises(NotFoundError) as missing_key:
        refs.secret("ci", "github", "password")
    text = str(missing_key.value)
    assert "secret ci/github has no key 'password'" in text
    assert "from-string-data" not in text and "hook-secret" not in text
    with pytest.raises(NotFoundError, match=r"secret default/github not found"):
        refs.secret("default", "github", "token")  # other namespace
    with pytest.raises(NotFoundError, match=r"configmap default/settings has no key 'zone'"):
        refs.config_map("default", "settings", "zone")
    with pytest.raises(NotFoundError, match=r"configmap default/other not found"):
        refs.config_map("default", "other", "zone")


def test_environment_fallback_only_when_asked() -> None:
    assert env_var_name("SECRET", "github-access", "token") == "EVENTBRIDGE_SECRET_GITHUB_ACCESS_TOKEN"
    environ = {
        "EVENTBRIDGE_SECRET_SLACK_TOKEN": "env-token",
        "EVENTBRIDGE_SECRET_GITHUB_TOKEN": "loses",
        "EVENTBRIDGE_CONFIGMAP_SETTINGS_ZONE": "b",
    }
    refs = references(environ)
    assert refs.secret("any", "slack", "token") == "env-token"
    assert refs.secret("ci", "github", "token") == "from-string-data"
    assert refs.config_map("default", "settings", "zone") == "b"
    with pytest.raises(NotFoundError, match="EVENTBRIDGE_SECRET_SLACK_OTHER"):
        refs.secret("any", "slack", "other")
    with pytest.raises(NotFoundError):
        references().secret("any", "slack", "token")


def test_undecodable_secret_data_is_reported_without_the_value() -> None:
    secret = Secret.model_validate(
        {"kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "%%notbase64"}}
    )
    assert [f.path for f in secret.check()] == ["data.k"]
    with pytest.raises(InvalidError) as raised:
        ManifestReferences([secret]).secret("default", "s", "k")
    assert "%%notbase64" not in str(raised.value)
    result = load_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  k: '%%secret%%'\n", "s.yaml"
    )
    assert [str(d) for d in result.errors] == [
        "s.yaml:5: Secret/s: data.k: not valid base64 (or not UTF-8 once decoded)"
    ]


def test_parse_manifest_returns_the_model() -> None:
    bus = parse_manifest(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "EventBus",
            "metadata": {"name": "b"},
            "spec": {"kafka": {"url": "k:1"}},
        }
    )
    assert isinstance(bus, EventBus)
    assert bus.spec.kafka is not None and bus.spec.kafka.url == "k:1"
    cm = parse_manifest(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    )
    assert isinstance(cm, ConfigMap)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": 1}},
            "ConfigMap/c: data.a: Input should be a valid string",
        ),
        (
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "EventBus",
                "metadata": {"name": "b"},
                "spec": {"kafka": {}},
            },
            "EventBus/b: spec.kafka.url: required: Kafka bootstrap servers (host:port,...)",
        ),
        (
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}},
            "Service/s: kind Service (v1) is not used by eventbridge; expected one of: "
            + ", ".join(sorted({kind for _, kind in KINDS})),
        ),
        (
            {"kind": "ConfigMap", "metadata": {"name": "c"}},
            "ConfigMap/c: apiVersion: required field is missing",
        ),
        ({}, "?/?: not a Kubernetes manifest: apiVersion and kind are missing"),
        (
            {"apiVersion": "v1", "kind": "ConfigMap"},
            "ConfigMap/?: metadata: required: metadata.name (or metadata.generateName)",
        ),
    ],
)
def test_parse_manifest_raises_readable_errors(obj: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidError) as raised:
        parse_manifest(obj)
    assert str(raised.value) == message


def test_parse_manifest_refuses_deep_documents() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(500):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(InvalidError, match="nests deeper than"):
        parse_manifest({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "extra": deep})
