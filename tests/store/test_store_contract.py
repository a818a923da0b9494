"""The Store contract, run against SqliteStore and KubeStore (a real kube-apiserver) alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.store.base import Object, Store, WatchEvent

NewSpace = Callable[[], Awaitable[str]]


def wf(name: str | None = None, namespace: str | None = None, **meta: Any) -> Object:
    metadata: dict[str, Any] = dict(meta)
    if name:
        metadata["name"] = name
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {"entrypoint": "main"},
    }


def names(objects: list[Object], *namespaces: str) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["metadata"]["namespace"] in namespaces]


async def test_create_get_list_delete(store: Store, space: NewSpace) -> None:
    one, two = await space(), await space()
    created = await store.create(wf("a", one, labels={"app": "x"}))
    meta = created["metadata"]
    assert meta["namespace"] == one and meta["uid"] and meta["resourceVersion"]
    assert meta["creationTimestamp"].endswith("Z")
    assert created["spec"] == {"entrypoint": "main"}
    await store.create(wf("b", two))
    await store.create(wf("c", one))
    assert (await store.get("Workflow", one, "a"))["metadata"]["uid"] == meta["uid"]
    everything = await store.list("Workflow")
    assert names(everything, one) == ["a", "c"] and names(everything, two) == ["b"]
    assert names(await store.list("Workflow", two), two) == ["b"]
    assert names(await store.list("Workflow", one, labels={"app": "x"}), one) == ["a"]
    assert await store.list("WorkflowTemplate", one) == []
    with pytest.raises(AlreadyExistsError):
        await store.create(wf("a", one))
    await store.delete("Workflow", one, "a")
    with pytest.raises(NotFoundError):
        await store.get("Workflow", one, "a")
    with pytest.raises(NotFoundError):
        await store.delete("Workflow", one, "a")


async def test_namespace_defaults_to_default(store: Store) -> None:
    created = await store.create(wf(generateName="defaulted-"))
    assert created["metadata"]["namespace"] == "default"
    await store.delete("Workflow", "default", created["metadata"]["name"])


async def test_generate_name_and_missing_name(store: Store, space: NewSpace) -> None:
    ns = await space()
    one = await store.create(wf(None, ns, generateName="hello-"))
    two = await store.create(wf(None, ns, generateName="hello-"))
    assert one["metadata"]["name"].startswith("hello-") and len(one["metadata"]["name"]) == 11
    assert one["metadata"]["name"] != two["metadata"]["name"]
    with pytest.raises(InvalidError):
        await store.create(wf(None, ns))


async def test_update_checks_resource_version(store: Store, space: NewSpace) -> None:
    ns = await space()
    first = await store.create(wf("a", ns))
    first["spec"]["entrypoint"] = "other"
    second = await store.update(first)
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["spec"]["entrypoint"] == "other"
    with pytest.raises(ConflictError):
        await store.update(first)  # stale resourceVersion
    with pytest.raises(NotFoundError):
        await store.update(wf("missing", ns))


async def test_status_is_stored_on_create_and_update(store: Store, space: NewSpace) -> None:
    ns = await space()
    created = await store.create({**wf("a", ns), "status": {"phase": "Pending"}})
    assert created["status"] == {"phase": "Pending"}
    created["status"] = {"phase": "Running", "nodes": {"a": {"phase": "Running"}}}
    updated = await store.update(created)
    assert updated["status"]["phase"] == "Running"
    again = await store.get("Workflow", ns, "a")
    assert again["status"] == {"phase": "Running", "nodes": {"a": {"phase": "Running"}}}
    assert again["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]


async def test_update_without_resource_version_overwrites(store: Store, space: NewSpace) -> None:
    ns = await space()
    await store.create(wf("a", ns))
    blind = wf("a", ns)
    blind["spec"] = {"entrypoint": "blind"}
    result = await store.update(blind)
    assert result["spec"]["entrypoint"] == "blind"
    assert (await store.get("Workflow", ns, "a"))["spec"]["entrypoint"] == "blind"


async def test_concurrent_creates_all_land(store: Store, space: NewSpace) -> None:
    ns = await space()
    await asyncio.gather(*(store.create(wf(f"w{i}", ns)) for i in range(40)))
    assert len(await store.list("Workflow", ns)) == 40


async def test_watch_sees_changes_after_the_call(store: Store, space: NewSpace) -> None:
    ns, elsewhere = await space(), await space()
    await store.create(wf("before", ns))
    stream = store.watch("Workflow", ns)
    created = await store.create(wf("a", ns))
    await store.create(wf("elsewhere", elsewhere))
    created["spec"]["entrypoint"] = "changed"  # Kubernetes makes an unchanged update a no-op (no event)
    await store.update(created)
    await store.delete("Workflow", ns, "a")
    seen: list[WatchEvent] = [await asyncio.wait_for(anext(stream), 10) for _ in range(3)]
    assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    assert all(e.object["kind"] == "Workflow" for e in seen)
    await stream.aclose()  # type: ignore[attr-defined]


async def test_all_namespace_watch(store: Store, space: NewSpace) -> None:
    one, two = await space(), await space()
    stream = store.watch("Workflow")
    await store.create(wf("x", one))
    await store.create(wf("y", two))
    got: set[tuple[str, str]] = set()
    while len(got) < 2:
        event = await asyncio.wait_for(anext(stream), 10)
        if event.object["metadata"]["namespace"] in (one, two):
            got.add((event.object["metadata"]["namespace"], event.object["metadata"]["name"]))
    assert got == {(one, "x"), (two, "y")}
    await stream.aclose()  # type: ignore[attr-defined]


async def test_other_kinds_round_trip(store: Store, space: NewSpace) -> None:
    ns = await space()
    for kind in ("WorkflowTemplate", "CronWorkflow", "Sensor", "EventSource", "EventBus"):
        obj = {"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": "x", "namespace": ns}}
        obj["spec"] = {"any": {"nested": [1, "two"]}}
        created = await store.create(obj)
        assert created["kind"] == kind
        assert (await store.get(kind, ns, "x"))["spec"] == {"any": {"nested": [1, "two"]}}
