"""Objects of any kind on the real API server: the KubeObjects client and the k8s trigger in cluster mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from crdfixture import API_VERSION, KIND, ensure_widget_crd, widget
from kubecluster import KubeCluster

from eventbridge.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidError,
    NotFoundError,
    PermanentError,
)
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.store.kube import KubeForbiddenError, KubeStore
from eventbridge.store.kube_objects import KubeObjects
from eventbridge.store.objects import NoObjects, ObjectEvent
from eventbridge.triggers.argo_workflow import ANNOTATION_KEY, LABEL_SENSOR, LABEL_TRIGGER
from eventbridge.triggers.base import TriggerServices, action_for
from eventbridge.triggers.k8s import K8sTrigger, override_merge


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no secrets")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no configmaps")


@pytest.fixture
async def objects(cluster: KubeCluster) -> AsyncIterator[KubeObjects]:
    ensure_widget_crd(cluster)
    client = KubeObjects(cluster.api_client(), watch_timeout_seconds=2)
    yield client
    await client.close()


def configmap(name: str, namespace: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


# ---------------------------------------------------------------------------------------------
# the client


async def test_discovery_resolves_kinds_resources_and_kubectl_type_names(objects: KubeObjects) -> None:
    info = await objects.resolve("v1", "ConfigMap")
    assert (info.group, info.plural, info.namespaced) == ("", "configmaps", True)
    assert (await objects.resolve("apps/v1", "Deployment")).plural == "deployments"
    assert not (await objects.resolve("v1", "Namespace")).namespaced
    assert (await objects.resource("", "v1", "configmaps")).kind == "ConfigMap"
    assert (await objects.resolve(API_VERSION, KIND)).plural == "widgets"
    for name in ("cm", "configmap", "configmaps", "ConfigMap"):
        assert (await objects.resolve_type(name)).kind == "ConfigMap"
    assert (await objects.resolve_type("deployments.apps")).kind == "Deployment"
    assert (await objects.resolve_type("wdg")).kind == KIND
    with pytest.raises(InvalidError, match="does not serve kind 'Gadget'"):
        await objects.resolve(API_VERSION, "Gadget")
    with pytest.raises(InvalidError, match="no resource type"):
        await objects.resolve_type("nosuchthings")


async def test_create_get_list_replace_delete_and_error_mapping(objects: KubeObjects, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("obj")
    created = await objects.create(
        configmap("a", ns, x="1") | {"metadata": {"name": "a", "namespace": ns, "labels": {"app": "t"}}}
    )
    assert created["metadata"]["uid"] and created["data"] == {"x": "1"}
    with pytest.raises(AlreadyExistsError, match=f"ConfigMap {ns}/a already exists"):
        await objects.create(configmap("a", ns))
    generated = await objects.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "g-", "namespace": ns}}
    )
    assert generated["metadata"]["name"].startswith("g-")
    assert [o["metadata"]["name"] for o in await objects.list("v1", "ConfigMap", ns, label_selector="app=t")] == ["a"]

    stale = dict(created)
    fresh = await objects.replace(configmap("a", ns, x="2"))  # no resourceVersion: the current one is used
    assert fresh["data"] == {"x": "2"}
    with pytest.raises(ConflictError):
        await objects.replace(stale | {"data": {"x": "3"}})

    await objects.delete("v1", "ConfigMap", "a", ns)
    with pytest.raises(NotFoundError, match=f"ConfigMap {ns}/a not found"):
        await objects.get("v1", "ConfigMap", "a", ns)
    with pytest.raises(NotFoundError):
        await objects.delete("v1", "ConfigMap", "a", ns)
    with pytest.raises(InvalidError, match="rejected by the API server"):
        await objects.create(configmap("Not_A_Name", ns))


async def test_apply_and_every_patch_strategy(objects: KubeObjects, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("obj")
    applied = await objects.apply(configmap("cfg", ns, a="1"))  # server-side apply creates it
    assert applied["data"] == {"a": "1"}
    assert any(f["manager"] == "eventbridge" for f in applied["metadata"]["managedFields"])
    assert (await objects.apply(configmap("cfg", ns, a="1", b="2")))["data"] == {"a": "1", "b": "2"}

    merged = await objects.patch("v1", "ConfigMap", "cfg", {"data": {"a": None, "c": "3"}}, namespace=ns)
    assert merged["data"] == {"b": "2", "c": "3"}
    ops = [{"op": "replace", "path": "/data/b", "value": "20"}, {"op": "add", "path": "/data/d", "value": "4"}]
    assert (await objects.patch("v1", "ConfigMap", "cfg", ops, namespace=ns, strategy="json"))["data"] == {
        "b": "20", "c": "3", "d": "4"}  # fmt: skip

    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "nginx"}, {"name": "side", "image": "busybox"}]}}},
    }  # fmt: skip
    await objects.create(deployment)
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}}
    patched = await objects.patch("apps/v1", "Deployment", "web", strategic, namespace=ns,
                                  strategy="application/strategic-merge-patch+json")  # fmt: skip
    containers = {c["name"]: c["image"] for c in patched["spec"]["template"]["spec"]["containers"]}
    assert containers == {"main": "nginx:2", "side": "busybox"}  # merged by name, not replaced

    await objects.create(widget("w", ns, spec={"size": 1, "tags": ["a"]}))
    with pytest.raises(InvalidError, match="patch type"):
        await objects.patch(API_VERSION, KIND, "w", {"spec": {"size": 2}}, namespace=ns, strategy="strategic")
    assert (await objects.patch(API_VERSION, KIND, "w", {"spec": {"size": 2}}, namespace=ns))["spec"] == {
        "size": 2, "tags": ["a"]}  # fmt: skip
    with pytest.raises(InvalidError, match="unknown patch strategy"):
        await objects.patch("v1", "ConfigMap", "cfg", {}, namespace=ns, strategy="xml")
    with pytest.raises(InvalidError, match="list of operations"):
        await objects.patch("v1", "ConfigMap", "cfg", {"data": {}}, namespace=ns, strategy="json")


async def test_forbidden_names_the_missing_permission(cluster: KubeCluster, namespace: str, role_token: str) -> None:
    client = KubeObjects(cluster.api_client(role_token))
    try:
        await client.create(configmap("c", namespace))  # the role may create configmaps...
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": namespace}}
        with pytest.raises(KubeForbiddenError, match='cannot create resource "secrets"'):
            await client.create(secret)  # ...but only read secrets
    finally:
        await client.close()


async def next_event(stream: Any, within: float = 10) -> ObjectEvent:
    event: ObjectEvent = await asyncio.wait_for(stream.__anext__(), within)
    return event


async def test_watch_reports_existing_then_changes_with_the_old_state(
    objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("obj")
    await objects.create(configmap("before", ns, v="0"))
    info = await objects.resolve("v1", "ConfigMap")
    stream = objects.watch(info, ns, label_selector=None)
    try:
        await stream.synced()
        first = await next_event(stream)
        assert (first.type, first.object["metadata"]["name"], first.old) == ("ADDED", "before", None)
        await objects.create(configmap("new", ns, v="1"))
        added = await next_event(stream)
        assert (added.type, added.object["metadata"]["name"]) == ("ADDED", "new")
        await objects.patch("v1", "ConfigMap", "new", {"data": {"v": "2"}}, namespace=ns)
        modified = await next_event(stream)
        assert modified.type == "MODIFIED" and modified.object["data"] == {"v": "2"}
        assert modified.old is not None and modified.old["data"] == {"v": "1"}
        await objects.delete("v1", "ConfigMap", "new", ns)
        deleted = await next_event(stream)
        assert (deleted.type, deleted.object["metadata"]["name"]) == ("DELETED", "new")
        # the server ends each watch after 2 s: the stream resumes without repeating anything
        await asyncio.sleep(2.5)
        await objects.create(configmap("later", ns))
        assert (await next_event(stream)).object["metadata"]["name"] == "later"
    finally:
        await stream.aclose()


async def test_watch_without_initial_and_with_a_label_selector(objects: KubeObjects, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("obj")
    await objects.create(configmap("old", ns) | {"metadata": {"name": "old", "namespace": ns, "labels": {"k": "v"}}})
    stream = objects.watch(await objects.resolve("v1", "ConfigMap"), ns, label_selector="k=v", initial=False)
    try:
        await stream.synced()
        await objects.create(configmap("other", ns))  # no label: not seen
        await objects.create(
            configmap("mine", ns) | {"metadata": {"name": "mine", "namespace": ns, "labels": {"k": "v"}}}
        )
        event = await next_event(stream)
        assert (event.type, event.object["metadata"]["name"]) == ("ADDED", "mine")
    finally:
        await stream.aclose()


def test_no_objects_says_it_needs_cluster_mode() -> None:
    assert not NoObjects().available
    with pytest.raises(InvalidError, match="cluster mode"):
        asyncio.run(NoObjects().get("v1", "ConfigMap", "x"))


# ---------------------------------------------------------------------------------------------
# the k8s trigger, any kind


def sensor(namespace: str, k8s: dict[str, Any], policy: dict[str, Any] | None = None) -> Sensor:
    trigger: dict[str, Any] = {"template": {"name": "t", "k8s": k8s}}
    if policy is not None:
        trigger["policy"] = policy
    return Sensor.model_validate({
        "kind": "Sensor", "metadata": {"name": "s", "namespace": namespace},
        "spec": {"dependencies": [{"name": "d", "eventSourceName": "es", "eventName": "e"}],
                 "triggers": [trigger]},
    })  # fmt: skip


def event(namespace: str, event_id: str = "e1", **body: Any) -> Event:
    return Event(id=event_id, source="es", subject="e", type="webhook", namespace=namespace,
                 data={"body": {"value": "hello", "size": 3, **body}})  # fmt: skip


async def fire(
    objects: Any, store: KubeStore, namespace: str, k8s: dict[str, Any], the_event: Event | None = None,
    policy: dict[str, Any] | None = None,
) -> Any:  # fmt: skip
    the_sensor = sensor(namespace, k8s, policy)
    trigger = the_sensor.spec.triggers[0]
    action = action_for(the_sensor, trigger, TriggerServices(store, NoReferences(), objects=objects))
    assert isinstance(action, K8sTrigger)
    return await action.execute(make_call(the_sensor, trigger, {"d": the_event or event(namespace)}))


@pytest.fixture
def unused_store(cluster: KubeCluster) -> KubeStore:
    """The store of the services; any-kind objects go through KubeObjects, never through it."""
    return KubeStore(cluster.api_client())


VALUE_PARAM = [{"src": {"dependencyName": "d", "dataKey": "body.value"}, "dest": "data.value"}]


async def test_create_any_kind_once_per_firing(
    objects: KubeObjects, unused_store: KubeStore, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("trg")
    spec = {"source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-"}}},
            "parameters": VALUE_PARAM}  # fmt: skip
    first = await fire(objects, unused_store, ns, spec)
    assert first.summary.startswith(f"created ConfigMap {ns}/cm-") and not first.replayed
    again = await fire(objects, unused_store, ns, spec)  # the same event delivered again
    assert again.replayed and again.objects == first.objects
    made = await objects.list("v1", "ConfigMap", ns, label_selector=f"{LABEL_SENSOR}=s,{LABEL_TRIGGER}=t")
    assert len(made) == 1 and made[0]["data"] == {"value": "hello"}
    assert made[0]["metadata"]["annotations"][ANNOTATION_KEY]
    other = await fire(objects, unused_store, ns, spec, event(ns, "e2"))  # another event: another object
    assert other.objects != first.objects
    assert len(await objects.list("v1", "ConfigMap", ns, label_selector=f"{LABEL_SENSOR}=s")) == 2

    named = {
        "source": {"resource": widget("fixed", ns, spec={"size": 1})},
        "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.size"}, "dest": "spec.size"}],
    }
    assert (await fire(objects, unused_store, ns, named)).summary == f"created Widget {ns}/fixed"
    assert (await fire(objects, unused_store, ns, named)).replayed
    assert (await objects.get(API_VERSION, KIND, "fixed", ns))["spec"]["size"] == "3"
    with pytest.raises(PermanentError, match="already exists and was not created by this firing"):
        await fire(objects, unused_store, ns, named, event(ns, "e3"))


async def test_update_patch_delete_any_kind(
    objects: KubeObjects, unused_store: KubeStore, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("trg")
    source = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"a": "1"}},
              "data": {"keep": "k"}}  # fmt: skip
    created = await fire(objects, unused_store, ns, {"operation": "update", "source": {"resource": source}})
    assert created.summary == f"created ConfigMap {ns}/cfg (it did not exist)"  # Argo creates a missing object

    change = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"b": "2"}},
              "data": {"value": ""}}  # fmt: skip
    updated = await fire(objects, unused_store, ns, {"operation": "update", "source": {"resource": change},
                                                     "parameters": VALUE_PARAM})  # fmt: skip
    assert updated.summary == f"updated ConfigMap {ns}/cfg"
    live = await objects.get("v1", "ConfigMap", "cfg", ns)
    assert live["data"] == {"keep": "k", "value": "hello"} and live["metadata"]["labels"] == {"a": "1", "b": "2"}

    live_object = {
        "operation": "update",
        "liveObject": True,
        "source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}},
        "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.size"}, "dest": "data.size"}],
    }
    await fire(objects, unused_store, ns, live_object)
    assert (await objects.get("v1", "ConfigMap", "cfg", ns))["data"] == {"keep": "k", "value": "hello", "size": "3"}

    patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"keep": None}}
    assert (await fire(objects, unused_store, ns, {"operation": "patch", "source": {"resource": patch}})).summary == (
        f"patched ConfigMap {ns}/cfg"
    )
    assert (await objects.get("v1", "ConfigMap", "cfg", ns))["data"] == {"value": "hello", "size": "3"}
    ssa = {"operation": "patch", "patchStrategy": "application/apply-patch+yaml",
           "source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                                   "data": {"applied": "yes"}}}}  # fmt: skip
    await fire(objects, unused_store, ns, ssa)
    assert (await objects.get("v1", "ConfigMap", "cfg", ns))["data"]["applied"] == "yes"
    with pytest.raises(PermanentError, match="not a list of operations"):
        await fire(objects, unused_store, ns, {"operation": "patch", "patchStrategy": "application/json-patch+json",
                                               "source": {"resource": patch}})  # fmt: skip

    delete = {"operation": "delete", "source": {"resource": source}}
    assert (await fire(objects, unused_store, ns, delete)).summary == f"deleted ConfigMap {ns}/cfg"
    assert (await fire(objects, unused_store, ns, delete)).summary == f"ConfigMap {ns}/cfg was already deleted"


async def test_cluster_scoped_kind_and_policy_labels(
    objects: KubeObjects, unused_store: KubeStore, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("trg")
    name = f"{ns}-made"
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"ok": "y"}}}
    policy = {"k8s": {"labels": {"ok": "y"}, "backoff": {"duration": "100ms", "steps": 2},
                      "errorOnBackoffTimeout": True}}  # fmt: skip
    outcome = await fire(objects, unused_store, ns, {"source": {"resource": namespace_object}}, policy=policy)
    assert outcome.summary == f"created Namespace {name}"
    assert (await objects.get("v1", "Namespace", name))["metadata"]["labels"][LABEL_TRIGGER] == "t"
    missing = {"k8s": {"labels": {"never": "set"}, "backoff": {"duration": "50ms", "steps": 2},
                       "errorOnBackoffTimeout": True}}  # fmt: skip
    spec = {"source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}}}
    with pytest.raises(PermanentError, match="did not get labels"):
        await fire(objects, unused_store, ns, spec, policy=missing)


async def test_errors_of_any_kind_are_permanent(
    objects: KubeObjects, unused_store: KubeStore, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("trg")
    with pytest.raises(PermanentError, match="does not serve kind 'Gadget'"):
        await fire(objects, unused_store, ns, {"source": {"resource": widget("g", ns) | {"kind": "Gadget"}}})
    with pytest.raises(PermanentError, match="rejected by the API server"):
        await fire(objects, unused_store, ns, {"source": {"resource": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}}})  # fmt: skip
    with pytest.raises(PermanentError, match=r"liveObject: ConfigMap .* not found"):
        await fire(objects, unused_store, ns, {"operation": "update", "liveObject": True, "source": {"resource": {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "absent"}}}})  # fmt: skip


async def test_embedded_mode_keeps_its_message(unused_store: KubeStore, cluster: KubeCluster) -> None:
    spec = {"source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}}}
    for objects in (None, NoObjects()):
        with pytest.raises(PermanentError, match=r"cannot be managed here.*run in cluster mode"):
            await fire(objects, unused_store, "default", spec)


def test_override_merge_follows_mergo() -> None:
    live = {"a": 1, "m": {"x": 1, "y": [1, 2]}, "s": "keep", "e": ""}
    source = {"a": 2, "m": {"y": [3]}, "s": "", "e": "fill", "n": None}
    assert override_merge(live, source) == {"a": 2, "m": {"x": 1, "y": [3]}, "s": "keep", "e": "fill", "n": None}
