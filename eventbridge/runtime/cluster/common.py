"""What every cluster role shares: settings, Secrets and ConfigMaps from the API server,
watched object caches, the health server, and running a role until it is told to stop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from aiohttp import web
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge import metrics
from eventbridge.errors import (
    ConflictError,
    EventBridgeError,
    InvalidError,
    NotFoundError,
    TemporaryError,
)
from eventbridge.executors.pod import DEFAULT_WAIT_IMAGE
from eventbridge.heap import settle_after_start, unsettle
from eventbridge.models.base import Manifest
from eventbridge.models.kinds import parse_manifest
from eventbridge.runtime.embedded import engine_checks
from eventbridge.store.base import Object
from eventbridge.store.kube import KubeStore, map_api_error
from eventbridge.tasks import cancel_all

log = logging.getLogger(__name__)

DEFAULT_BUS = "default"
CONTROLLER_LEASE = "eventbridge-controller"
EVENTSOURCE_LEASE = "eventbridge-eventsource"
#: Source types that must run in one process at a time (Argo runs them with leader election).
SINGLE_ACTIVE_FIELDS = ("calendar", "kafka", "file", "resource")


@dataclass
class ClusterSettings:
    """Settings shared by the roles (the CLI fills them from flags and ``EVENTBRIDGE_*`` env)."""

    namespace: str = "default"  # the role's own namespace: its Leases live here
    all_namespaces: bool = False  # serve the objects of every namespace (needs deploy/cluster-wide's RBAC)
    kubeconfig: str | None = None
    health_host: str = "0.0.0.0"
    health_port: int | None = None  # None: no health server
    resync_seconds: float = 30.0  # re-read watched objects this often (a missed event cannot stick)
    # The Kafka bus used when the namespace has no EventBus object of the name asked for.
    kafka_bootstrap: str | None = None
    kafka_topic: str | None = None  # default: <namespace>-<eventbus name>, as Argo names it
    kafka_partitions: int = 3
    kafka_idempotent: bool = True  # brokers without InitProducerId (Tansu's memory storage) need False
    kafka_session_timeout_ms: int = 10_000
    kafka_rebalance_timeout_ms: int = 10_000
    # eventsource
    webhook_host: str = "0.0.0.0"
    state_dir: Path | None = None
    # controller
    executor_image: str = DEFAULT_WAIT_IMAGE
    executor_service_account: str | None = None
    max_parallel_pods: int = 32
    # server
    host: str = "0.0.0.0"
    port: int = 2746
    auth_file: Path | None = None
    auth_mode: str = "tokens"  # "tokens": the token file; "kube": TokenReview + SubjectAccessReview

    @property
    def watch_namespace(self) -> str | None:
        """The namespace whose objects the role serves; None: every namespace."""
        return None if self.all_namespaces else self.namespace

    def describe_scope(self) -> str:
        """``namespace x`` or ``all namespaces (Leases in x)``, for logs."""
        if self.all_namespaces:
            return f"all namespaces (Leases in {self.namespace})"
        return f"namespace {self.namespace}"


class Role(Protocol):
    """One cluster role: ``run`` until ``stop`` is set (or leadership is lost); returns the exit code."""

    name: str

    def ready(self) -> bool: ...

    async def run(self, stop: asyncio.Event) -> int: ...


# ---------------------------------------------------------------------------------------------
# Secrets and ConfigMaps from the API server


class KubeReferences:
    """:class:`~eventbridge.models.base.References` read from Kubernetes Secrets and ConfigMaps.

    The protocol is synchronous (sources and triggers call it while they run); each read runs in a
    small thread pool and is awaited for at most ``timeout`` seconds. Values are cached for ``ttl``
    seconds, so a burst of events does not become a burst of API calls. Errors name the object and
    key, never a value; a 403 names the missing RBAC permission.
    """

    def __init__(self, api_client: k8s.ApiClient, *, ttl: float = 10.0, timeout: float = 10.0) -> None:
        self._core = k8s.CoreV1Api(api_client)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kube-references")
        self._ttl = ttl
        self._timeout = timeout
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, str]]] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def secret(self, namespace: str, name: str, key: str) -> str:
        data = self._read("secret", namespace, name)
        if key not in data:
            raise NotFoundError(f"secret {namespace}/{name} has no key {key!r}")
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise InvalidError(f"secret {namespace}/{name}: key {key!r} is not UTF-8 text") from None

    def config_map(self, namespace: str, name: str, key: str) -> str:
        data = self._read("configmap", namespace, name)
        if key not in data:
            raise NotFoundError(f"configmap {namespace}/{name} has no key {key!r}")
        return data[key]

    def config_map_state(self, namespace: str, name: str, *, create: bool) -> ConfigMapState:
        """Source state in ConfigMap ``namespace/name`` (see :class:`ConfigMapState`)."""
        return ConfigMapState(self._core, self._pool, namespace, name, create=create, timeout=self._timeout)

    def _read(self, kind: str, namespace: str, name: str) -> dict[str, str]:
        cache_key = (kind, namespace, name)
        cached = self._cache.get(cache_key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        reader = self._core.read_namespaced_secret if kind == "secret" else self._core.read_namespaced_config_map

        def fetch() -> dict[str, str]:
            response: Any = reader(name, namespace, _preload_content=False)
            body = json.loads(response.data)
            return {str(k): str(v) for k, v in (body.get("data") or {}).items()}

        what = f"{kind} {namespace}/{name}"
        try:
            data = self._pool.submit(fetch).result(timeout=self._timeout)
        except ApiException as exc:
            raise map_api_error(exc, what) from None
        except TimeoutError:
            raise TemporaryError(f"{what}: the API server did not answer within {self._timeout:g}s") from None
        except OSError as exc:
            raise TemporaryError(f"{what}: API server unreachable: {exc}") from None
        self._cache[cache_key] = (time.monotonic() + self._ttl, data)
        return data


class ConfigMapState:
    """Source state as keys of one ConfigMap (:class:`~eventbridge.sources.base.SourceState`).

    Every call runs in the References' thread pool, awaited without blocking the event loop, for at
    most ``timeout`` seconds. ``save`` is optimistic: it sends back the resourceVersion it read, and
    on a conflict (someone else wrote the ConfigMap meanwhile) reads again and retries; a missing
    ConfigMap is created when ``create``, else the write fails naming it. Reads are never cached.
    """

    CONFLICT_RETRIES = 8

    def __init__(
        self, core: k8s.CoreV1Api, pool: ThreadPoolExecutor, namespace: str, name: str, *, create: bool, timeout: float
    ) -> None:
        self._core = core
        self._pool = pool
        self.namespace, self.name, self.create = namespace, name, create
        self._timeout = timeout
        self._what = f"configmap {namespace}/{name}"

    async def _run(self, fn: Callable[[], Any]) -> Any:
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        try:
            return await asyncio.wait_for(future, self._timeout)
        except ApiException as exc:
            raise map_api_error(exc, self._what) from None
        except TimeoutError:
            raise TemporaryError(f"{self._what}: the API server did not answer within {self._timeout:g}s") from None
        except OSError as exc:
            raise TemporaryError(f"{self._what}: API server unreachable: {exc}") from None

    def _get(self) -> dict[str, Any] | None:
        try:
            response: Any = self._core.read_namespaced_config_map(self.name, self.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    async def load(self, key: str) -> str | None:
        body = await self._run(self._get)
        value = ((body or {}).get("data") or {}).get(key)
        return None if value is None else str(value)

    def _write(self, key: str, value: str) -> bool:
        """One read-modify-write; False when it lost a race (conflict, or created meanwhile)."""
        body = self._get()
        try:
            if body is None:
                if not self.create:
                    raise NotFoundError(
                        f"{self._what} does not exist (create it, or set persistence.configMap.createIfNotExist)"
                    )
                fresh = {"metadata": {"name": self.name, "namespace": self.namespace}, "data": {key: value}}
                self._core.create_namespaced_config_map(self.namespace, cast(Any, fresh), _preload_content=False)
                return True
            data = body.get("data") or {}
            if data.get(key) == value:
                return True
            data[key] = value
            body["data"] = data  # metadata.resourceVersion as read: a concurrent write answers 409
            self._core.replace_namespaced_config_map(self.name, self.namespace, cast(Any, body), _preload_content=False)
            return True
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise

    async def save(self, key: str, value: str) -> None:
        for _ in range(self.CONFLICT_RETRIES):
            if await self._run(lambda: self._write(key, value)):
                return
        raise ConflictError(f"{self._what}: kept changing under {self.CONFLICT_RETRIES} attempts to write {key!r}")


# ---------------------------------------------------------------------------------------------
# Objects from the API server


class ManifestCache:
    """Parses the objects of one kind, keeping the last good version of an object whose new
    version is invalid (reported once per resourceVersion)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._good: dict[tuple[str, str], tuple[str, Manifest]] = {}
        self._reported: set[tuple[str, str, str]] = set()

    def update(self, objects: Iterable[Object]) -> list[Manifest]:
        """The manifests in force for ``objects`` (the kind's current list)."""
        result: dict[tuple[str, str], tuple[str, Manifest]] = {}
        for obj in objects:
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
            rv = str(meta.get("resourceVersion") or "")
            previous = self._good.get(key)
            if previous is not None and previous[0] == rv:
                result[key] = previous
                continue
            try:
                manifest = parse_manifest({k: v for k, v in obj.items() if k != "status"})
                errors = [f for f in engine_checks(manifest) if f.severity == "error"]
                if errors:
                    raise InvalidError("; ".join(f"{f.path}: {f.message}" for f in errors))
            except EventBridgeError as exc:
                if (*key, rv) not in self._reported:
                    self._reported.add((*key, rv))
                    keeping = "; its last good version keeps running" if previous is not None else ""
                    log.error("%s %s/%s is invalid: %s%s", self.kind, key[0], key[1], exc, keeping)
                if previous is not None:
                    result[key] = previous
                continue
            result[key] = (rv, manifest)
        self._good = result
        return [manifest for _, manifest in result.values()]


