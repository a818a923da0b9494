"""The embedded process: everything in one asyncio process, built from settings.

Embedded mode is one asyncio process: the SQLite event log (bus), the SQLite workflow store,
the host executor, the workflow controller, the sensors, the event sources and the API server.
Manifests come from files and folders that are watched and re-applied on change; a file that
breaks keeps its last good objects running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import AlreadyExistsError, NotFoundError
from eventbridge.executors.artifacts_s3 import S3ObjectStore
from eventbridge.executors.host import HostExecutor
from eventbridge.heap import Janitor, settle_after_start, unsettle
from eventbridge.models.base import Finding, Manifest, References
from eventbridge.models.core import ConfigMap
from eventbridge.models.crossrefs import cross_references
from eventbridge.models.eventbus import EventBus, Retention, log_retention
from eventbridge.models.eventsource import EventSource
from eventbridge.models.loader import Diagnostic, Loaded, load_paths
from eventbridge.models.references import ManifestReferences
from eventbridge.models.sensor import Sensor
from eventbridge.models.workflow import Workflow
from eventbridge.sensor.lint import sensor_findings
from eventbridge.sensor.manager import SensorManager
from eventbridge.server.app import ApiContext, build_app
from eventbridge.server.auth import load_auth
from eventbridge.sources.manager import SourceManager
from eventbridge.store.base import Object, Store
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow import operations
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.cron import CronScheduler
from eventbridge.workflow.plugins import ConfigMapPlugins

log = logging.getLogger(__name__)

#: Kinds that the runtime keeps in the store when they are found in the watched paths.
STORED_KINDS = ("WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
FROM_FILE_ANNOTATION = "eventbridge.io/loaded-from"
_FINISHED = ("Succeeded", "Failed", "Error")


@dataclass
class Settings:
    """Settings of the embedded process (the CLI fills them from flags and EVENTBRIDGE_* env)."""

    paths: list[Path] = field(default_factory=lambda: [Path("sensors")])
    state_dir: Path = Path(".eventbridge")
    host: str = "127.0.0.1"
    port: int = 2746
    webhook_host: str = "0.0.0.0"
    watch: bool = True
    auth_file: Path | None = None


class StoreWorkflowOperations:
    """The sensor's argoWorkflow operations (resume, retry...) done by the workflow package on the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def submit_from(
        self, kind: str, namespace: str, name: str, labels: Mapping[str, str] | None = None
    ) -> Object:
        return await operations.submit_from(self.store, kind, namespace, name, labels=labels)

    async def resubmit(self, namespace: str, name: str) -> Object:
        return await operations.resubmit(self.store, namespace, name)

    async def retry(self, namespace: str, name: str) -> Object:
        return await operations.retry(self.store, namespace, name)

    async def suspend(self, namespace: str, name: str) -> Object:
        return await operations.suspend(self.store, namespace, name)

    async def resume(self, namespace: str, name: str) -> Object:
        return await operations.resume(self.store, namespace, name)

    async def stop(self, namespace: str, name: str) -> Object:
        return await operations.stop(self.store, namespace, name)

    async def terminate(self, namespace: str, name: str) -> Object:
        return await operations.terminate(self.store, namespace, name)


class LiveReferences:
    """References that follow reloads: delegates to the latest set of Secret/ConfigMap manifests."""

    def __init__(self) -> None:
        self.current: References = ManifestReferences([])

    def secret(self, namespace: str, name: str, key: str) -> str:
        return self.current.secret(namespace, name, key)

    def config_map(self, namespace: str, name: str, key: str) -> str:
        return self.current.config_map(namespace, name, key)


def engine_checks(manifest: Manifest) -> list[Finding]:
    """Checks that need the engines' languages (expression, template, path, jq and Lua syntax)."""
    if isinstance(manifest, Sensor):
        return sensor_findings(manifest)
    return []


