"""Cluster mode: the four roles, each one process (one Deployment in ``deploy/``), built from settings.

* **controller**: :class:`~eventbridge.workflow.controller.Controller` on the Kubernetes Store and
  the Pod executor, plus the :class:`~eventbridge.workflow.cron.CronScheduler`, both only while
  this process holds the Lease ``eventbridge-controller``. When leadership is lost the role stops
  them and exits with status 1 (its Deployment restarts it as a candidate). On SIGTERM the role
  stops without deleting step Pods: the next leader adopts them (Pod names are deterministic).
* **eventsource**: EventSource objects from the API server (list + watch, re-applied live; an
  invalid version is reported and the last good one keeps running). Secrets come from Kubernetes
  Secrets (:class:`KubeReferences`). Each EventSource publishes to the Kafka bus of the EventBus
  named by ``spec.eventBusName`` (default ``default``) in its namespace, or to the bus configured
  by flags/env when there is no such object. Single-active types (calendar, kafka, file) run only
  while this process holds the Lease ``eventbridge-eventsource``; losing it stops them and the
  role campaigns again (the webhook-style sources keep serving).
* **sensor**: Sensor objects from the API server (watched); the sensors of one bus share a
  :class:`~eventbridge.sensor.manager.SensorManager`, each sensor one consumer group; triggers
  create Workflow custom resources through the Kubernetes Store; argoWorkflow operations act on
  the store as in embedded mode.
* **server**: the API and UI over the Kubernetes Store (logs through ``pods/log``).

Every role can serve ``/healthz``, ``/readyz`` and ``/metrics`` on a health port.

Scope: a role serves the objects of its own namespace (``ClusterSettings.namespace``, with
deploy/'s namespaced Role), or with ``all_namespaces`` those of every namespace, as Argo Events'
controller does by default (cluster-scoped list and watch, deploy/cluster-wide's ClusterRole). Its
Leases stay in its own namespace either way; step Pods are created in each Workflow's namespace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from aiohttp import web
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge import metrics
from eventbridge.bus.base import Bus, Subscription
from eventbridge.bus.kafka import KafkaBus, KafkaSettings
from eventbridge.errors import (
    ConflictError,
    EventBridgeError,
    InvalidError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from eventbridge.events import Event
from eventbridge.executors.artifacts_s3 import S3ObjectStore
from eventbridge.executors.base import Executor, StepResult, StepSpec
from eventbridge.executors.pod import DEFAULT_WAIT_IMAGE, PodExecutor
from eventbridge.executors.resource import ResourceRunner
from eventbridge.leader import LeaderElector, LeaseSettings
from eventbridge.models.base import Manifest, References
from eventbridge.models.core import SecretKeySelector
from eventbridge.models.eventbus import EventBus
from eventbridge.models.eventsource import EventSource, EventSourceSpec
from eventbridge.models.kinds import parse_manifest
from eventbridge.models.sensor import Sensor
from eventbridge.runtime.embedded import StoreWorkflowOperations, engine_checks
from eventbridge.sensor.manager import SensorManager
from eventbridge.server.app import ApiContext, build_app
from eventbridge.server.auth import load_auth
from eventbridge.server.auth_kube import KubeAuth
from eventbridge.sources.manager import SourceManager
from eventbridge.store.base import Object
from eventbridge.store.kube import KubeStore, api_client_from_environment, map_api_error
from eventbridge.store.kube_objects import KubeObjects
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.cron import CronScheduler

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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
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


@dataclass(frozen=True)
class BusConfig:
    """What an EventBus (or the flags) says: the Kafka settings and the sensor group options."""

    fingerprint: str
    settings: KafkaSettings = field(compare=False)
    group_prefix: str = "sensor"
    from_start: bool = False


def _ssl_context(tls: Any, namespace: str, references: References) -> ssl.SSLContext:
    def value(selector: SecretKeySelector | None) -> str | None:
        return references.secret(namespace, selector.name, selector.key) if selector is not None else None

    context = ssl.create_default_context()
    ca = value(tls.ca_cert_secret)
    if ca:
        context.load_verify_locations(cadata=ca)
    cert, key = value(tls.client_cert_secret), value(tls.client_key_secret)
    if cert and key:
        with tempfile.TemporaryDirectory(prefix="eventbridge-tls-") as folder:
            cert_file, key_file = Path(folder) / "tls.crt", Path(folder) / "tls.key"
            cert_file.write_text(cert)
            key_file.write_text(key)
            key_file.chmod(0o600)
            context.load_cert_chain(str(cert_file), str(key_file))
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def bus_config(
    settings: ClusterSettings, namespace: str, bus_name: str, eventbus: EventBus | None, references: References
) -> BusConfig:
    """The Kafka bus of EventBus ``namespace/bus_name`` (``spec.kafka``), else the flags' bus.

    Raises InvalidError when neither configures Kafka, or when a secret it names is missing."""
    kafka = eventbus.spec.kafka if eventbus is not None else None
    if eventbus is not None and kafka is None:
        raise InvalidError(f"EventBus {namespace}/{bus_name} has no spec.kafka (cluster mode uses Kafka)")
    url = (kafka.url if kafka is not None else None) or (settings.kafka_bootstrap if eventbus is None else None)
    if not url:
        raise InvalidError(
            f"no EventBus {namespace}/{bus_name} and no Kafka bootstrap servers given "
            "(create the EventBus with spec.kafka.url, or set --kafka-bootstrap / EVENTBRIDGE_KAFKA_BOOTSTRAP)"
        )
    topic = (kafka.topic if kafka is not None else None) or settings.kafka_topic or f"{namespace}-{bus_name}"
    ssl_context: ssl.SSLContext | None = None
    sasl: dict[str, str] = {}
    group_prefix, from_start = "sensor", False
    identity: list[Any] = [url, topic]
    if kafka is not None:
        if kafka.tls is not None and (
            kafka.tls.enabled is not False
            or kafka.tls.ca_cert_secret
            or kafka.tls.client_cert_secret
            or kafka.tls.insecure_skip_verify
        ):
            ssl_context = _ssl_context(kafka.tls, namespace, references)
            identity.append(kafka.tls.dump())
        if kafka.sasl is not None:
            sasl = {"mechanism": (kafka.sasl.mechanism or "PLAIN").upper()}
            if kafka.sasl.user_secret is not None:
                sasl["username"] = references.secret(namespace, kafka.sasl.user_secret.name, kafka.sasl.user_secret.key)
            if kafka.sasl.password_secret is not None:
                selector = kafka.sasl.password_secret
                sasl["password"] = references.secret(namespace, selector.name, selector.key)
            identity.append(hashlib.sha256(json.dumps(sasl, sort_keys=True).encode()).hexdigest())
        group = kafka.consumer_group
        if group is not None:
            group_prefix = group.group_name or group_prefix
            from_start = bool(group.oldest)
    kafka_settings = KafkaSettings(
        bootstrap_servers=url,
        topic=topic,
        partitions=settings.kafka_partitions,
        ssl_context=ssl_context,
        sasl=sasl,
        idempotent=settings.kafka_idempotent,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    identity += [group_prefix, from_start, settings.kafka_partitions, settings.kafka_idempotent]
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return BusConfig(fingerprint, kafka_settings, group_prefix, from_start)


class BusPool:
    """Started Kafka buses by configuration; ``retain`` stops the ones no longer used."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self._buses: dict[str, KafkaBus] = {}
        self._start_timeout = start_timeout

    async def get(self, config: BusConfig) -> KafkaBus:
        bus = self._buses.get(config.fingerprint)
        if bus is None:
            bus = KafkaBus(config.settings)
            try:
                await asyncio.wait_for(bus.start(), self._start_timeout)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await bus.stop()
                if isinstance(exc, Exception):
                    raise TemporaryError(
                        f"Kafka bus {config.settings.bootstrap_servers} topic {config.settings.topic} "
                        f"cannot be reached: {exc or type(exc).__name__}"
                    ) from exc
                raise
            self._buses[config.fingerprint] = bus
            log.info("Kafka bus %s topic %s connected", config.settings.bootstrap_servers, config.settings.topic)
        return bus

    async def retain(self, fingerprints: set[str]) -> None:
        for fingerprint in [f for f in self._buses if f not in fingerprints]:
            await self._buses.pop(fingerprint).stop()

    async def stop(self) -> None:
        await self.retain(set())


