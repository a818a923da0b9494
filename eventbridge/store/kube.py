"""The Kubernetes Store: Argo objects as custom resources through the official ``kubernetes`` client.

The client is blocking, so every request runs in a bounded thread pool (``max_workers``) and each
open watch holds one thread of a second bounded pool (``max_watches``).

* Kinds are discovered from the API group at :meth:`KubeStore.start` (plural, namespaced or not,
  whether a ``status`` subresource exists). ``deploy/crds`` defines them.
* ``create`` lets the API server fill ``uid``, ``resourceVersion``, ``creationTimestamp`` and the
  name from ``generateName``; a ``status`` given at creation is written through the status
  subresource when the kind has one (the API server drops it from the main write).
* ``update`` is optimistic: the ``metadata.resourceVersion`` read is sent and a 409 becomes
  ConflictError. Without a resourceVersion it updates whatever is current. Where the kind has a
  status subresource and ``status`` changed, the status is written through it afterwards. An
  update that changes nothing is a no-op on the API server (same resourceVersion, no event).
* ``watch`` lists, then watches from a resourceVersion no later than the call (so changes after the
  call are seen; a few earlier ones may be repeated), resumes after the server ends a watch, and on
  410 Gone relists and reports the difference (ADDED/MODIFIED/DELETED) as events.
* API errors map to eventbridge errors: 404 NotFoundError, 409 AlreadyExistsError (create) or
  ConflictError, 422/400 InvalidError, 403 KubeForbiddenError naming the missing permission, other
  failures KubeApiError (a TemporaryError).
* While the API server cannot be reached or answers 429/5xx (a restart, an overload), calls are
  retried with backoff for up to ``outage_seconds`` (and at least ``retries`` times) before
  KubeApiError. A create with ``generateName`` is repeated only when the request surely never
  reached the server (connection refused, connect timeout, 429), so a retry cannot make a second
  object; a delete whose retry finds the object gone has succeeded. For a while after the server
  was unreachable (``AUTH_SETTLE_SECONDS``), 401 and 403 are retried too: a freshly restarted
  kube-apiserver answers ready before its authenticator and RBAC caches have loaded, and refuses
  requests it will allow a moment later. Watches likewise keep retrying then instead of ending.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError, TemporaryError
from eventbridge.store._stream import ThreadFedStream
from eventbridge.store.base import Object, WatchEvent
from eventbridge.store.objects import resource_version

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
_Objects = list[Object]
_EventType = Literal["ADDED", "MODIFIED", "DELETED"]
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_UNSENT_RETRY_STATUSES = frozenset({429})  # refused before the request was processed
_AUTH_STATUSES = frozenset({401, 403})
#: How long after the API server was last unreachable 401/403 count as its caches still loading.
AUTH_SETTLE_SECONDS = 30.0
_WATCH_QUEUE_LIMIT = 10_000


class KubeApiError(TemporaryError):
    """The API server failed or could not be reached; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, delay: float = 1.0) -> None:
        super().__init__(message, delay)
        self.status = status


class KubeForbiddenError(InvalidError):
    """RBAC refused a request; the message names the verb, resource and namespace that are missing."""


def _api_message(exc: ApiException) -> str:
    """The API server's own message (a Status object's ``message``), else the reason."""
    body = getattr(exc, "body", None)
    if body:
        with contextlib.suppress(ValueError, TypeError):
            status = json.loads(body)
            if isinstance(status, dict) and status.get("message"):
                return str(status["message"])
    return str(exc.reason or "no reason given")


