"""KubeStore behaviour beyond the shared contract, on the real API server."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubecluster import KubeCluster, service_account_token

from eventbridge.errors import ConflictError
from eventbridge.store.kube import KubeForbiddenError, KubeStore


def obj(kind: str, name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        **extra,
    }


@pytest.fixture
async def store(cluster: KubeCluster) -> Any:
    s = KubeStore(cluster.api_client(), watch_timeout_seconds=1)
    await s.start()
    yield s
    await s.stop()


async def test_discovery_knows_the_kinds_and_status_subresources(store: KubeStore) -> None:
    kinds = store.kinds
    assert {
        "Workflow",
        "WorkflowTemplate",
        "ClusterWorkflowTemplate",
        "CronWorkflow",
        "Sensor",
        "EventSource",
        "EventBus",
        "WorkflowTaskResult",
    } <= set(kinds)
    assert not kinds["ClusterWorkflowTemplate"].namespaced
    assert kinds["Sensor"].has_status and not kinds["Workflow"].has_status


async def test_status_goes_through_the_status_subresource(store: KubeStore, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("st")
    created = await store.create(obj("Sensor", "s", ns, spec={"x": 1}, status={"conditions": [{"type": "Ready"}]}))
    assert created["status"] == {"conditions": [{"type": "Ready"}]}
    created["spec"] = {"x": 2}
    created["status"] = {"conditions": [{"type": "Deployed"}]}
    updated = await store.update(created)
    again = await store.get("Sensor", ns, "s")
    assert again["spec"] == {"x": 2} and again["status"] == {"conditions": [{"type": "Deployed"}]}
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


async def test_cluster_scoped_kind(store: KubeStore) -> None:
    created = await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ClusterWorkflowTemplate",
            "metadata": {"generateName": "c-"},
            "spec": {"templates": []},
        }
    )
    name = created["metadata"]["name"]
    assert "namespace" not in created["metadata"]
    assert (await store.get("ClusterWorkflowTemplate", "", name))["spec"] == {"templates": []}
    assert name in [o["metadata"]["name"] for o in await store.list("ClusterWorkflowTemplate")]
    await store.delete("ClusterWorkflowTemplate", "", name)


async def test_concurrent_writers_get_conflicts(store: KubeStore, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("cf")
    base = await store.create(obj("Workflow", "w", ns, spec={"n": 0}))
    results = await asyncio.gather(
        *(store.update({**base, "spec": {"n": i}}) for i in range(1, 6)), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, dict)) == 1
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, dict))


async def test_watch_survives_the_server_ending_it(store: KubeStore, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("wr")
    stream = store.watch("Workflow", ns)
    await store.create(obj("Workflow", "a", ns))
    first = await asyncio.wait_for(anext(stream), 10)
    await asyncio.sleep(2.5)  # the server ends the watch after 1s; the store resumes from its resourceVersion
    await store.create(obj("Workflow", "b", ns))
    second = await asyncio.wait_for(anext(stream), 10)
    assert (first.type, first.object["metadata"]["name"]) == ("ADDED", "a")
    assert (second.type, second.object["metadata"]["name"]) == ("ADDED", "b")
    await stream.aclose()  # type: ignore[attr-defined]


async def test_expired_resource_version_relists_and_reports_the_difference(
    store: KubeStore, cluster: KubeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    ns = cluster.new_namespace("gone")
    await store.create(obj("Workflow", "old", ns))
    store._last_rv = 1  # a resourceVersion long compacted out of the watch cache: 410 Gone
    caplog.set_level(logging.INFO, logger="eventbridge.store.kube")
    stream = store.watch("Workflow", ns)
    await store.create(obj("Workflow", "new", ns))
    seen: set[tuple[str, str]] = set()
    while ("ADDED", "new") not in seen:
        event = await asyncio.wait_for(anext(stream), 10)
        seen.add((event.type, event.object["metadata"]["name"]))
    assert "expired; relisting" in caplog.text
    await stream.aclose()  # type: ignore[attr-defined]


async def test_forbidden_names_the_missing_permission(cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("rbac")
    with cluster.api_client() as api:
        from kubernetes import client as k8s

        k8s.CoreV1Api(api).create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
        token = service_account_token(api, ns, "nobody")
    store = KubeStore(cluster.api_client(token), namespace=ns)
    await store.start()
    try:
        with pytest.raises(KubeForbiddenError) as info:
            await store.get("Workflow", ns, "x")
        message = str(info.value)
        assert 'cannot get resource "workflows"' in message and ns in message
        assert "system:serviceaccount:" in message
    finally:
        await store.stop()
