"""SQLite-only behaviour: group commit and persistence (the shared contract is test_store_contract.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from eventbridge.errors import AlreadyExistsError, InvalidError, NotFoundError
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


async def test_writes_in_one_batch_see_each_other_in_order(tmp_path: Path) -> None:
    """Writes gathered into one group commit are decided in arrival order against each other."""
    async with SqliteStore(tmp_path / "s.db") as store:
        await store.create(wf("old"))
        watch = store.watch("Workflow")
        gate = threading.Event()
        store._thread.submit(gate.wait)  # hold the store's thread so that every write below is one batch
        writes = [
            store.create(wf("a")),
            store.create(wf("a")),  # the same name again in the same batch
            store.update({**wf("a"), "spec": {"entrypoint": "x"}}),  # sees the create before it
            store.delete("Workflow", "default", "old"),
            store.create(wf("old", labels={"again": "yes"})),  # re-created after the delete
            store.update(wf("missing")),
            *(store.create(wf(generateName="gen-")) for _ in range(50)),
        ]
        tasks = [asyncio.ensure_future(write) for write in writes]
        for _ in range(500):  # until every write is queued behind the gate
            if len(store._pending) == len(tasks):
                break
            await asyncio.sleep(0.01)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], AlreadyExistsError)
        assert isinstance(results[5], NotFoundError)
        updated = results[2]
        assert isinstance(updated, dict) and updated["spec"] == {"entrypoint": "x"}
        assert updated["metadata"]["uid"] == results[0]["metadata"]["uid"]  # type: ignore[index]
        assert int(updated["metadata"]["resourceVersion"]) > int(results[0]["metadata"]["resourceVersion"])  # type: ignore[index]
        generated = {r["metadata"]["name"] for r in results[6:]}  # type: ignore[index]
        assert len(generated) == 50 and all(name.startswith("gen-") for name in generated)
        stored = {o["metadata"]["name"]: o for o in await store.list("Workflow")}
        assert set(stored) == {"a", "old"} | generated
        assert stored["a"] == updated
        assert stored["old"]["metadata"]["labels"] == {"again": "yes"}
        seen = [(await watch.__anext__()) for _ in range(4)]
        assert [(e.type, e.object["metadata"]["name"]) for e in seen] == [
            ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "old"), ("ADDED", "old")
        ]  # fmt: skip
        await watch.aclose()


async def test_a_write_that_is_not_json_fails_alone(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        bad = {**wf("bad"), "spec": {"x": {1, 2}}}
        results = await asyncio.gather(store.create(bad), store.create(wf("good")), return_exceptions=True)
        assert isinstance(results[0], InvalidError) and "not JSON" in str(results[0])
        assert (await store.get("Workflow", "default", "good"))["metadata"]["name"] == "good"
        with pytest.raises(NotFoundError):
            await store.get("Workflow", "default", "bad")


async def test_a_store_written_before_the_uid_columns_is_upgraded(tmp_path: Path) -> None:
    """Stores of earlier versions had no uid/created columns; opening adds and fills them."""
    path = tmp_path / "s.db"
    meta = {"name": "legacy", "namespace": "default", "uid": "u-1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    body = {**wf("legacy"), "metadata": {**meta, "resourceVersion": "7"}}
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE objects (kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, rv INTEGER NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (kind, namespace, name));"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT INTO meta VALUES ('rv', 7);"
    )
    conn.execute("INSERT INTO objects VALUES ('Workflow', 'default', 'legacy', 7, ?)", (json.dumps(body),))
    conn.commit()
    conn.close()
    async with SqliteStore(path) as store:
        updated = await store.update({**body, "spec": {"entrypoint": "y"}})
        assert updated["metadata"]["uid"] == "u-1"
        assert updated["metadata"]["creationTimestamp"] == "2026-01-01T00:00:00Z"
        assert updated["metadata"]["resourceVersion"] == "8"


async def test_created_objects_get_distinct_version_4_uids(tmp_path: Path) -> None:
    """uids are RFC 4122 version 4 (random) UUIDs in their canonical text form, one per object."""
    import uuid

    async with SqliteStore(tmp_path / "s.db") as store:
        created = await asyncio.gather(*(store.create(wf(f"u{i}")) for i in range(300)))
    uids = [obj["metadata"]["uid"] for obj in created]  # type: ignore[index]
    assert len(set(uids)) == 300
    for uid in uids:
        parsed = uuid.UUID(uid)
        assert str(parsed) == uid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def test_batches_of_any_size_write_exactly_their_rows(tmp_path: Path) -> None:
    """A batch is written with multi-row statements of a few fixed sizes: every row lands once,
    past the largest size too (creates, then updates and deletes in one batch)."""
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store:
        created = await asyncio.gather(*(store.create(wf(f"p{i}")) for i in range(301)))
        updates = [store.update({**obj, "spec": {"n": 1}}) for obj in created[:70]]
        deletes = [store.delete("Workflow", "default", f"p{i}") for i in range(70, 75)]
        await asyncio.gather(*updates, *deletes)
        names = {obj["metadata"]["name"] for obj in await store.list("Workflow")}
        assert names == {f"p{i}" for i in range(301)} - {f"p{i}" for i in range(70, 75)}
        assert (await store.get("Workflow", "default", "p3"))["spec"] == {"n": 1}
        assert (await store.get("Workflow", "default", "p80"))["spec"] == {}
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM objects").fetchone()[0] == 296
        assert conn.execute("SELECT count(*) FROM objects WHERE kind IS NULL OR name IS NULL").fetchone()[0] == 0


async def test_generated_names_never_take_a_stored_or_batch_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names for generateName are proposed before the batch's one read; a proposal that is
    stored already, or that another create of the same batch took, is replaced by a free one."""
    import eventbridge.store.sqlite as store_module

    suffixes = ["aaaaa", "aaaaa", "aaaaa", "bbbbb", "eeeee", "eeeee", "fffff"]
    monkeypatch.setattr(store_module, "_random_suffix", iter(suffixes).__next__)
    async with SqliteStore(tmp_path / "s.db") as store:
        assert (await store.create(wf(generateName="gen-")))["metadata"]["name"] == "gen-aaaaa"
        # the proposal aaaaa is stored: the fallback draws again (aaaaa: taken; then bbbbb)
        assert (await store.create(wf(generateName="gen-")))["metadata"]["name"] == "gen-bbbbb"
        gate = threading.Event()
        store._thread.submit(gate.wait)  # both creates below in one batch
        tasks = [asyncio.ensure_future(store.create(wf(generateName="gen-"))) for _ in range(2)]
        for _ in range(500):
            if len(store._pending) == 2:
                break
            await asyncio.sleep(0.01)
        gate.set()
        # both propose eeeee: the first takes it, the second draws fffff
        assert [(await task)["metadata"]["name"] for task in tasks] == ["gen-eeeee", "gen-fffff"]
        assert {o["metadata"]["name"] for o in await store.list("Workflow")} == {f"gen-{c * 5}" for c in "abef"}


def test_random_suffixes_use_the_whole_alphabet_evenly() -> None:
    from collections import Counter

    from eventbridge.store.sqlite import _SUFFIX_ALPHABET, _random_suffix

    counts = Counter("".join(_random_suffix() for _ in range(40_000)))
    assert set(counts) == set(_SUFFIX_ALPHABET) and len(_SUFFIX_ALPHABET) == 36
    # 4.5 standard deviations; a plain byte % 36 would give four characters 12.5 % more
    expected = 200_000 / 36
    assert all(abs(n - expected) < expected * 0.06 for n in counts.values()), counts
