"""The SQLite store: CRUD, optimistic concurrency, generateName, watch, persistence."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.store.sqlite import SqliteStore


def wf(name: str | None = None, **meta: object) -> dict[str, object]:
    metadata: dict[str, object] = dict(meta)
    if name:
        metadata["name"] = name
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": metadata, "spec": {}}


async def test_create_get_list_delete(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        created = await store.create(wf("a", labels={"app": "x"}))
        meta = created["metadata"]
        assert meta["namespace"] == "default" and meta["uid"] and meta["resourceVersion"]
        assert meta["creationTimestamp"].endswith("Z")
        await store.create(wf("b", namespace="other"))
        assert (await store.get("Workflow", "default", "a"))["metadata"]["uid"] == meta["uid"]
        assert [o["metadata"]["name"] for o in await store.list("Workflow")] == ["a", "b"]
        assert [o["metadata"]["name"] for o in await store.list("Workflow", "other")] == ["b"]
        assert [o["metadata"]["name"] for o in await store.list("Workflow", labels={"app": "x"})] == ["a"]
        assert await store.list("WorkflowTemplate") == []
        with pytest.raises(AlreadyExistsError):
            await store.create(wf("a"))
        await store.delete("Workflow", "default", "a")
        with pytest.raises(NotFoundError):
            await store.get("Workflow", "default", "a")
        with pytest.raises(NotFoundError):
            await store.delete("Workflow", "default", "a")


async def test_generate_name_and_missing_name(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        one = await store.create(wf(generateName="hello-"))
        two = await store.create(wf(generateName="hello-"))
        assert one["metadata"]["name"].startswith("hello-") and len(one["metadata"]["name"]) == 11
        assert one["metadata"]["name"] != two["metadata"]["name"]
        with pytest.raises(InvalidError):
            await store.create(wf())


async def test_update_checks_resource_version(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        first = await store.create(wf("a"))
        first["status"] = {"phase": "Running"}
        second = await store.update(first)
        assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
        assert second["metadata"]["uid"] == first["metadata"]["uid"]
        with pytest.raises(ConflictError):
            await store.update(first)  # stale resourceVersion
        with pytest.raises(NotFoundError):
            await store.update(wf("missing"))


async def test_concurrent_writes_are_grouped_and_all_land(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        await asyncio.gather(*(store.create(wf(f"w{i}")) for i in range(200)))
        assert len(await store.list("Workflow")) == 200
        assert store.writes == 200


async def test_watch_sees_changes_after_the_call(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        await store.create(wf("before"))
        stream = store.watch("Workflow", "default")
        created = await store.create(wf("a"))
        await store.create(wf("elsewhere", namespace="x"))
        await store.update(created)
        await store.delete("Workflow", "default", "a")
        seen = [await asyncio.wait_for(anext(stream), 2) for _ in range(3)]
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("DELETED", "a"),
        ]
        await stream.aclose()  # type: ignore[attr-defined]


async def test_data_survives_reopen(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        created = await store.create(wf("a"))
    async with SqliteStore(tmp_path / "s.db") as store:
        again = await store.get("Workflow", "default", "a")
        assert again == created
        newer = await store.create(wf("b"))
        assert int(newer["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
