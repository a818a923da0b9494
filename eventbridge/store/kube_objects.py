"""Kubernetes objects of any kind through the official ``kubernetes`` client: :class:`KubeObjects`.

It implements :class:`eventbridge.store.objects.Objects` (see there for the patch strategies):

* Kind -> resource comes from API discovery of the object's group-version (``/api/v1`` or
  ``/apis/<group>/<version>``), cached and fetched again when a kind is not found (a CRD installed
  later is seen at once). :meth:`KubeObjects.resolve_type` also resolves kubectl-style type names
  (``configmap``, ``cm``, ``deployments.apps``) over the preferred version of every group.
* The client is blocking: each request runs in a bounded thread pool (``max_workers``) and each
  open watch holds one thread of a second bounded pool (``max_watches``).
* Writes: ``create``, ``replace`` (PUT; the current resourceVersion is read when none is given),
  ``apply`` (server-side apply, field manager ``eventbridge``, conflicts forced as ``kubectl apply
  --server-side --force-conflicts``), ``patch``, ``delete`` (background propagation by default).
* ``watch`` behaves like a client-go informer: it lists (reporting every existing object as
  ``ADDED`` unless ``initial=False``), watches from the list's resourceVersion, resumes after the
  server ends a watch, and on 410 Gone lists again and reports the difference. Each ``MODIFIED``
  carries the previous state (``old``) and ``DELETED`` the last state; a change already reported
  (same resourceVersion) is not reported again. A slow consumer slows the watch down (nothing is
  dropped).
* Errors are eventbridge's: 404 NotFoundError, 409 AlreadyExistsError (create) or ConflictError,
  400/422 InvalidError, 403 KubeForbiddenError naming the missing permission, 415 InvalidError (a
  patch type the resource does not take), other failures KubeApiError (a TemporaryError) after a
  short retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, cast

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.store._stream import ThreadFedStream
from eventbridge.store.base import Object
from eventbridge.store.kube import KubeApiError, WatchGone, map_api_error, read_watch
from eventbridge.store.objects import (
    EventType,
    ObjectEvent,
    ObjectWatch,
    ResourceInfo,
    object_key,
    patch_type,
    resource_version,
    split_api_version,
)

log = logging.getLogger(__name__)

FIELD_MANAGER = "eventbridge"
_ObjectList = list[Object]
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_WATCH_QUEUE_LIMIT = 1000
_DISCOVERY_RETRY_SECONDS = 2.0


class KubeObjects:
    """:class:`Objects` over a real API server; see the module docstring.

    ``default_namespace`` is used for namespaced objects that name none.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        default_namespace: str = "default",
        max_workers: int = 8,
        max_watches: int = 8,
        watch_timeout_seconds: int = 300,
        request_timeout: float = 30.0,
        retries: int = 3,
    ) -> None:
        self._api = api_client
        self.default_namespace = default_namespace
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kube-objects")
        self._watch_pool = ThreadPoolExecutor(max_workers=max_watches, thread_name_prefix="kube-objects-watch")
        self._watch_timeout = watch_timeout_seconds
        self._request_timeout = request_timeout
        self._retries = retries
        self._discovered: dict[tuple[str, str], tuple[float, list[ResourceInfo]]] = {}
        self._watches: set[_Watch] = set()

    @property
    def available(self) -> bool:
        return True

    async def close(self) -> None:
        """End open watches and release the thread pools."""
        for stream in list(self._watches):
            await stream.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watch_pool.shutdown(wait=False, cancel_futures=True)

    # plumbing ------------------------------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: Any = None,
    ) -> Any:
        """Send one request; the urllib3 response (not read yet). Raises ApiException for non-2xx."""
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        request = self._api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(*request, _request_timeout=timeout or self._request_timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException(http_resp=response)
        return response.response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        raw = self._open(method, path, **kwargs)
        try:
            data = raw.data
        finally:
            with contextlib.suppress(Exception):
                raw.release_conn()
        return json.loads(data) if data else None

    async def _call(self, fn: Callable[[], Any], what: str, *, creating: bool = False) -> Any:
        """Run a blocking call in the pool; retry transient failures; map API errors."""
        loop = asyncio.get_running_loop()
        delay = 0.2
        for attempt in range(self._retries + 1):
            try:
                return await loop.run_in_executor(self._pool, fn)
            except ApiException as exc:
                status = int(exc.status or 0)
                if status == 415:
                    raise InvalidError(f"{what}: the API server does not accept this patch type: "
                                       f"{_status_message(exc)}") from None  # fmt: skip
                if not (status in _RETRY_STATUSES and attempt < self._retries):
                    raise map_api_error(exc, what, creating=creating) from None
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                if attempt >= self._retries:
                    raise KubeApiError(f"{what}: API server unreachable: {exc}") from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    # discovery -----------------------------------------------------------------------------

    async def _group_version(self, group: str, version: str, *, refresh: bool = False) -> list[ResourceInfo]:
        cached = self._discovered.get((group, version))
        if cached is not None and not (refresh and time.monotonic() - cached[0] > _DISCOVERY_RETRY_SECONDS):
            return cached[1]
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        what = f"discovery of {group + '/' if group else ''}{version}"
        try:
            listing = await self._call(lambda: self._json("GET", path), what)
        except NotFoundError:
            listing = {}
        infos = [
            ResourceInfo(
                group=group,
                version=version,
                kind=str(item.get("kind") or ""),
                plural=str(item["name"]),
                namespaced=bool(item.get("namespaced")),
                singular=str(item.get("singularName") or ""),
                short_names=tuple(item.get("shortNames") or ()),
            )
            for item in (listing or {}).get("resources") or []
            if "/" not in str(item.get("name", ""))
        ]
        self._discovered[(group, version)] = (time.monotonic(), infos)
        return infos

    async def resolve(self, api_version: str, kind: str) -> ResourceInfo:
        """The resource serving ``kind`` in ``api_version``; InvalidError when the server has none."""
        group, version = split_api_version(api_version)
        if not kind:
            raise InvalidError(f"kind is required (apiVersion {api_version})")
        for refresh in (False, True):
            for info in await self._group_version(group, version, refresh=refresh):
                if info.kind == kind:
                    return info
        raise InvalidError(f"the API server does not serve kind {kind!r} in {api_version} (is its CRD installed?)")

    async def resource(self, group: str, version: str, plural: str) -> ResourceInfo:
        """The resource ``plural`` of ``group/version`` (Argo's GroupVersionResource)."""
        for refresh in (False, True):
            for info in await self._group_version(group, version, refresh=refresh):
                if info.plural == plural:
                    return info
        where = f"{group}/{version}" if group else version
        raise InvalidError(f"the API server does not serve resource {plural!r} in {where}")

    async def resolve_type(self, type_name: str) -> ResourceInfo:
        """A kubectl type name (``configmap``, ``configmaps``, ``cm``, ``ConfigMap``, ``deployments.apps``,
        ``deployments.v1.apps``) over the preferred version of every group."""
        text = type_name.strip()
        lowered = text.lower()
        resource_part, _, group_part = lowered.partition(".")
        version_part = ""
        if "." in group_part:
            maybe_version, _, rest = group_part.partition(".")
            if maybe_version.startswith("v") and maybe_version[1:2].isdigit():
                version_part, group_part = maybe_version, rest
        groups = await self._call(lambda: self._json("GET", "/apis"), "discovery of API groups")
        candidates: list[tuple[str, str]] = [("", "v1")]
        for group in (groups or {}).get("groups") or []:
            name = str(group.get("name") or "")
            if version_part:
                candidates.append((name, version_part))
            else:
                preferred = (group.get("preferredVersion") or {}).get("version")
                if preferred:
                    candidates.append((name, str(preferred)))
        for group, version in candidates:
            if group_part and group != group_part:
                continue
            if group_part == "" and "." in lowered and group:
                continue
            with contextlib.suppress(NotFoundError):
                for info in await self._group_version(group, version):
                    names = {info.plural, info.singular, info.kind.lower(), *info.short_names}
                    if resource_part in names:
                        return info
        raise InvalidError(f"the API server has no resource type {type_name!r}")

    # reads ---------------------------------------------------------------------------------

    def _namespace(self, info: ResourceInfo, namespace: str | None) -> str | None:
        return (namespace or self.default_namespace) if info.namespaced else None

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object:
        info = await self.resolve(api_version, kind)
        ns = self._namespace(info, namespace)
        obj: Object = await self._call(lambda: self._json("GET", info.path(ns, name)), info.describe(ns, name))
        return obj

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> _ObjectList:
        """Every object (all pages); ``namespace=None`` lists across namespaces."""
        info = await self.resolve(api_version, kind)
        items: _ObjectList
        items, _ = await self._call(
            lambda: self._list_sync(info, namespace, label_selector, field_selector),
            f"list {info.plural}" + (f" in {namespace}" if namespace else ""),
        )
        return items

    def _list_sync(
        self, info: ResourceInfo, namespace: str | None, label_selector: str | None, field_selector: str | None
    ) -> tuple[_ObjectList, str]:
        items: _ObjectList = []
        token = ""
        rv = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", 500)]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            page = self._json("GET", info.path(namespace if info.namespaced else None), query=query) or {}
            for item in page.get("items") or []:
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                items.append(item)
            meta = page.get("metadata") or {}
            rv = rv or str(meta.get("resourceVersion") or "")
            token = str(meta.get("continue") or "")
            if not token:
                return items, rv

    # writes --------------------------------------------------------------------------------

    async def _target(self, obj: Object) -> tuple[ResourceInfo, Object, str | None, str]:
        """Resolve an object's kind; a copy with its namespace settled; namespace; name (may be empty)."""
        if not isinstance(obj, dict):
            raise InvalidError("the object is not a mapping")
        info = await self.resolve(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""))
        body = json.loads(json.dumps(obj))
        meta = body.get("metadata")
        if meta is None:
            meta = body["metadata"] = {}
        if not isinstance(meta, dict):
            raise InvalidError("metadata must be an object")
        ns = self._namespace(info, meta.get("namespace"))
        if ns is None:
            meta.pop("namespace", None)
        else:
            meta["namespace"] = ns
        return info, body, ns, str(meta.get("name") or "")

    async def create(self, obj: Object) -> Object:
        """Create the object (``generateName`` works); AlreadyExistsError when the name is taken."""
        info, body, ns, name = await self._target(obj)
        if not name and not body["metadata"].get("generateName"):
            raise InvalidError(f"{info.kind}: metadata.name or metadata.generateName is required")
        for server_field in ("resourceVersion", "uid", "creationTimestamp"):
            body["metadata"].pop(server_field, None)
        what = info.describe(ns, name or body["metadata"].get("generateName"))
        created: Object = await self._call(lambda: self._json("POST", info.path(ns), body=body), what, creating=True)
        return created

    async def replace(self, obj: Object) -> Object:
        """PUT the object; without ``metadata.resourceVersion`` the current one is read first."""
        info, body, ns, name = await self._target(obj)
        if not name:
            raise InvalidError(f"{info.kind}: metadata.name is required to replace an object")
        what = info.describe(ns, name)
        if not body["metadata"].get("resourceVersion"):
            current: Object = await self._call(lambda: self._json("GET", info.path(ns, name)), what)
            body["metadata"]["resourceVersion"] = resource_version(current)
        replaced: Object = await self._call(lambda: self._json("PUT", info.path(ns, name), body=body), what)
        return replaced

    async def apply(self, obj: Object, *, force: bool = True) -> Object:
        """Server-side apply (creates the object when missing)."""
        info, body, ns, name = await self._target(obj)
        if not name:
            raise InvalidError(f"{info.kind}: metadata.name is required to apply an object")
        body["metadata"].pop("resourceVersion", None)
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        applied: Object = await self._call(
            lambda: self._json(
                "PATCH", info.path(ns, name), query=query, body=body, content_type="application/apply-patch+yaml"
            ),
            info.describe(ns, name),
        )
        return applied

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        strategy: str = "merge",
    ) -> Object:
        """Patch the object with ``strategy`` (see :data:`PATCH_TYPES`); a json patch is a list of operations."""
        kind_strategy, content_type = patch_type(strategy)
        if kind_strategy == "json" and not isinstance(patch, list):
            raise InvalidError("a json patch must be a list of operations (RFC 6902)")
        if kind_strategy != "json" and not isinstance(patch, dict):
            raise InvalidError(f"a {kind_strategy} patch must be an object")
        info = await self.resolve(api_version, kind)
        ns = self._namespace(info, namespace)
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if kind_strategy == "apply":
            query.append(("force", "true"))
        patched: Object = await self._call(
            lambda: self._json("PATCH", info.path(ns, name), query=query, body=patch, content_type=content_type),
            info.describe(ns, name),
        )
        return patched

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, propagation: str | None = None
    ) -> None:
        """Delete the object (NotFoundError when it does not exist); ``propagation``: Foreground, Background, Orphan."""
        info = await self.resolve(api_version, kind)
        ns = self._namespace(info, namespace)
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            body["propagationPolicy"] = propagation
        await self._call(lambda: self._json("DELETE", info.path(ns, name), body=body), info.describe(ns, name))

    # watch ---------------------------------------------------------------------------------

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        initial: bool = True,
    ) -> ObjectWatch:
        """Changes of ``info`` objects (``namespace=None``: all namespaces); see the module docstring."""
        stream = _Watch(self, info, namespace if info.namespaced else None, label_selector, field_selector, initial)
        self._watches.add(stream)
        self._watch_pool.submit(stream.run)
        return stream

    def _open_watch(
        self, info: ResourceInfo, namespace: str | None, rv: str, label_selector: str | None, field_selector: str | None
    ) -> Any:
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", rv),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", self._watch_timeout),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        return self._open("GET", info.path(namespace), query=query, timeout=(10, self._watch_timeout + 30))