class RoutingBus:
    """A publish-only Bus that sends each event to the bus of its EventSource (namespace, name)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], KafkaBus] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, event: Event) -> bool:
        bus = self.routes.get((event.namespace, event.source))
        if bus is None:
            raise TemporaryError(f"EventSource {event.namespace}/{event.source} has no event bus right now")
        return await bus.publish(event)

    def subscribe(self, group: str, *, from_start: bool = False) -> Subscription:
        raise PermanentError("the eventsource role only publishes")


def _eventbuses(objects: Iterable[Manifest]) -> dict[tuple[str, str], EventBus]:
    return {(m.namespace, m.name): m for m in objects if isinstance(m, EventBus)}


# ---------------------------------------------------------------------------------------------
# Health, readiness and metrics


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


async def run_role(role: Role, settings: ClusterSettings, stop: asyncio.Event) -> int:
    """Run ``role`` with its health server (when ``health_port`` is set) until it returns."""
    health = None
    if settings.health_port is not None:
        health = HealthServer(settings.health_host, settings.health_port, role.ready)
        await health.start()
    try:
        return await role.run(stop)
    finally:
        if health is not None:
            await health.stop()


async def _until(stop: asyncio.Event, task: asyncio.Future[Any]) -> None:
    """Wait until ``stop`` is set or ``task`` ends."""
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _cancel(task: asyncio.Future[Any] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
    if task is not None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# ---------------------------------------------------------------------------------------------
# controller


class _DetachableExecutor:
    """The Pod executor, except that after :meth:`detach` ``kill`` leaves Pods alone: a controller
    that shuts down or steps down abandons its steps to the next leader, which adopts the Pods."""

    def __init__(self, inner: PodExecutor) -> None:
        self.inner = inner
        self.detached = False

    def detach(self) -> None:
        self.detached = True

    async def run(self, step: StepSpec) -> StepResult:
        return await self.inner.run(step)

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None:
        if not self.detached:
            await self.inner.kill(namespace, workflow, node_id)

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str:
        return await self.inner.read_log(namespace, workflow, node_id)

    async def workflow_finished(self, workflow: dict[str, Any]) -> None:
        await self.inner.workflow_finished(workflow)


class ControllerRole:
    """``eventbridge controller``: see the module docstring."""

    name = "controller"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self._running = False

    def ready(self) -> bool:
        """Ready while leading and running (a standby is alive but not ready)."""
        return self._running

    async def run(self, stop: asyncio.Event) -> int:
        settings = self.settings
        elector = LeaderElector(self.api_client, LeaseSettings.from_env(CONTROLLER_LEASE, settings.namespace))
        failure: list[BaseException] = []

        async def lead() -> None:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("the controller failed")
                failure.append(exc)

        log.info("controller: waiting for the Lease %s/%s", elector.settings.namespace, CONTROLLER_LEASE)
        election = asyncio.ensure_future(elector.run(lead))
        try:
            await _until(stop, election)
            if not election.done():
                await _cancel(election)
                return 0
            if not election.result():
                log.error("controller: leadership lost; exiting so that a candidate takes over")
                return 1
            return 1 if failure else 0
        finally:
            await elector.close()

    async def _lead(self) -> None:
        settings = self.settings
        store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        pods = PodExecutor(
            self.api_client,
            namespace=settings.watch_namespace,
            wait_image=settings.executor_image,
            service_account=settings.executor_service_account,
        )
        executor = _DetachableExecutor(pods)
        references = KubeReferences(self.api_client)
        objects = KubeObjects(self.api_client, default_namespace=settings.namespace)
        controller = Controller(
            store,
            executor,
            references=references,
            max_parallel_pods=settings.max_parallel_pods,
            object_store=S3ObjectStore(),
            resources=ResourceRunner(objects),
        )
        cron = CronScheduler(store)
        try:
            await store.start()
            await controller.start()
            await cron.start()
            self._running = True
            log.info("controller: leading; running the Workflows and CronWorkflows of %s", settings.describe_scope())
            await asyncio.Event().wait()
        finally:
            self._running = False
            executor.detach()
            with contextlib.suppress(Exception):
                await cron.stop()
            with contextlib.suppress(Exception):
                await controller.stop()
            await pods.stop()
            await objects.close()
            references.close()
            await store.stop()


# ---------------------------------------------------------------------------------------------
# eventsource


def split_single_active(eventsource: EventSource) -> tuple[EventSource | None, EventSource | None]:
    """``(everywhere part, single-active part)`` of an EventSource (None where it has no event)."""
    spec = eventsource.spec
    present = [name for name in EventSourceSpec.SOURCE_FIELDS if getattr(spec, name)]
    single = [name for name in present if name in SINGLE_ACTIVE_FIELDS]
    other = [name for name in present if name not in SINGLE_ACTIVE_FIELDS]

    def only(fields: list[str]) -> EventSource | None:
        if not fields:
            return None
        cleared = {name: None for name in present if name not in fields}
        return eventsource.model_copy(update={"spec": spec.model_copy(update=cleared)})

    return only(other), only(single)


class EventSourceRole:
    """``eventbridge eventsource``: see the module docstring."""

    name = "eventsource"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.references = KubeReferences(self.api_client)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.buses = BusPool()
        self.router_bus = RoutingBus()
        bus: Bus = self.router_bus
        self.sources = SourceManager(
            bus, self.references, host=settings.webhook_host, state_dir=settings.state_dir, states=self.references
        )
        self.single_sources = SourceManager(
            bus, self.references, host=settings.webhook_host, state_dir=settings.state_dir, states=self.references
        )
        self._eventsources = ManifestCache("EventSource")
        self._eventbuses = ManifestCache("EventBus")
        self._single_wanted: list[EventSource] = []
        self._single_lock = asyncio.Lock()
        self._leading = False
        self.watcher = ObjectWatcher(
            self.store,
            ("EventSource", "EventBus"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )

    def ready(self) -> bool:
        return self.watcher.loaded.is_set()

    async def reload(self) -> None:
        """Read EventSources and EventBuses again and apply what changed."""
        ns = self.settings.watch_namespace
        eventsources = self._eventsources.update(await self.store.list("EventSource", ns))
        buses = _eventbuses(self._eventbuses.update(await self.store.list("EventBus", ns)))
        routes: dict[tuple[str, str], KafkaBus] = {}
        used: set[str] = set()
        everywhere: list[EventSource] = []
        single: list[EventSource] = []
        for eventsource in eventsources:
            assert isinstance(eventsource, EventSource)
            bus_name = eventsource.spec.event_bus_name or DEFAULT_BUS
            try:
                config = bus_config(
                    self.settings, eventsource.namespace, bus_name, buses.get((eventsource.namespace, bus_name)),
                    self.references,
                )  # fmt: skip
                routes[(eventsource.namespace, eventsource.name)] = await self.buses.get(config)
            except EventBridgeError as exc:
                log.error("EventSource %s/%s cannot run: %s", eventsource.namespace, eventsource.name, exc)
                continue
            used.add(config.fingerprint)
            here, leader_only = split_single_active(eventsource)
            everywhere += [here] if here is not None else []
            single += [leader_only] if leader_only is not None else []
        self.router_bus.routes.update(routes)
        await self.sources.apply(everywhere)
        async with self._single_lock:
            self._single_wanted = single
            if self._leading:
                await self.single_sources.apply(single)
        self.router_bus.routes = routes
        await self.buses.retain(used)

    async def _lead(self) -> None:
        async with self._single_lock:
            self._leading = True
            await self.single_sources.apply(self._single_wanted)
        try:
            await asyncio.Event().wait()
        finally:
            async with self._single_lock:
                self._leading = False
                await self.single_sources.apply([])

    async def _campaign(self) -> None:
        while True:
            elector = LeaderElector(self.api_client, LeaseSettings.from_env(EVENTSOURCE_LEASE, self.settings.namespace))
            try:
                if not await elector.run(self._lead):
                    log.warning("eventsource: leadership lost; calendar/kafka/file sources stopped; campaigning again")
            finally:
                await elector.close()

    async def run(self, stop: asyncio.Event) -> int:
        await self.store.start()
        campaign: asyncio.Task[None] | None = None
        try:
            await self.watcher.start()
            campaign = asyncio.create_task(self._campaign(), name="eventsource lease")
            await _until(stop, campaign)
            if campaign.done() and not campaign.cancelled() and campaign.exception() is not None:
                log.error("eventsource: leader election failed: %s", campaign.exception())
                return 1
            return 0
        finally:
            await _cancel(campaign)
            await self.watcher.stop()
            await self.single_sources.stop()
            await self.sources.stop()
            await self.buses.stop()
            self.references.close()
            await self.store.stop()


# ---------------------------------------------------------------------------------------------
# sensor


@dataclass
class _SensorGroup:
    config: BusConfig
    bus: KafkaBus
    manager: SensorManager


class SensorRole:
    """``eventbridge sensor``: see the module docstring."""

    name = "sensor"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.references = KubeReferences(self.api_client)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.objects = KubeObjects(self.api_client, default_namespace=settings.namespace)
        self.buses = BusPool()
        self._groups: dict[str, _SensorGroup] = {}
        self._sensors = ManifestCache("Sensor")
        self._eventbuses = ManifestCache("EventBus")
        self._unplaced = 0
        self.watcher = ObjectWatcher(
            self.store,
            ("Sensor", "EventBus"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )

    def ready(self) -> bool:
        """Loaded, and every sensor's consumer group has its start committed."""
        if not self.watcher.loaded.is_set() or self._unplaced:
            return False
        return all(state == "open" for g in self._groups.values() for state in g.bus.subscription_states().values())

    async def reload(self) -> None:
        """Read Sensors and EventBuses again and apply what changed."""
        ns = self.settings.watch_namespace
        sensors = self._sensors.update(await self.store.list("Sensor", ns))
        buses = _eventbuses(self._eventbuses.update(await self.store.list("EventBus", ns)))
        placed: dict[str, tuple[BusConfig, list[Sensor]]] = {}
        unplaced = 0
        for sensor in sensors:
            assert isinstance(sensor, Sensor)
            bus_name = sensor.spec.event_bus_name or DEFAULT_BUS
            try:
                config = bus_config(
                    self.settings, sensor.namespace, bus_name, buses.get((sensor.namespace, bus_name)), self.references
                )
            except EventBridgeError as exc:
                log.error("Sensor %s/%s cannot run: %s", sensor.namespace, sensor.name, exc)
                unplaced += 1
                continue
            placed.setdefault(config.fingerprint, (config, []))[1].append(sensor)
        for fingerprint in [f for f in self._groups if f not in placed]:
            await self._drop(fingerprint)
        for fingerprint, (config, group_sensors) in placed.items():
            group = self._groups.get(fingerprint)
            if group is not None and "failed" in group.bus.subscription_states().values():
                log.warning("a Kafka consumer group of bus %s failed to open; restarting its sensors", fingerprint)
                await self._drop(fingerprint)
                group = None
            if group is None:
                try:
                    bus = await self.buses.get(config)
                except EventBridgeError as exc:
                    log.error("sensors %s cannot run: %s", ", ".join(s.name for s in group_sensors), exc)
                    unplaced += len(group_sensors)
                    continue
                manager = SensorManager(
                    bus,
                    self.store,
                    self.references,
                    group_prefix=config.group_prefix,
                    from_start=config.from_start,
                    workflow_ops=StoreWorkflowOperations(self.store),
                    objects=self.objects,
                    conditions=bus.conditions(),  # && state across replicas (Argo #3063)
                )
                group = _SensorGroup(config, bus, manager)
                self._groups[fingerprint] = group
            await group.manager.apply(group_sensors)
        self._unplaced = unplaced
        await self.buses.retain(set(self._groups))

    async def _drop(self, fingerprint: str) -> None:
        group = self._groups.pop(fingerprint)
        await group.manager.stop()

    async def run(self, stop: asyncio.Event) -> int:
        await self.store.start()
        try:
            await self.watcher.start()
            await stop.wait()
            return 0
        finally:
            await self.watcher.stop()
            for fingerprint in list(self._groups):
                await self._drop(fingerprint)
            await self.buses.stop()
            await self.objects.close()
            self.references.close()
            await self.store.stop()