class ObjectWatcher:
    """Calls ``reload`` when objects of the watched kinds change (debounced), and every
    ``resync_seconds`` anyway. ``reload`` errors are logged; the watcher keeps going."""

    def __init__(
        self,
        store: KubeStore,
        kinds: Sequence[str],
        namespace: str | None,
        reload: Callable[[], Awaitable[None]],
        *,
        resync_seconds: float = 30.0,
        debounce: float = 0.1,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.namespace = namespace
        self._reload = reload
        self._resync = resync_seconds
        self._debounce = debounce
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.loaded = asyncio.Event()  # set after the first successful reload

    async def start(self) -> None:
        for kind in self.kinds:
            self._tasks.append(asyncio.create_task(self._follow(kind), name=f"watch {kind}"))
        self._changed.set()
        self._tasks.append(asyncio.create_task(self._loop(), name="reload"))

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()

    async def _follow(self, kind: str) -> None:
        """Mark a change on every event; a watch that fails (e.g. RBAC refused it) is opened again later."""
        while True:
            stream = self.store.watch(kind, self.namespace)
            try:
                async for _event in stream:
                    self._changed.set()
            except EventBridgeError as exc:
                log.error("watching %s failed: %s; trying again in %gs", kind, exc, self._resync)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(self._resync)

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._resync)
            await asyncio.sleep(self._debounce)
            self._changed.clear()
            try:
                await self._reload()
                self.loaded.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("applying %s from the API server failed; retrying later", ", ".join(self.kinds))


# ---------------------------------------------------------------------------------------------
# Kafka buses from EventBus objects


class HealthServer:
    """``/healthz`` (the loop answers), ``/readyz`` (the role says it is ready), ``/metrics``."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        self.host, self.port = host, port
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ready") if self._ready() else web.Response(status=503, text="not ready")

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response


#: Seconds after a role starts when its heap is settled (heap.settle_after_start).
SETTLE_AFTER_S = 10.0


async def run_role(role: Role, settings: ClusterSettings, stop: asyncio.Event) -> int:
    """Run ``role`` with its health server (when ``health_port`` is set) until it returns."""
    health = None
    if settings.health_port is not None:
        health = HealthServer(settings.health_host, settings.health_port, role.ready)
        await health.start()
    # Start-up is over well within this time; then the long-lived objects leave the collector's view.
    settle = asyncio.get_running_loop().call_later(SETTLE_AFTER_S, settle_after_start)
    try:
        return await role.run(stop)
    finally:
        settle.cancel()
        unsettle()
        if health is not None:
            await health.stop()


async def until(stop: asyncio.Event, task: asyncio.Future[Any]) -> None:
    """Wait until ``stop`` is set or ``task`` ends."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


# ---------------------------------------------------------------------------------------------
# controller