def _status_message(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        status = json.loads(exc.body or "")
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    return str(exc.reason or "no reason given")


class _Watch(ThreadFedStream[ObjectEvent]):
    """One informer-like list+watch loop in a watch-pool thread, feeding an asyncio queue (a slow
    reader makes the thread wait: no change event is dropped)."""

    def __init__(
        self,
        owner: KubeObjects,
        info: ResourceInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        initial: bool,
    ) -> None:
        super().__init__(_WATCH_QUEUE_LIMIT)
        self._owner = owner
        self._info = info
        self._namespace = namespace
        self._labels = label_selector
        self._fields = field_selector
        self._initial = initial
        self._synced = asyncio.Event()
        self._known: dict[tuple[str, str], Object] = {}

    async def synced(self) -> None:
        await self._synced.wait()

    async def aclose(self) -> None:
        self._shut()
        self._owner._watches.discard(self)
        self._synced.set()

    # thread side --------------------------------------------------------------------------

    def _deliver(self, item: ObjectEvent | BaseException) -> None:
        """Put ``item`` on the queue, waiting while it is full (until the watch is closed)."""
        while not self._stopping.is_set():
            try:
                future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
            except RuntimeError:  # the loop is closed: nobody listens any more
                self._stopping.set()
                return
            try:
                future.result(timeout=1.0)
                return
            except FutureTimeout:
                future.cancel()
            except Exception:  # noqa: BLE001  (the loop went away while waiting)
                self._stopping.set()
                return

    def _mark_synced(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._synced.set)

    def _emit(self, event_type: EventType, obj: Object, *, existing: bool = False) -> None:
        obj.setdefault("apiVersion", self._info.api_version)
        obj.setdefault("kind", self._info.kind)
        key = object_key(obj)
        old = self._known.get(key)
        if event_type == "DELETED":
            self._known.pop(key, None)
        else:
            if old is not None and resource_version(old) == resource_version(obj):
                return  # already reported (a resumed watch may repeat it)
            self._known[key] = obj
            if event_type == "ADDED" and old is not None:
                event_type = "MODIFIED"
            elif event_type == "MODIFIED" and old is None:
                event_type = "ADDED"
        self._deliver(ObjectEvent(event_type, obj, old if event_type == "MODIFIED" else None, existing))

    def _list(self, report: bool, *, first: bool = False) -> str:
        """List; report what changed against what is known (everything as ADDED the first time if
        ``report``, marked ``existing``); the list's resourceVersion."""
        items, rv = self._owner._list_sync(self._info, self._namespace, self._labels, self._fields)
        present = {object_key(o): o for o in items}
        if not report:
            self._known = dict(present)
            return rv
        for key in [k for k in self._known if k not in present]:
            self._emit("DELETED", self._known[key])
        for obj in present.values():
            self._emit("ADDED", obj, existing=first)
        return rv

    def run(self) -> None:
        delay = 0.2
        rv = ""
        first = True
        while not self._stopping.is_set():
            try:
                if not rv:
                    rv = self._list(report=self._initial or not first, first=first)
                    if first:
                        first = False
                        self._mark_synced()
                rv = self._watch_once(rv)
                delay = 0.2
            except WatchGone:
                log.info("%s watch: resourceVersion %s expired; listing again", self._info.plural, rv)
                rv = ""
            except Exception as exc:  # noqa: BLE001  (the watch thread must survive any failure)
                if self._stopping.is_set():
                    break
                if isinstance(exc, ApiException) and exc.status in (401, 403, 404):
                    self._deliver(map_api_error(exc, f"watch {self._info.plural}"))
                    self._mark_synced()
                    return
                log.warning("%s watch failed (%s); retrying in %.1fs", self._info.plural, exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 5.0)
        self._mark_synced()

    def _watch_once(self, rv: str) -> str:
        return read_watch(
            self, lambda: self._owner._open_watch(self._info, self._namespace, rv, self._labels, self._fields), rv,
            self._handle,
        )  # fmt: skip

    def _handle(self, event_type: str, obj: Object) -> None:
        if event_type != "BOOKMARK":
            self._emit(cast(EventType, event_type), obj)


__all__ = ["FIELD_MANAGER", "KubeObjects"]