def map_api_error(exc: ApiException, what: str, *, creating: bool = False) -> Exception:
    """The eventbridge error for an API failure on ``what`` (e.g. ``Workflow default/hello``)."""
    message = _api_message(exc)
    status = int(exc.status or 0)
    if status == 404:
        return NotFoundError(f"{what} not found")
    if status == 409:
        if creating:
            return AlreadyExistsError(f"{what} already exists")
        return ConflictError(f"{what} was modified by someone else; re-read and retry ({message})")
    if status in (400, 422):
        return InvalidError(f"{what} was rejected by the API server: {message}")
    if status == 403:
        return KubeForbiddenError(f"{what}: forbidden by RBAC; grant the permission the server names: {message}")
    if status == 401:
        return KubeForbiddenError(f"{what}: the API server did not accept the credentials: {message}")
    return KubeApiError(f"{what}: API server error {status}: {message}", status)


def _never_sent(exc: BaseException) -> bool:
    """Whether a transport failure happened before the request could reach the server."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    return isinstance(exc, urllib3.exceptions.ConnectTimeoutError | ConnectionRefusedError)


def api_client_from_environment(kubeconfig: str | None = None, *, pool_size: int = 32) -> k8s.ApiClient:
    """An ApiClient from ``kubeconfig`` (or ``$KUBECONFIG``), else the in-cluster service account."""
    configuration = k8s.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if path:
            k8s_config.load_kube_config(config_file=path, client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (k8s_config.ConfigException, OSError) as exc:
        where = f"kubeconfig {path}" if path else "the in-cluster service account (not running in a Pod?)"
        raise InvalidError(
            f"cannot configure the Kubernetes client from {where}: {exc}; pass --kubeconfig or set KUBECONFIG"
        ) from None
    configuration.connection_pool_maxsize = pool_size
    return k8s.ApiClient(configuration)


@dataclass(frozen=True, slots=True)
class KindInfo:
    """What discovery says about one custom resource kind."""

    kind: str
    plural: str
    namespaced: bool
    has_status: bool


def _rv_int(rv: object) -> int | None:
    try:
        return int(str(rv))
    except (TypeError, ValueError):
        return None


def _obj_key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class KubeStore:
    """Store protocol over custom resources; see the module docstring.

    ``namespace`` confines list/watch calls made without a namespace (for namespaced RBAC);
    None means cluster-wide. ``outage_seconds``: how long a call keeps retrying while the API
    server is unreachable or answers 429/5xx.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        group: str = GROUP,
        version: str = VERSION,
        namespace: str | None = None,
        max_workers: int = 8,
        max_watches: int = 16,
        watch_timeout_seconds: int = 300,
        retries: int = 3,
        outage_seconds: float = 60.0,
    ) -> None:
        self._api_client = api_client
        self._custom = k8s.CustomObjectsApi(api_client)
        self.group = group
        self.version = version
        self.namespace = namespace
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kube-store")
        self._watch_pool = ThreadPoolExecutor(max_workers=max_watches, thread_name_prefix="kube-watch")
        self._watch_timeout = watch_timeout_seconds
        self._retries = retries
        self._outage = outage_seconds
        self._unreachable_at: float | None = None  # monotonic time of the last transport failure
        self._kinds: dict[str, KindInfo] = {}
        self._streams: set[_KubeWatchStream] = set()
        self._last_rv: int | None = None
        self._rv_lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Discover the group's kinds and learn a current resourceVersion."""
        resources = await self._call(
            lambda: self._custom.get_api_resources(self.group, self.version),
            f"discovery of {self.group}/{self.version}",
        )
        kinds: dict[str, KindInfo] = {}
        subresources = {r.name for r in resources.resources if "/" in r.name}
        for res in resources.resources:
            if "/" in res.name:
                continue
            kinds[res.kind] = KindInfo(res.kind, res.name, bool(res.namespaced), f"{res.name}/status" in subresources)
        self._kinds = kinds
        if "Workflow" in kinds:
            with contextlib.suppress(KubeForbiddenError):  # only a hint for watches; RBAC may not allow it
                await self._raw_list(kinds["Workflow"], self.namespace, None, limit=1)

    async def stop(self) -> None:
        for stream in list(self._streams):
            await stream.aclose()
        self._pool.shutdown(wait=True)
        self._watch_pool.shutdown(wait=False, cancel_futures=True)

    async def __aenter__(self) -> KubeStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def kinds(self) -> dict[str, KindInfo]:
        """Kinds found by discovery, by kind name."""
        return dict(self._kinds)

    # plumbing --------------------------------------------------------------------------------

    def _info(self, kind: str) -> KindInfo:
        info = self._kinds.get(kind)
        if info is None:
            known = ", ".join(sorted(self._kinds)) or "none (is the store started and are the CRDs installed?)"
            raise InvalidError(f"kind {kind!r} is not served by {self.group}/{self.version}; known: {known}")
        return info

    def _seen(self, rv: object) -> None:
        value = _rv_int(rv)
        if value is None:
            return
        with self._rv_lock:
            if self._last_rv is None or value > self._last_rv:
                self._last_rv = value

    def _unreachable(self) -> None:
        """Note that the API server could not be reached (see :meth:`_settling`)."""
        self._unreachable_at = time.monotonic()

    def _settling(self) -> bool:
        """Whether the API server was unreachable moments ago, so its auth caches may be cold."""
        at = self._unreachable_at
        return at is not None and time.monotonic() - at < min(AUTH_SETTLE_SECONDS, self._outage)

    def _seen_object(self, obj: Object) -> Object:
        self._seen((obj.get("metadata") or {}).get("resourceVersion"))
        return obj

    async def _call(
        self,
        fn: Callable[[], Any],
        what: str,
        *,
        creating: bool = False,
        repeatable: bool = True,
        done_if_after_retry: int | None = None,
    ) -> Any:
        """Run a blocking client call in the pool; retry transient failures; map API errors.

        ``repeatable``: False when a request that reached the server must not be sent again (a
        create with ``generateName``). ``done_if_after_retry``: an HTTP status that means success
        when it answers a repeated request (404 for a delete); the call then returns None."""
        loop = asyncio.get_running_loop()
        delay = 0.2
        deadline = time.monotonic() + self._outage
        attempt = 0
        while True:
            attempt += 1
            more = attempt <= self._retries or time.monotonic() < deadline
            try:
                return await loop.run_in_executor(self._pool, fn)
            except ApiException as exc:
                status = int(exc.status or 0)
                if attempt > 1 and done_if_after_retry is not None and status == done_if_after_retry:
                    return None
                retry_statuses = _RETRY_STATUSES if repeatable else _UNSENT_RETRY_STATUSES
                settling = status in _AUTH_STATUSES and self._settling()
                if not ((status in retry_statuses or settling) and more):
                    raise map_api_error(exc, what, creating=creating) from None
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                self._unreachable()
                if not (more and (repeatable or _never_sent(exc))):
                    raise KubeApiError(f"{what}: API server unreachable: {exc}") from None
                if attempt == 1:
                    log.info("%s: API server unreachable (%s); retrying for up to %gs", what, exc, self._outage)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    @staticmethod
    def _what(kind: str, namespace: str | None, name: str | None) -> str:
        where = f"{namespace}/{name}" if namespace else str(name)
        return f"{kind} {where}"

    # reads -----------------------------------------------------------------------------------

    async def get(self, kind: str, namespace: str, name: str) -> Object:
        info = self._info(kind)
        ns = namespace or "default"
        if info.namespaced:
            obj: Object = await self._call(
                lambda: self._custom.get_namespaced_custom_object(self.group, self.version, ns, info.plural, name),
                self._what(kind, ns, name),
            )
        else:
            obj = await self._call(
                lambda: self._custom.get_cluster_custom_object(self.group, self.version, info.plural, name),
                self._what(kind, None, name),
            )
        return self._seen_object(obj)

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> _Objects:
        info = self._info(kind)
        items, _ = await self._raw_list(info, namespace if namespace is not None else self.namespace, labels)
        items.sort(key=_obj_key)
        return items

    def _list_page(
        self, info: KindInfo, namespace: str | None, selector: str, limit: int, token: str | None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"limit": limit}
        if selector:
            kwargs["label_selector"] = selector
        if token:
            kwargs["_continue"] = token
        if info.namespaced and namespace:
            page = self._custom.list_namespaced_custom_object(
                self.group, self.version, namespace, info.plural, **kwargs
            )
        else:
            page = self._custom.list_cluster_custom_object(self.group, self.version, info.plural, **kwargs)
        return cast(dict[str, Any], page)

    async def _raw_list(
        self, info: KindInfo, namespace: str | None, labels: dict[str, str] | None, *, limit: int = 500
    ) -> tuple[_Objects, str]:
        """All items (paged) and the list's resourceVersion."""
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        items: _Objects = []
        token: str | None = None
        rv = ""
        while True:
            page = await self._call(
                functools.partial(self._list_page, info, namespace, selector, limit, token),
                f"list {info.plural}" + (f" in {namespace}" if namespace else ""),
            )
            page_rv, token = self._take_page(page, info, items)
            rv = rv or page_rv
            if not token or limit == 1:
                break
        self._seen(rv)
        return items, rv

    # writes ----------------------------------------------------------------------------------

    async def create(self, obj: Object) -> Object:
        info = self._info(str(obj.get("kind", "")))
        body = copy.deepcopy(obj)
        body.setdefault("apiVersion", f"{self.group}/{self.version}")
        meta = body.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise InvalidError("metadata must be an object")
        if not meta.get("name") and not meta.get("generateName"):
            raise InvalidError("metadata.name or metadata.generateName is required")
        for server_field in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(server_field, None)
        ns = str(meta.get("namespace") or "default")
        what = self._what(info.kind, ns if info.namespaced else None, meta.get("name") or meta.get("generateName"))
        repeatable = bool(meta.get("name"))  # a repeated generateName create could make a second object
        if info.namespaced:
            meta["namespace"] = ns
            created: Object = await self._call(
                lambda: self._custom.create_namespaced_custom_object(self.group, self.version, ns, info.plural, body),
                what,
                creating=True,
                repeatable=repeatable,
            )
        else:
            meta.pop("namespace", None)
            created = await self._call(
                lambda: self._custom.create_cluster_custom_object(self.group, self.version, info.plural, body),
                what,
                creating=True,
                repeatable=repeatable,
            )
        if info.has_status and body.get("status") is not None and created.get("status") != body["status"]:
            created["status"] = body["status"]
            created = await self._replace(info, created, status=True)
        return self._seen_object(created)

    async def update(self, obj: Object) -> Object:
        info = self._info(str(obj.get("kind", "")))
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        if not meta.get("resourceVersion"):
            current = await self.get(info.kind, str(meta.get("namespace") or "default"), str(meta.get("name")))
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        updated = await self._replace(info, body, status=False)
        if info.has_status and "status" in body and updated.get("status") != body["status"]:
            updated["status"] = body["status"]
            updated = await self._replace(info, updated, status=True)
        return self._seen_object(updated)

    async def _replace(self, info: KindInfo, body: Object, *, status: bool) -> Object:
        meta = body["metadata"]
        name = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "default")
        what = self._what(info.kind, ns if info.namespaced else None, name) + (" status" if status else "")
        if info.namespaced:
            fn = (
                self._custom.replace_namespaced_custom_object_status
                if status
                else self._custom.replace_namespaced_custom_object
            )
            result: Object = await self._call(lambda: fn(self.group, self.version, ns, info.plural, name, body), what)
        else:
            cfn = (
                self._custom.replace_cluster_custom_object_status
                if status
                else self._custom.replace_cluster_custom_object
            )
            result = await self._call(lambda: cfn(self.group, self.version, info.plural, name, body), what)
        return result

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        info = self._info(kind)
        ns = namespace or "default"
        if info.namespaced:
            await self._call(
                lambda: self._custom.delete_namespaced_custom_object(self.group, self.version, ns, info.plural, name),
                self._what(kind, ns, name),
                done_if_after_retry=404,
            )
        else:
            await self._call(
                lambda: self._custom.delete_cluster_custom_object(self.group, self.version, info.plural, name),
                self._what(kind, None, name),
                done_if_after_retry=404,
            )

    # watch -----------------------------------------------------------------------------------

    def watch(self, kind: str, namespace: str | None = None) -> AsyncIterator[WatchEvent]:
        """Changes to ``kind`` objects from now on (a few earlier ones may repeat); ``aclose()`` ends it."""
        info = self._info(kind)
        stream = _KubeWatchStream(self, info, namespace if namespace is not None else self.namespace)
        self._streams.add(stream)
        stream.begin(self._last_rv)
        return stream

    def _open_watch(self, info: KindInfo, namespace: str | None, rv: str) -> Any:
        """A streaming watch response (urllib3), for the watch thread to read line by line."""
        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": rv,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._watch_timeout,
            "_preload_content": False,
            "_request_timeout": (10, self._watch_timeout + 30),
        }
        if info.namespaced and namespace:
            return self._custom.list_namespaced_custom_object(
                self.group, self.version, namespace, info.plural, **kwargs
            )
        return self._custom.list_cluster_custom_object(self.group, self.version, info.plural, **kwargs)

    def _take_page(self, page: dict[str, Any], info: KindInfo, items: _Objects) -> tuple[str, str | None]:
        """Add a list page's items to ``items`` (with their apiVersion and kind, which list
        responses leave out); the page's resourceVersion and continue token."""
        for item in page.get("items") or []:
            item.setdefault("apiVersion", f"{self.group}/{self.version}")
            item.setdefault("kind", info.kind)
            items.append(item)
        return resource_version(page), (page.get("metadata") or {}).get("continue") or None

    def _list_sync(self, info: KindInfo, namespace: str | None) -> tuple[_Objects, str]:
        items: _Objects = []
        token: str | None = None
        rv = ""
        while True:
            page = self._list_page(info, namespace, "", 500, token)
            page_rv, token = self._take_page(page, info, items)
            rv = rv or page_rv
            if not token:
                break
        self._seen(rv)
        return items, rv


