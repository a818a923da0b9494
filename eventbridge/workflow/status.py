"""A running Workflow's status: its node graph, and the batched writes of it to the store.

:class:`RunStatus` owns ``status`` (and ``status.nodes``) of one :class:`~eventbridge.workflow.
operator.WorkflowRun`. Nodes are made and completed through it, so every change is noted; the
first write marks the workflow Running, later changes are written at most every
``write_interval`` seconds, and :meth:`RunStatus.write` writes at once (the final phase). A
ConflictError (someone else changed the object, e.g. its labels or ``spec.shutdown``) is handled
by re-reading, showing the fresh object to the run (``observe``) and writing our status over it.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from typing import Any

from eventbridge.errors import ConflictError, EventBridgeError, NotFoundError
from eventbridge.store.base import Object, Store
from eventbridge.workflow.leaves import Outcome
from eventbridge.workflow.nodes import COMPLETED_LABEL, PHASE_LABEL, Node, node_id, now

log = logging.getLogger(__name__)

WORKFLOW_COMPLETED = frozenset({"Succeeded", "Failed", "Error"})
#: Node types that are their own outbound node (see :meth:`RunStatus.outbound`).
_LEAF_TYPES = ("Pod", "Skipped", "Suspend")


class WorkflowDeleted(Exception):
    """The workflow object disappeared from the store."""


class RunStatus:
    """The status of one running workflow and its writes (see the module docstring).

    ``observe`` is shown each newer version of the object met on a write conflict; ``on_deleted``
    is called when a background write finds the object gone (a direct :meth:`write` raises
    :class:`WorkflowDeleted` instead)."""

    def __init__(
        self,
        store: Store,
        obj: Object,
        *,
        write_interval: float,
        observe: Callable[[Object], None],
        on_deleted: Callable[[], None],
    ) -> None:
        self.store = store
        self.obj = obj
        meta = obj.get("metadata") or {}
        self.name: str = meta.get("name", "")
        self.namespace: str = meta.get("namespace") or "default"
        self.status: dict[str, Any] = copy.deepcopy(obj.get("status") or {})
        self.nodes: dict[str, Node] = self.status.setdefault("nodes", {})
        self.write_interval = write_interval
        self.writes = 0
        #: Set on every change (what lifecycle-hook watchers wait on).
        self.change_events: set[asyncio.Event] = set()
        self._observe = observe
        self._on_deleted = on_deleted
        self._dirty = False
        self._flush_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()
        self._last_write = 0.0

    # ----------------------------------------------------------------------------- nodes

    def node(
        self, name: str, display: str, node_type: str, template: str | None, boundary: str | None, **extra: Any
    ) -> Node:
        """The node called ``name``: the recorded one (a restart continues it), else a new Pending one."""
        nid = node_id(self.name, name)
        node = self.nodes.get(nid)
        if node is None:
            node = {
                "id": nid,
                "name": name,
                "displayName": display,
                "type": node_type,
                "phase": "Pending",
                "startedAt": now(),
            }
            if template:
                node["templateName"] = template
            if boundary:
                node["boundaryID"] = boundary
            node.update(extra)
            self.nodes[nid] = node
            self.changed()
        return node

    def complete(self, node: Node, phase: str, message: str = "", outputs: dict[str, Any] | None = None) -> Node:
        node["phase"] = phase
        node["finishedAt"] = now()
        if message:
            node["message"] = message
        else:
            node.pop("message", None)
        if outputs:
            node["outputs"] = outputs
        self.changed()
        return node

    def completed(self, node: Node, outcome: Outcome) -> Node:
        return self.complete(node, outcome.phase, outcome.message, outcome.outputs)

    def add_child(self, parent: Node, child: Node) -> None:
        children = parent.setdefault("children", [])
        if child["id"] not in children:
            children.append(child["id"])
            self.changed()

    @staticmethod
    def outbound(node: Node) -> list[str]:
        """The ids of the nodes where ``node`` ends (what a following step or task hangs from)."""
        if node.get("type") in _LEAF_TYPES or not node.get("children"):
            return [node["id"]]
        return list(node.get("outboundNodes") or [node["id"]])

    def failures(self) -> list[dict[str, Any]]:
        """``workflow.failures``: the failed and errored pods, as Argo lists them."""
        return [
            {
                "displayName": n.get("displayName"),
                "message": n.get("message", ""),
                "templateName": n.get("templateName", ""),
                "phase": n.get("phase"),
                "podName": n.get("id"),
                "finishedAt": n.get("finishedAt", ""),
            }
            for n in self.nodes.values()
            if n.get("type") == "Pod" and n.get("phase") in ("Failed", "Error")
        ]

    # ----------------------------------------------------------------------------- writes

    def changed(self, *, force: bool = False) -> None:
        """Note a change; it is written within ``write_interval`` (after the first write, or at
        once with ``force``)."""
        self._dirty = True
        for event in self.change_events:
            event.set()
        if self._flush_task is None and (self.writes > 0 or force):
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    def cancel_flush(self) -> None:
        """Drop the pending background write (a direct :meth:`write` follows, or nothing does)."""
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        self._flush_task = None

    async def _flush_later(self) -> None:
        try:
            wait = self.write_interval - (time.monotonic() - self._last_write)
            if wait > 0:
                await asyncio.sleep(wait)
            self._flush_task = None
            if self._dirty:
                await self.write()
        except WorkflowDeleted:
            self._on_deleted()
        except Exception:
            # A background write that failed (e.g. the API server is restarting) is not lost: the
            # status stays dirty and goes out with the next write.
            self._dirty = True
            log.warning("workflow %s/%s: status write failed; retried with the next write",
                        self.namespace, self.name, exc_info=True)  # fmt: skip

    async def write(self) -> None:
        """Write our status over the stored object; on a conflict re-read and write again."""
        async with self._write_lock:
            self._dirty = False
            pods = [n for n in self.nodes.values() if n.get("type") == "Pod"]
            done = sum(1 for n in pods if n.get("phase") in ("Succeeded", "Skipped"))
            self.status["progress"] = f"{done}/{len(pods)}"
            obj = self.obj
            for _attempt in range(10):
                new = dict(obj)
                new["status"] = self.status
                meta = dict(new.get("metadata") or {})
                labels = dict(meta.get("labels") or {})
                phase = self.status.get("phase", "")
                labels[PHASE_LABEL] = phase
                if phase in WORKFLOW_COMPLETED:
                    labels[COMPLETED_LABEL] = "true"
                else:
                    labels.pop(COMPLETED_LABEL, None)
                meta["labels"] = labels
                new["metadata"] = meta
                try:
                    self.obj = await self.store.update(new)
                    self.writes += 1
                    self._last_write = time.monotonic()
                    return
                except ConflictError:
                    try:
                        obj = await self.store.get("Workflow", self.namespace, self.name)
                    except NotFoundError:
                        raise WorkflowDeleted() from None
                    self._observe(obj)
                except NotFoundError:
                    raise WorkflowDeleted() from None
            raise EventBridgeError(f"workflow {self.namespace}/{self.name}: too many write conflicts")


__all__ = ["WORKFLOW_COMPLETED", "RunStatus", "WorkflowDeleted"]