# ---------------------------------------------------------------------------------------------
# server


class ServerRole:
    """``eventbridge server``: the API and UI over the Kubernetes Store."""

    name = "server"

    def __init__(self, settings: ClusterSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self.api_client = api_client or api_client_from_environment(settings.kubeconfig)
        self.store = KubeStore(self.api_client, namespace=settings.watch_namespace)
        self.executor = PodExecutor(self.api_client, namespace=settings.watch_namespace)
        self._eventsource_cache = ManifestCache("EventSource")
        self._sensor_cache = ManifestCache("Sensor")
        self.eventsources: list[EventSource] = []
        self.sensors: list[Sensor] = []
        self.url = ""
        self.watcher = ObjectWatcher(
            self.store,
            ("EventSource", "Sensor"),
            settings.watch_namespace,
            self.reload,
            resync_seconds=settings.resync_seconds,
        )
        self._listening = False

    def ready(self) -> bool:
        return self._listening

    async def reload(self) -> None:
        ns = self.settings.watch_namespace
        self.eventsources = [
            m for m in self._eventsource_cache.update(await self.store.list("EventSource", ns))
            if isinstance(m, EventSource)
        ]  # fmt: skip
        self.sensors = [
            m for m in self._sensor_cache.update(await self.store.list("Sensor", ns)) if isinstance(m, Sensor)
        ]

    async def run(self, stop: asyncio.Event) -> int:
        settings = self.settings
        await self.store.start()
        runner: web.AppRunner | None = None
        kube_auth: KubeAuth | None = None
        if settings.auth_mode == "kube":
            kube_auth = KubeAuth(self.api_client, default_namespace=settings.watch_namespace or "")
        try:
            await self.watcher.start()
            executor: Executor = self.executor
            app = build_app(
                ApiContext(
                    store=self.store,
                    executor=executor,
                    eventsources=lambda: self.eventsources,
                    sensors=lambda: self.sensors,
                    auth=None if kube_auth is not None else load_auth(settings.auth_file),
                    managed_namespace=settings.watch_namespace or "",
                ),
                authenticator=kube_auth,
            )
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, settings.host, settings.port).start()
            port = runner.addresses[0][1] if runner.addresses else settings.port
            self.url = f"http://{settings.host}:{port}"
            self._listening = True
            log.info("server: API and UI on %s for %s", self.url, settings.describe_scope())
            await stop.wait()
            return 0
        finally:
            self._listening = False
            if runner is not None:
                await runner.cleanup()
            await self.watcher.stop()
            await self.executor.stop()
            if kube_auth is not None:
                kube_auth.close()
            await self.store.stop()


ROLES: dict[str, type[ControllerRole] | type[EventSourceRole] | type[SensorRole] | type[ServerRole]] = {
    "controller": ControllerRole,
    "eventsource": EventSourceRole,
    "sensor": SensorRole,
    "server": ServerRole,
}


def build_role(name: str, settings: ClusterSettings) -> Role:
    """The role called ``name`` (controller, eventsource, sensor, server) built from ``settings``."""
    try:
        cls = ROLES[name]
    except KeyError:
        raise InvalidError(f"unknown role {name!r}; expected one of {', '.join(ROLES)}") from None
    role: Role = cls(settings)
    return role


__all__ = [
    "BusConfig",
    "ClusterSettings",
    "ControllerRole",
    "EventSourceRole",
    "KubeReferences",
    "Role",
    "SensorRole",
    "ServerRole",
    "build_role",
    "bus_config",
    "run_role",
    "split_single_active",
]