class WatchGone(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again."""


def read_watch(
    stream: ThreadFedStream[Any], open_response: Callable[[], Any], rv: str, handle: Callable[[str, Object], None]
) -> str:
    """Read one watch response to its end in ``stream``'s thread (``stream`` can end it at once);
    every ADDED, MODIFIED, DELETED and BOOKMARK event goes to ``handle(type, object)``. Returns the
    resourceVersion to resume from. HTTP 410, on opening or as an ERROR event, raises
    :class:`WatchGone`; another ERROR event raises :class:`KubeApiError`. A watch that ends within
    50 ms is followed by a 0.2 s pause, so that a failing server is not polled in a spin."""
    try:
        response = open_response()
    except ApiException as exc:
        if exc.status == 410:
            raise WatchGone from None
        raise
    started = time.monotonic()
    buffer = b""
    with stream._reading(response):
        for chunk in response.stream(amt=None, decode_content=False):
            if stream._stopping.is_set():
                break
            buffer += chunk
            while b"\n" in buffer:
                line, _, buffer = buffer.partition(b"\n")
                if not line.strip():
                    continue
                event = json.loads(line)
                event_type = event.get("type")
                obj = event.get("object") or {}
                if event_type == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchGone
                    raise KubeApiError(f"watch error: {obj.get('message')}", int(obj.get("code") or 0))
                rv = resource_version(obj) or rv
                if event_type in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                    handle(event_type, obj)
    if time.monotonic() - started < 0.05 and not stream._stopping.is_set():
        time.sleep(0.2)
    return rv


class _KubeWatchStream(ThreadFedStream[WatchEvent]):
    """One list+watch loop in a watch-pool thread feeding an asyncio queue (a slow reader loses
    change events, logged; the store's resync covers them)."""

    def __init__(self, store: KubeStore, info: KindInfo, namespace: str | None) -> None:
        super().__init__(_WATCH_QUEUE_LIMIT)
        self._store = store
        self._info = info
        self._namespace = namespace
        self._known: dict[tuple[str, str], str] = {}

    def begin(self, hint: int | None) -> None:
        self._store._watch_pool.submit(self._run, hint)

    async def aclose(self) -> None:
        self._shut()
        self._store._streams.discard(self)

    # thread side ------------------------------------------------------------------------------

    def _emit(self, event_type: _EventType, obj: Object) -> None:
        obj.setdefault("apiVersion", f"{self._store.group}/{self._store.version}")
        obj.setdefault("kind", self._info.kind)
        key = _obj_key(obj)
        if event_type == "DELETED":
            self._known.pop(key, None)
        else:
            self._known[key] = resource_version(obj)
        self._store._seen_object(obj)
        event = WatchEvent(event_type, obj)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: WatchEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("a %s watcher is too slow; dropping a change event", self._info.kind)

    def _relist(self) -> str:
        """List and report what changed against what this stream knows; the list's resourceVersion."""
        items, rv = self._store._list_sync(self._info, self._namespace)
        present = {_obj_key(o): o for o in items}
        for key in [k for k in self._known if k not in present]:
            ns, name = key
            gone: Object = {"metadata": {"namespace": ns, "name": name}}
            self._emit("DELETED", gone)
        for key, obj in present.items():
            rv_now = resource_version(obj)
            before = self._known.get(key)
            if before is None:
                self._emit("ADDED", obj)
            elif before != rv_now:
                self._emit("MODIFIED", obj)
        return rv

    def _run(self, hint: int | None) -> None:
        delay = 0.2
        rv = ""
        baseline = True
        while not self._stopping.is_set():
            try:
                if baseline:
                    items, list_rv = self._store._list_sync(self._info, self._namespace)
                    list_int = _rv_int(list_rv)
                    since = hint if hint is not None and list_int is not None and hint <= list_int else None
                    # Watching from the call's resourceVersion: what changed after it is not part of
                    # the baseline, so a relist after 410 (a restarted API server) still reports it.
                    self._known = {
                        _obj_key(o): resource_version(o)
                        for o in items
                        if since is None or (_rv_int(o["metadata"].get("resourceVersion")) or 0) <= since
                    }
                    rv = str(since) if since is not None else list_rv
                    baseline = False
                rv = self._watch_once(rv)
                delay = 0.2
            except WatchGone:
                log.info("%s watch: resourceVersion %s expired; relisting", self._info.plural, rv)
                try:
                    rv = self._relist()
                except Exception as exc:  # noqa: BLE001  (any failure: start again from a fresh list)
                    log.warning("%s relist failed: %s", self._info.plural, exc)
                    rv = ""
                    baseline = True
            except Exception as exc:  # noqa: BLE001  (the watch thread must survive any failure)
                if self._stopping.is_set():
                    break
                reason = f"{exc.status} {_api_message(exc)}" if isinstance(exc, ApiException) else str(exc)
                log.warning("%s watch failed (%s); retrying in %.1fs", self._info.plural, reason, delay)
                if isinstance(exc, OSError | urllib3.exceptions.HTTPError):
                    self._store._unreachable()
                if isinstance(exc, ApiException) and exc.status in _AUTH_STATUSES and not self._store._settling():
                    error = map_api_error(exc, f"watch {self._info.plural}")
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._queue.put_nowait, error)
                    return
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                if not rv:
                    baseline = True

    def _watch_once(self, rv: str) -> str:
        return read_watch(self, lambda: self._store._open_watch(self._info, self._namespace, rv), rv, self._handle)

    def _handle(self, event_type: str, obj: Object) -> None:
        if event_type == "BOOKMARK":
            self._store._seen(resource_version(obj))
        else:
            self._emit(cast(_EventType, event_type), obj)
