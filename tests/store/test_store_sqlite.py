"""SQLite-only behaviour: group commit and persistence (the shared contract is test_store_contract.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from eventbridge.store.sqlite import SqliteStore


def wf(name: str | None = None, **meta: object) -> dict[str, object]:
    metadata: dict[str, object] = dict(meta)
    if name:
        metadata["name"] = name
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": metadata, "spec": {}}


async def test_concurrent_writes_are_grouped_and_all_land(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        await asyncio.gather(*(store.create(wf(f"w{i}")) for i in range(200)))
        assert len(await store.list("Workflow")) == 200
        assert store.writes == 200


async def test_data_survives_reopen(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        created = await store.create(wf("a"))
    async with SqliteStore(tmp_path / "s.db") as store:
        again = await store.get("Workflow", "default", "a")
        assert again == created
        newer = await store.create(wf("b"))
        assert int(newer["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
