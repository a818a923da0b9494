"""RunStatus: a running workflow's node graph and its batched, conflict-proof status writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventbridge.store.base import Object
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.nodes import PHASE_LABEL, node_id
from eventbridge.workflow.status import RunStatus, WorkflowDeleted


class Seen:
    """What the run would be told: newer objects met on a conflict, and a deletion."""

    def __init__(self) -> None:
        self.observed: list[Object] = []
        self.deleted = 0

    def observe(self, obj: Object) -> None:
        self.observed.append(obj)

    def on_deleted(self) -> None:
        self.deleted += 1


async def started(store: SqliteStore, interval: float = 0.05) -> tuple[RunStatus, Seen]:
    obj = await store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "wf"}})
    seen = Seen()
    book = RunStatus(store, obj, write_interval=interval, observe=seen.observe, on_deleted=seen.on_deleted)
    book.status["phase"] = "Running"
    await book.write()
    return book, seen


async def stored_status(store: SqliteStore) -> dict[str, Any]:
    status: dict[str, Any] = (await store.get("Workflow", "default", "wf"))["status"]
    return status


async def test_changes_after_the_first_write_go_out_together(store: SqliteStore) -> None:
    book, _ = await started(store)
    root = book.node("wf", "wf", "Steps", "main", None)
    for number in range(5):
        child = book.node(f"wf[0].s{number}", f"s{number}", "Pod", "step", root["id"])
        book.add_child(root, child)
        book.complete(child, "Succeeded")
    assert book.writes == 1  # only the first write so far: the rest waits for write_interval
    await asyncio.sleep(0.2)
    assert book.writes == 2
    status = await stored_status(store)
    assert status["progress"] == "5/5"
    assert status["nodes"][root["id"]]["children"] == [node_id("wf", f"wf[0].s{n}") for n in range(5)]
    # a node is made once: asking again returns the recorded one (what a restarted run relies on)
    assert book.node("wf[0].s0", "s0", "Pod", "step", root["id"]) is book.nodes[node_id("wf", "wf[0].s0")]


async def test_a_conflicting_change_is_shown_to_the_run_and_our_status_written_over_it(store: SqliteStore) -> None:
    book, seen = await started(store)
    theirs = await store.get("Workflow", "default", "wf")
    theirs["metadata"]["labels"] = {**theirs["metadata"].get("labels", {}), "team": "ci"}
    theirs["spec"] = {"shutdown": "Stop"}
    await store.update(theirs)
    book.status["phase"] = "Failed"
    await book.write()
    stored = await store.get("Workflow", "default", "wf")
    assert stored["metadata"]["labels"]["team"] == "ci"  # their change kept
    assert stored["metadata"]["labels"][PHASE_LABEL] == "Failed"  # ours written over it
    assert [obj["spec"] for obj in seen.observed] == [{"shutdown": "Stop"}]
    assert book.obj["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


async def test_a_deleted_workflow_ends_a_direct_write_and_is_reported_by_a_background_one(
    store: SqliteStore,
) -> None:
    book, seen = await started(store, interval=0.02)
    await store.delete("Workflow", "default", "wf")
    book.changed()  # a background write
    for _ in range(50):
        if seen.deleted:
            break
        await asyncio.sleep(0.01)
    assert seen.deleted == 1
    with pytest.raises(WorkflowDeleted):
        await book.write()
