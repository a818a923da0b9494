"""The workflow controller: watches the Store for Workflows and runs them with an Executor.

* New workflows (phase empty or Pending) are started; after a restart Running ones are continued
  (finished nodes are found in ``status.nodes`` and not run again; see ``operator.py``).
* Changes made by others to a running workflow (``spec.shutdown``: Terminate/Stop, a resumed
  suspend node) are passed to its run.
* A periodic resync lists the store, so a dropped watch event cannot strand a workflow.
* Mutexes and semaphores (``synchronization``) are shared by all runs through one LockManager;
  at start, the holders recorded in unfinished workflows' ``status.synchronization`` are taken
  back before any workflow runs, so a restart neither loses nor doubles a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from eventbridge.errors import NotFoundError
from eventbridge.executors.base import Executor
from eventbridge.executors.resource import ResourceRunner
from eventbridge.models.base import References
from eventbridge.store.base import Object, Store, WatchEvent
from eventbridge.tasks import cancel_all
from eventbridge.workflow.artifacts import ArtifactRepository, ObjectStore
from eventbridge.workflow.memo import MemoCache
from eventbridge.workflow.operator import WorkflowRun
from eventbridge.workflow.plugins import PluginDirectory
from eventbridge.workflow.status import WORKFLOW_COMPLETED
from eventbridge.workflow.sync import LockManager

log = logging.getLogger(__name__)

_Key = tuple[str, str]


def _key(obj: Object) -> _Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name", ""))


def _phase(obj: Object) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


class Controller:
    """Runs the Workflows in ``store``. Use ``await start()`` / ``await stop()`` or ``async with``."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        *,
        references: References | None = None,
        max_parallel_pods: int = 32,
        write_interval: float = 0.5,
        resync_seconds: float = 30.0,
        artifact_root: Path | None = None,
        plugins: PluginDirectory | None = None,
        object_store: ObjectStore | None = None,
        artifact_repository: Mapping[str, Any] | None = None,
        resources: ResourceRunner | None = None,
    ) -> None:
        """``artifact_root``: the local artifact repository (and emptyDir volumes); by default
        ``artifacts/`` next to the executor's state directory when it has one.
        ``plugins``: the executor plugins (``plugin`` templates); ``object_store``: an S3 client
        (``eventbridge.executors.artifacts_s3.S3ObjectStore``) for ``s3`` artifacts;
        ``artifact_repository``: the default repository, Argo's ``artifactRepository`` shape
        (``{"s3": {bucket, endpoint, insecure, accessKeySecret, secretKeySecret, keyFormat}}``);
        without one, outputs go to the local directory repository.
        ``resources``: runs ``resource`` templates through the Kubernetes API (cluster mode)."""
        self.store = store
        self.resources = resources
        self.locks = LockManager(references.config_map if references is not None else None)
        self.memo = MemoCache(store)
        self.plugins = plugins
        self.object_store = object_store
        self.artifact_repository = artifact_repository
        if artifact_root is None:
            state_dir = getattr(executor, "state_dir", None)
            if isinstance(state_dir, Path):
                artifact_root = state_dir.parent / "artifacts"
        self.artifacts = ArtifactRepository(artifact_root) if artifact_root is not None else None
        self.executor = executor
        self.references = references
        self.write_interval = write_interval
        self.resync_seconds = resync_seconds
        self._pod_slots = asyncio.Semaphore(max_parallel_pods)
        self._runs: dict[_Key, WorkflowRun] = {}
        self._tasks: dict[_Key, asyncio.Task[Object]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # uids recently finished here
        self._watch: AsyncIterator[WatchEvent] | None = None
        self._loops: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Controller:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take back recorded locks, watch the store, then pick up every workflow that is not finished."""
        for obj in await self.store.list("Workflow"):
            if _phase(obj) not in WORKFLOW_COMPLETED:
                self.locks.restore(obj)
        self._watch = self.store.watch("Workflow")
        self._loops.append(asyncio.create_task(self._watch_loop(self._watch)))
        await self._resync()
        self._loops.append(asyncio.create_task(self._resync_loop()))

    async def stop(self) -> None:
        """Stop watching and abandon running workflows (their status stays Running for a restart).

        Step processes are killed; a controller started later re-runs those steps.
        """
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops.clear()
        if self._watch is not None:
            aclose = getattr(self._watch, "aclose", None)
            if aclose is not None:
                await aclose()
            self._watch = None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for ns, name in list(self._runs):
            await self.executor.kill(ns, name)
        await cancel_all(tasks)
        self._tasks.clear()
        self._runs.clear()

    # public helpers ---------------------------------------------------------------------------

    async def run(self, workflow: Object) -> Object:
        """Create ``workflow`` in the store if it has no resourceVersion, run it, return the result."""
        obj = workflow
        if not (workflow.get("metadata") or {}).get("resourceVersion"):
            obj = await self.store.create(workflow)
        key = _key(obj)
        task = self._tasks.get(key)
        if task is None:
            task = self._start(obj)
        return await asyncio.shield(task)

    async def wait(self, namespace: str, name: str) -> Object:
        """Wait until the workflow being run here finishes; the stored object if not running here."""
        task = self._tasks.get((namespace, name))
        if task is not None:
            return await asyncio.shield(task)
        return await self.store.get("Workflow", namespace, name)

    @property
    def active(self) -> int:
        """How many workflows are being run now."""
        return len(self._tasks)

    # internals --------------------------------------------------------------------------------

    def _start(self, obj: Object) -> asyncio.Task[Object]:
        key = _key(obj)
        run = WorkflowRun(
            self.store,
            self.executor,
            obj,
            references=self.references,
            pod_slots=self._pod_slots,
            write_interval=self.write_interval,
            artifacts=self.artifacts,
            locks=self.locks,
            memo=self.memo,
            plugins=self.plugins,
            object_store=self.object_store,
            artifact_repository=self.artifact_repository,
            resources=self.resources,
        )
        self._runs[key] = run
        task = asyncio.create_task(self._run(key, run))
        self._tasks[key] = task
        return task

    async def _run(self, key: _Key, run: WorkflowRun) -> Object:
        try:
            result = await run.run()
            if _phase(result) in WORKFLOW_COMPLETED:
                try:
                    await self.executor.workflow_finished(result)  # e.g. workflow-level Pod GC
                except Exception:
                    log.exception("workflow %s/%s: the clean-up after it finished failed", *key)
            return result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("workflow %s/%s: the controller failed while running it", *key)
            raise
        finally:
            self._runs.pop(key, None)
            self._tasks.pop(key, None)
            uid = (run.obj.get("metadata") or {}).get("uid")
            if uid:
                self._finished[uid] = None
                while len(self._finished) > 10_000:
                    self._finished.popitem(last=False)

    async def _consider(self, obj: Object, *, fresh: bool) -> None:
        """Start ``obj`` if it needs running; pass changes to an active run."""
        key = _key(obj)
        run = self._runs.get(key)
        if run is not None:
            if str((obj.get("metadata") or {}).get("resourceVersion")) != str(
                (run.obj.get("metadata") or {}).get("resourceVersion")
            ):
                run.observe(obj)
            return
        if _phase(obj) in WORKFLOW_COMPLETED:
            return
        uid = (obj.get("metadata") or {}).get("uid")
        if uid in self._finished or not fresh:
            # The event may predate a run that already finished here: read the current state.
            try:
                obj = await self.store.get("Workflow", *key)
            except NotFoundError:
                return
            if _phase(obj) in WORKFLOW_COMPLETED or key in self._runs:
                return
        self._start(obj)

    async def _watch_loop(self, stream: AsyncIterator[WatchEvent]) -> None:
        async for event in stream:
            try:
                if event.type == "DELETED":
                    await self._deleted(event.object)
                else:
                    await self._consider(event.object, fresh=event.type == "ADDED")
            except Exception:
                log.exception("workflow watch: could not handle a %s event", event.type)

    async def _deleted(self, obj: Object) -> None:
        key = _key(obj)
        task = self._tasks.get(key)
        if task is not None:
            task.cancel()
            await self.executor.kill(*key)
        self.locks.release_workflow(*key)
        if self.artifacts is not None:
            await asyncio.to_thread(self.artifacts.delete_workflow, *key)

    async def _resync(self) -> None:
        for obj in await self.store.list("Workflow"):
            if _phase(obj) not in WORKFLOW_COMPLETED and _key(obj) not in self._runs:
                await self._consider(obj, fresh=True)

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_seconds)
            try:
                await self._resync()
            except Exception:
                log.exception("workflow resync failed")