def report(diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        if diagnostic.severity == "error":
            log.error("%s", diagnostic)
        else:
            log.warning("%s", diagnostic)


class ManifestSet:
    """The objects currently in force, per file, keeping a broken file's last good objects."""

    def __init__(self) -> None:
        self.by_file: dict[str, list[Manifest]] = {}

    def update(self, loaded: Sequence[Loaded], diagnostics: Sequence[Diagnostic], files: set[str]) -> None:
        broken = {d.file for d in diagnostics if d.severity == "error"}
        fresh: dict[str, list[Manifest]] = {}
        for item in loaded:
            fresh.setdefault(item.file, []).append(item.manifest)
        result: dict[str, list[Manifest]] = {}
        for file in files | set(fresh):
            if file in broken and file in self.by_file:
                log.error("%s has errors; its last good version keeps running", file)
                result[file] = self.by_file[file]
            elif file in fresh:
                result[file] = fresh[file]
        self.by_file = result

    def of(self, cls: type[Manifest]) -> list[Any]:
        return [m for objs in self.by_file.values() for m in objs if isinstance(m, cls)]

    def all(self) -> list[tuple[str, Manifest]]:
        return [(f, m) for f, objs in self.by_file.items() for m in objs]


def _files_under(paths: Sequence[Path]) -> set[str]:
    files: set[str] = set()
    for path in paths:
        if path.is_dir():
            files |= {str(p) for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()}
        elif path.exists():
            files.add(str(path))
    return files


class EmbeddedRuntime:
    """The whole embedded process. ``async with EmbeddedRuntime(settings):`` runs it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        state = settings.state_dir.absolute()
        self.store = SqliteStore(state / "store.db")
        self.bus = SqliteBus(state / "events.db")
        self.executor = HostExecutor(state / "steps")
        self.references = LiveReferences()
        self.controller = Controller(
            self.store,
            self.executor,
            references=self.references,
            artifact_root=state / "artifacts",
            object_store=S3ObjectStore(),
        )
        self.cron = CronScheduler(self.store)
        self.sensors = SensorManager(
            self.bus,
            self.store,
            self.references,
            state_path=state / "sensors.db",
            workflow_ops=StoreWorkflowOperations(self.store),
        )
        self.sources = SourceManager(self.bus, self.references, host=settings.webhook_host, state_dir=state / "sources")
        # Once a burst of events has drained, hand the memory it used back to the system.
        self.janitor = Janitor(lambda: self.bus.backlog, [self.bus.release_memory, self.store.release_memory])
        self.manifests = ManifestSet()
        self._stored: set[tuple[str, str, str]] = set()
        self._runner: web.AppRunner | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self.api_url = ""

    async def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        await self.store.start()
        await self.bus.start()
        await self.controller.start()
        await self.cron.start()
        # Sensors subscribe before the sources open their ports, so no first event is missed.
        await self.reload()
        app = build_app(
            ApiContext(
                store=self.store,
                executor=self.executor,
                bus=self.bus,
                eventsources=lambda: self.manifests.of(EventSource),
                sensors=lambda: self.manifests.of(Sensor),
                sources=self.sources,
                traces=self.sensors,
                cron_next=self.cron.next_fire,
                auth=load_auth(self.settings.auth_file),
            )
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        port = self._runner.addresses[0][1] if self._runner.addresses else self.settings.port
        self.api_url = f"http://{self.settings.host}:{port}"
        log.info("API listening on %s", self.api_url)
        if self.settings.watch:
            self._watch_task = asyncio.create_task(self._watch(), name="manifest-watch")
        self.janitor.start()
        settle_after_start()

    async def stop(self) -> None:
        await self.janitor.stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await self.sources.stop()
        await self.sensors.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.cron.stop()
        await self.controller.stop()
        await self.bus.stop()
        await self.store.stop()
        unsettle()

    async def __aenter__(self) -> EmbeddedRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def reload(self) -> None:
        """Load the watched paths again and apply what changed."""
        async with self._reload_lock:
            result = await asyncio.to_thread(load_paths, self.settings.paths)
            report([*result.diagnostics, *cross_references(result.objects)])
            self.manifests.update(result.objects, result.diagnostics, _files_under(self.settings.paths))
            self.references.current = ManifestReferences((m for _, m in self.manifests.all()), environ=os.environ)
            self.controller.plugins = _plugins(m for _, m in self.manifests.all())
            self._retain(log_retention(self.manifests.of(EventBus)))
            await self._sync_store_objects()
            await self.sensors.apply(self.manifests.of(Sensor))
            await self.sources.apply(self.manifests.of(EventSource))

    def _retain(self, retention: Retention) -> None:
        """Apply an EventBus manifest's retention to the log (logged when it changes)."""
        before = (self.bus.max_age, self.bus.max_events)
        self.bus.retain(retention.max_age, retention.max_events)
        if (self.bus.max_age, self.bus.max_events) != before:
            log.info("event log retention: events older than %gs or beyond the newest %d are removed (0: no bound)",
                     self.bus.max_age, self.bus.max_events)  # fmt: skip

    async def _sync_store_objects(self) -> None:
        wanted: set[tuple[str, str, str]] = set()
        for file, manifest in self.manifests.all():
            if manifest.kind in STORED_KINDS:
                key = (manifest.kind, manifest.namespace, manifest.name)
                wanted.add(key)
                await upsert(self.store, manifest, file)
            elif isinstance(manifest, Workflow):
                await submit_once(self.store, manifest, file)
        for kind, namespace, name in self._stored - wanted:
            with contextlib.suppress(NotFoundError):
                await self.store.delete(kind, namespace, name)
        self._stored = wanted

    async def _watch(self) -> None:
        from watchfiles import awatch

        existing = [str(p) for p in self.settings.paths if p.exists()]
        if not existing:
            log.warning("none of the manifest paths exist (%s); nothing to watch", self.settings.paths)
            return
        async for _changes in awatch(*existing, debounce=200, step=50):
            try:
                await self.reload()
            except Exception:  # a reload must never stop the process; the error is logged
                log.exception("reloading manifests failed; the previous objects keep running")


async def upsert(store: Store, manifest: Manifest, file: str) -> Object:
    """Create or replace a stored object with the manifest's content."""
    obj = manifest.dump()
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = manifest.namespace
    meta.setdefault("annotations", {})[FROM_FILE_ANNOTATION] = file
    try:
        current = await store.get(manifest.kind, manifest.namespace, manifest.name)
    except NotFoundError:
        return await store.create(obj)
    if {k: v for k, v in current.items() if k not in ("metadata", "status")} == {
        k: v for k, v in obj.items() if k not in ("metadata", "status")
    } and (current["metadata"].get("labels") == meta.get("labels")):
        return current
    meta["resourceVersion"] = current["metadata"]["resourceVersion"]
    if "status" in current:
        obj["status"] = current["status"]
    return await store.update(obj)


async def submit_once(store: Store, manifest: Workflow, file: str) -> None:
    """A Workflow found in a watched file is created once (by name), as `kubectl apply` would."""
    if not manifest.metadata.name:
        log.warning(
            "%s: Workflow with only generateName is not submitted from watched files; use `eventbridge submit`", file
        )
        return
    obj = manifest.dump()
    obj.setdefault("metadata", {})["namespace"] = manifest.namespace
    with contextlib.suppress(AlreadyExistsError):
        await store.create(obj)


async def wait_for_workflow(store: Store, namespace: str, name: str, deadline: float | None = None) -> Object:
    """Wait until a workflow has finished (at most ``deadline`` seconds) and return it."""
    stream = store.watch("Workflow", namespace)
    try:
        async with asyncio.timeout(deadline):
            current = await store.get("Workflow", namespace, name)
            while (current.get("status") or {}).get("phase") not in _FINISHED:
                change = await anext(stream)
                if change.object["metadata"]["name"] == name:
                    if change.type == "DELETED":
                        raise NotFoundError(f"workflow {namespace}/{name} was deleted")
                    current = change.object
            return current
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _plugins(manifests: Iterable[Manifest]) -> ConfigMapPlugins:
    """The executor plugins declared by ``ExecutorPlugin`` ConfigMaps among ``manifests``."""
    return ConfigMapPlugins(m.dump() for m in manifests if isinstance(m, ConfigMap))


async def run_once(workflow: dict[str, Any], paths: Sequence[Path], state_dir: Path | None = None) -> Object:
    """Run one Workflow to completion in this process (``eventbridge run``)."""
    result = await asyncio.to_thread(load_paths, list(paths)) if paths else None
    if result is not None:
        # Objects with errors are left out and reported; the workflow fails later only if it needs one.
        report(result.errors)
    with tempfile.TemporaryDirectory(prefix="eventbridge-run-") as scratch:
        state = state_dir or Path(scratch)
        store = SqliteStore(state / "store.db")
        executor = HostExecutor(state / "steps")
        references = LiveReferences()
        manifests = [item.manifest for item in (result.objects if result else [])]
        references.current = ManifestReferences(manifests, environ=os.environ)
        controller = Controller(
            store,
            executor,
            references=references,
            artifact_root=state / "artifacts",
            plugins=_plugins(manifests),
            object_store=S3ObjectStore(),
        )
        await store.start()
        try:
            for item in result.objects if result else []:
                if item.manifest.kind in STORED_KINDS:
                    await upsert(store, item.manifest, item.file)
            await controller.start()
            try:
                created = await store.create(workflow)
                meta = created["metadata"]
                return await wait_for_workflow(store, meta["namespace"], meta["name"])
            finally:
                await controller.stop()
        finally:
            await store.stop()
