"""The ``resource`` event source on the real API server: ConfigMap changes onto a real SQLite bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubecluster import KubeCluster

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import NotFoundError
from eventbridge.models.eventsource import EventSource
from eventbridge.sources.manager import SourceManager
from eventbridge.store.kube_objects import KubeObjects


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no secrets")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no configmaps")


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    b = SqliteBus(tmp_path / "bus.db")
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
async def objects(cluster: KubeCluster) -> AsyncIterator[KubeObjects]:
    client = KubeObjects(cluster.api_client())
    yield client
    await client.close()


@pytest.fixture
def kubeconfig(cluster: KubeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """The source finds the API server as it would in embedded mode: through $KUBECONFIG."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))


def eventsource(namespace: str, **events: dict[str, Any]) -> EventSource:
    return EventSource.model_validate(
        {"metadata": {"name": "kube", "namespace": namespace}, "spec": {"resource": events}}
    )


def configmap(name: str, namespace: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


async def published(bus: SqliteBus) -> list[tuple[str, str, Any, str]]:
    """``(event name, type, name of the object, event id)`` of every stored event, in order."""
    return [
        (s.event.subject, s.event.data["type"], s.event.data["body"]["metadata"]["name"], s.event.id)
        for s in await bus.list_events(limit=1000)
    ]


async def wait_until(bus: SqliteBus, expected: list[tuple[str, str, str]], within: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        seen = [(subject, kind, name) for subject, kind, name, _ in await published(bus)]
        if all(item in seen for item in expected):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"missing {[e for e in expected if e not in seen]}; published {seen}")
        await asyncio.sleep(0.05)


ALL = ["ADD", "UPDATE", "DELETE"]


async def test_add_update_delete_with_filters(
    bus: SqliteBus, objects: KubeObjects, cluster: KubeCluster, kubeconfig: None
) -> None:
    ns = cluster.new_namespace("src")
    await objects.create(configmap("before", ns, {"app": "demo"}, color="red"))
    await objects.create(configmap("new-before", ns, {"app": "demo"}))
    spec = {"namespace": ns, "version": "v1", "resource": "configmaps"}
    source = eventsource(
        ns,
        labelled={**spec, "eventTypes": ALL, "metadata": {"team": "ops"},
                  "filter": {"labels": [{"key": "app", "value": "demo"}]}},
        fresh={**spec, "eventTypes": ["ADD"], "filter": {"prefix": "new-", "afterStart": True}},
        blue={**spec, "eventTypes": ["ADD", "UPDATE"],
              "filter": {"fields": [{"key": "data.color", "operation": "==", "value": "^bl"}]}},
        notin={**spec, "eventTypes": ["ADD"],
               "filter": {"labels": [{"key": "app", "operation": "notin", "value": "demo,other"}]}},
    )  # fmt: skip
    manager = SourceManager(bus, NoReferences(), host="127.0.0.1")
    try:
        await manager.apply([source])
        assert {s.state for s in manager.status()} == {"running"}, manager.status()
        await objects.create(configmap("new-a", ns, {"app": "demo"}, color="blue"))
        await objects.create(configmap("plain", ns, color="green"))
        await objects.patch("v1", "ConfigMap", "new-a", {"data": {"color": "black"}}, namespace=ns)
        await objects.delete("v1", "ConfigMap", "new-a", ns)
        await wait_until(bus, [("labelled", "DELETE", "new-a"), ("notin", "ADD", "plain")])
        await asyncio.sleep(0.5)  # anything that should not come has had its chance
    finally:
        await manager.stop()

    events = await published(bus)
    by_name: dict[str, list[tuple[str, str]]] = {}
    for subject, kind, name, _ in events:
        by_name.setdefault(subject, []).append((kind, name))
    assert sorted(by_name["labelled"][:2]) == [("ADD", "before"), ("ADD", "new-before")]  # the informer's list
    assert by_name["labelled"][2:] == [("ADD", "new-a"), ("UPDATE", "new-a"), ("DELETE", "new-a")]
    assert by_name["fresh"] == [("ADD", "new-a")]  # new-before existed before the start
    assert by_name["blue"] == [("ADD", "new-a"), ("UPDATE", "new-a")]  # black still matches ^bl
    assert sorted(by_name["notin"]) == [("ADD", "plain")]

    stored = {(s.event.subject, s.event.data["type"]): s.event for s in await bus.list_events(limit=1000)
              if s.event.data["body"]["metadata"]["name"] == "new-a"}  # fmt: skip
    update = stored[("labelled", "UPDATE")]
    assert list(update.data) == ["type", "body", "oldBody", "group", "version", "resource", "metadata"]
    assert update.data["body"]["data"] == {"color": "black"} and update.data["oldBody"]["data"] == {"color": "blue"}
    assert (update.data["group"], update.data["version"], update.data["resource"]) == ("", "v1", "configmaps")
    assert update.data["metadata"] == {"team": "ops"} and update.type == "resource" and update.source == "kube"
    added = stored[("labelled", "ADD")]
    assert added.data["oldBody"] is None and added.data["body"]["kind"] == "ConfigMap"
    uid = added.data["body"]["metadata"]["uid"]
    assert added.id == f"{uid}:{added.data['body']['metadata']['resourceVersion']}"
    assert stored[("labelled", "DELETE")].id.endswith(":DELETE")
    assert "metadata" not in stored[("fresh", "ADD")].data

    # A restart lists again: the objects it reports again have the same ids, so nothing is stored twice.
    count = len(events)
    manager = SourceManager(bus, NoReferences(), host="127.0.0.1")
    try:
        await manager.apply([source])
        await asyncio.sleep(1.0)
    finally:
        await manager.stop()
    assert len(await published(bus)) == count


async def test_without_a_kubernetes_api_the_source_says_why(
    bus: SqliteBus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    manager = SourceManager(bus, NoReferences(), host="127.0.0.1")
    try:
        await manager.apply(
            [eventsource("team", cms={"version": "v1", "resource": "configmaps", "eventTypes": ["ADD"]})]
        )
        [status] = manager.status()
        assert status.state == "failed" and "needs a Kubernetes API" in (status.error or "")
    finally:
        await manager.stop()


async def test_unknown_resource_and_lint(bus: SqliteBus, cluster: KubeCluster, kubeconfig: None) -> None:
    manager = SourceManager(bus, NoReferences(), host="127.0.0.1")
    try:
        await manager.apply([eventsource("team", x={"version": "v1", "resource": "gizmos", "eventTypes": ["ADD"]})])
        [status] = manager.status()
        assert status.state == "failed" and "does not serve resource 'gizmos'" in (status.error or "")
    finally:
        await manager.stop()
    broken_filter = {"labels": [{"key": "", "operation": "like"}], "fields": [{"key": "a", "value": "("}],
                     "createdBy": "yesterday"}  # fmt: skip
    bad = eventsource("team", x={"resource": "configmaps", "eventTypes": ["CREATE"], "filter": broken_filter})
    paths = {f.path for f in bad.check()}
    assert {"spec.resource.x.version", "spec.resource.x.eventTypes.0", "spec.resource.x.filter.labels.0.key",
            "spec.resource.x.filter.labels.0.operation", "spec.resource.x.filter.fields.0.value",
            "spec.resource.x.filter.createdBy"} <= paths  # fmt: skip
