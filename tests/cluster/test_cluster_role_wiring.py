"""The cluster roles' wiring in this process, on the real API server (and Tansu where a bus is needed):
secrets from Kubernetes Secrets, EventBus -> Kafka settings, live reload of EventSources, the
single-active sources under a Lease, last good versions of invalid objects."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubecluster import KubeCluster, free_port, service_account_token
from kubernetes import client as k8s

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.models.eventbus import EventBus
from eventbridge.models.eventsource import EventSource
from eventbridge.models.kinds import parse_manifest
from eventbridge.runtime.cluster import (
    ClusterSettings,
    EventSourceRole,
    KubeReferences,
    ManifestCache,
    bus_config,
    split_single_active,
)
from eventbridge.store.kube import KubeForbiddenError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import KafkaBroker, tansu_broker

GROUP, VERSION = "argoproj.io", "v1alpha1"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with tansu_broker() as b:
        yield b


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create_secret(cluster: KubeCluster, namespace: str, name: str, data: dict[str, str]) -> None:
    with cluster.api_client() as api:
        k8s.CoreV1Api(api).create_namespaced_secret(
            namespace, {"metadata": {"name": name}, "data": {k: b64(v) for k, v in data.items()}}
        )


def test_references_read_secrets_and_configmaps_with_the_roles_rbac(
    cluster: KubeCluster, namespace: str, role_token: str
) -> None:
    create_secret(cluster, namespace, "kafka-user", {"user": "alice", "password": "s3cret-value"})
    with cluster.api_client() as api:
        k8s.CoreV1Api(api).create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"k": "v"}})
    references = KubeReferences(cluster.api_client(role_token))
    try:
        assert references.secret(namespace, "kafka-user", "password") == "s3cret-value"
        assert references.config_map(namespace, "cfg", "k") == "v"
        with pytest.raises(NotFoundError, match="has no key 'token'") as missing_key:
            references.secret(namespace, "kafka-user", "token")
        assert "s3cret" not in str(missing_key.value)
        with pytest.raises(NotFoundError, match=f"secret {namespace}/absent"):
            references.secret(namespace, "absent", "x")
    finally:
        references.close()
    # The step Pods' account may not read Secrets: the error says which permission is missing.
    with cluster.api_client() as api:
        executor_token = service_account_token(api, namespace, "eventbridge-executor")
    forbidden = KubeReferences(cluster.api_client(executor_token))
    try:
        with pytest.raises(KubeForbiddenError, match="secrets"):
            forbidden.secret(namespace, "kafka-user", "user")
    finally:
        forbidden.close()


def eventbus(namespace: str, name: str, kafka: Obj) -> EventBus:
    manifest = parse_manifest(
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": {"name": name, "namespace": namespace},
         "spec": {"kafka": kafka}}
    )  # fmt: skip
    assert isinstance(manifest, EventBus)
    return manifest


def test_bus_config_from_the_eventbus_object_or_the_flags(
    cluster: KubeCluster, namespace: str, role_token: str
) -> None:
    create_secret(cluster, namespace, "kafka-user", {"user": "alice", "password": "pw"})
    references = KubeReferences(cluster.api_client(role_token))
    settings = ClusterSettings(namespace=namespace, kafka_idempotent=False)
    try:
        bus = eventbus(
            namespace,
            "main",
            {
                "url": "k1:9092,k2:9092",
                "sasl": {
                    "mechanism": "scram-sha-512",
                    "userSecret": {"name": "kafka-user", "key": "user"},
                    "passwordSecret": {"name": "kafka-user", "key": "password"},
                },
                "consumerGroup": {"groupName": "team-a", "oldest": True},
            },
        )
        config = bus_config(settings, namespace, "main", bus, references)
        assert config.settings.bootstrap_servers == "k1:9092,k2:9092"
        assert config.settings.topic == f"{namespace}-main"  # Argo's default topic name
        assert config.settings.sasl == {"mechanism": "SCRAM-SHA-512", "username": "alice", "password": "pw"}
        assert (config.group_prefix, config.from_start, config.settings.idempotent) == ("team-a", True, False)
        assert config.settings.client_options()["security_protocol"] == "SASL_PLAINTEXT"
        assert "pw" not in config.fingerprint

        with pytest.raises(InvalidError, match="--kafka-bootstrap"):
            bus_config(settings, namespace, "default", None, references)
        settings.kafka_bootstrap, settings.kafka_topic = "fallback:9092", "events"
        fallback = bus_config(settings, namespace, "default", None, references)
        assert (fallback.settings.bootstrap_servers, fallback.settings.topic) == ("fallback:9092", "events")
        assert fallback.fingerprint != config.fingerprint
        with pytest.raises(NotFoundError, match="secret"):
            bus_config(
                settings,
                namespace,
                "main",
                eventbus(namespace, "main", {"url": "k:1", "sasl": {"userSecret": {"name": "nope", "key": "u"}}}),
                references,
            )
    finally:
        references.close()


def eventsource_obj(namespace: str, name: str, spec: Obj) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "EventSource",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_single_active_types_are_split_off() -> None:
    manifest = parse_manifest(
        eventsource_obj(
            "ns",
            "mixed",
            {
                "webhook": {"hook": {"port": "12000", "endpoint": "/hook", "method": "POST"}},
                "calendar": {"tick": {"interval": "10s"}},
            },
        )
    )
    assert isinstance(manifest, EventSource)
    everywhere, single = split_single_active(manifest)
    assert everywhere is not None and single is not None
    assert [key for key, _, _ in everywhere.spec.sources()] == ["webhook"]
    assert [key for key, _, _ in single.spec.sources()] == ["calendar"]
    only_hook, none = split_single_active(everywhere)
    assert none is None and only_hook is not None


def test_invalid_new_version_keeps_the_last_good_one(caplog: pytest.LogCaptureFixture) -> None:
    cache = ManifestCache("EventSource")
    good = eventsource_obj("ns", "es", {"webhook": {"a": {"port": "12000", "endpoint": "/a", "method": "POST"}}})
    good["metadata"]["resourceVersion"] = "1"
    assert [m.name for m in cache.update([good])] == ["es"]
    broken = eventsource_obj("ns", "es", {"webhook": {"a": {"port": "not-a-port", "endpoint": 5}}})
    broken["metadata"]["resourceVersion"] = "2"
    kept = cache.update([broken])
    assert len(kept) == 1 and kept[0].dump()["spec"]["webhook"]["a"]["endpoint"] == "/a"
    assert "its last good version keeps running" in caplog.text
    assert cache.update([]) == []  # deleted: gone


def http_status(url: str) -> int:
    request = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def eventually(check: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_eventsource_changes_apply_live_and_singletons_run_on_the_leader_only(
    cluster: KubeCluster, namespace: str, role_token: str, broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTBRIDGE_LEASE_DURATION", "2s")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RENEW_DEADLINE", "1500ms")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RETRY_PERIOD", "200ms")
    monkeypatch.delenv("EVENTBRIDGE_POD_NAME", raising=False)
    port = free_port()
    admin = k8s.CustomObjectsApi(cluster.api_client())
    admin.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "eventsources",
        eventsource_obj(namespace, "es", {
            "webhook": {"hook": {"port": str(port), "endpoint": "/one", "method": "POST"}},
            "calendar": {"tick": {"interval": "1h"}},
        }),
    )  # fmt: skip
    settings = ClusterSettings(
        namespace=namespace,
        kafka_bootstrap=broker.bootstrap,
        kafka_idempotent=False,
        kafka_partitions=1,
        webhook_host="127.0.0.1",
        resync_seconds=5,
    )
    first = EventSourceRole(settings, cluster.api_client(role_token))
    stop_first = asyncio.Event()
    first_task = asyncio.create_task(first.run(stop_first))
    second_task: asyncio.Task[int] | None = None
    stop_second = asyncio.Event()
    try:

        async def one_answers() -> bool:
            return await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/one") == 200

        await eventually(one_answers)

        def calendars(role: EventSourceRole) -> list[str]:
            return [str(s.key) for s in role.single_sources.status() if s.state == "running"]

        async def first_leads() -> bool:
            return calendars(first) == [f"{namespace}/es/calendar/tick"]

        await eventually(first_leads)

        # Change the endpoint: applied live, the old one is gone.
        current = admin.get_namespaced_custom_object(GROUP, VERSION, namespace, "eventsources", "es")
        current["spec"]["webhook"]["hook"]["endpoint"] = "/two"
        admin.replace_namespaced_custom_object(GROUP, VERSION, namespace, "eventsources", "es", current)

        async def moved() -> bool:
            two = await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/two")
            one = await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/one")
            return two == 200 and one == 404

        await eventually(moved)

        # A second replica (no webhook: its port is taken here, so only its calendar part matters)
        # stays standby for the calendar until the first one stops.
        current = admin.get_namespaced_custom_object(GROUP, VERSION, namespace, "eventsources", "es")
        del current["spec"]["webhook"]
        admin.replace_namespaced_custom_object(GROUP, VERSION, namespace, "eventsources", "es", current)

        async def webhook_gone() -> bool:
            return await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/two") == 0

        await eventually(webhook_gone)
        second = EventSourceRole(settings, cluster.api_client(role_token))
        second_task = asyncio.create_task(second.run(stop_second))
        await eventually(lambda: asyncio.sleep(0, second.ready()))
        await asyncio.sleep(1.0)
        assert calendars(second) == [] and calendars(first) == [f"{namespace}/es/calendar/tick"]

        stop_first.set()
        assert await asyncio.wait_for(first_task, 15) == 0

        async def second_leads() -> bool:
            return calendars(second) == [f"{namespace}/es/calendar/tick"]

        await eventually(second_leads, within=10)
    finally:
        stop_first.set()
        stop_second.set()
        assert await asyncio.wait_for(first_task, 15) == 0
        if second_task is not None:
            assert await asyncio.wait_for(second_task, 15) == 0
