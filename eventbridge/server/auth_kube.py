"""Cluster-mode auth: Kubernetes ServiceAccount (or any API server) tokens, as argo-server's ``client`` mode.

A bearer token is checked with a **TokenReview** (``authentication.k8s.io/v1``); each request is
then authorised with a **SubjectAccessReview** (``authorization.k8s.io/v1``) for the user, groups,
uid and extra the review returned, on the resource and verb the request maps to (all in the
``argoproj.io`` group):

====================================================  ==========================  ===================
request                                               resource                    verb
====================================================  ==========================  ===================
``GET /api/v1/workflows/{ns}``                        workflows                   list
``GET /api/v1/workflows/{ns}/{name}`` (and ``/log``)  workflows                   get
``GET /api/v1/workflow-events/{ns}``                  workflows                   watch
``POST /api/v1/workflows/{ns}`` and ``/submit``       workflows                   create
``POST .../lint`` (any kind)                          the kind                    list (changes nothing)
``PUT /api/v1/workflows/{ns}/{name}/{action}``        workflows                   update (resubmit: create)
``DELETE /api/v1/workflows/{ns}/{name}``              workflows                   delete
``/api/v1/workflow-templates/...``                    workflowtemplates           as above, PUT: update
``/api/v1/cluster-workflow-templates/...``            clusterworkflowtemplates    as above, cluster-scoped
``/api/v1/cron-workflows/...`` (suspend/resume)       cronworkflows               as above (PUT: update)
``/api/v1/archived-workflows...``                     workflows                   get/list/delete/create
``GET /api/v1/event-sources/...``                     eventsources                list / get
``GET /api/v1/sensors/...`` (and ``/traces``)         sensors                     list / get
``GET /api/v1/event-log[/{offset}]``                  events                      list / get
``POST /api/v1/event-log/{offset}/replay``            events                      create
====================================================  ==========================  ===================

``events.argoproj.io`` is a virtual resource (no CRD serves it; RBAC rules may still name it): the
bus's event log. The namespace is the ``{namespace}`` path part, else ``?namespace=``; without
either the review is for ``default_namespace`` (a server managing one namespace), else cluster-wide
(all namespaces), as argo-server's list of all namespaces is. UI
pages map the same way (``/workflows`` list, ``/workflows/{ns}/{name}`` get, its actions update,
``delete`` delete and ``resubmit`` create; ``/templates``, ``/cluster-templates``, ``/cron``,
``/eventsources``, ``/sensors``, ``/events``; a template's ``submit`` creates workflows). Other
paths (``/api/v1/info``, ``/version``, ``/userinfo``, ``/openapi.json``, ``/``) need only a valid token.

Both answers are cached for ``ttl_seconds``, positive and negative alike: token reviews under the
SHA-256 of the token (never the token), access reviews under the principal and the attributes.
The ``kubernetes`` client blocks, so its calls run in a bounded thread pool. The server's own
ServiceAccount needs ``create`` on ``tokenreviews`` and ``subjectaccessreviews`` (a ClusterRole).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import urllib3
from aiohttp import web
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge.server.auth import AuthUnavailableError, Principal, request_namespace

log = logging.getLogger(__name__)

GROUP = "argoproj.io"

#: First path part under /api/v1/ -> resource.
_API_RESOURCES = {
    "workflows": "workflows",
    "k8s-archived-workflows": "workflows",
    "archived-workflows": "workflows",
    "workflow-events": "workflows",
    "archived-workflows-label-keys": "workflows",
    "archived-workflows-label-values": "workflows",
    "workflow-templates": "workflowtemplates",
    "cluster-workflow-templates": "clusterworkflowtemplates",
    "cron-workflows": "cronworkflows",
    "event-sources": "eventsources",
    "sensors": "sensors",
    "event-log": "events",
}
#: First path part of a UI page -> resource.
_UI_RESOURCES = {
    "workflows": "workflows",
    "templates": "workflowtemplates",
    "cluster-templates": "clusterworkflowtemplates",
    "cron": "cronworkflows",
    "eventsources": "eventsources",
    "sensors": "sensors",
    "events": "events",
}
_CLUSTER_SCOPED = frozenset({"clusterworkflowtemplates"})
#: Trailing path parts that only read (a workflow's log, a sensor's traces).
_READ_SUFFIXES = frozenset({"log", "traces"})


@dataclass(frozen=True, slots=True)
class KubePrincipal(Principal):
    """A user the API server vouched for: what a SubjectAccessReview must repeat."""

    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Access:
    """What a request needs: ``verb`` on ``group/resource`` (``name``) in ``namespace`` ("" = cluster-wide)."""

    verb: str
    resource: str
    namespace: str = ""
    name: str = ""
    group: str = GROUP

    def __str__(self) -> str:
        where = f" in namespace {self.namespace!r}" if self.namespace else " cluster-wide"
        named = f" {self.name!r}" if self.name else ""
        return f"{self.verb} {self.resource}.{self.group}{named}{where}"


def _route_parts(request: web.Request) -> list[str]:
    """The matched route's pattern split into parts (``{namespace}`` stays a placeholder)."""
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    return [part for part in canonical.split("/") if part]


async def required_access(request: web.Request, default_namespace: str = "") -> Access | None:
    """The access ``request`` needs (see the module's table); None when a valid token is enough.

    ``default_namespace`` stands for a request that names no namespace ("" = cluster-wide).
    """
    parts = _route_parts(request)
    api = parts[:2] == ["api", "v1"]
    rest = parts[2:] if api else parts
    resource = (_API_RESOURCES if api else _UI_RESOURCES).get(rest[0]) if rest else None
    if resource is None:
        return None
    literal = rest[-1] if len(rest) > 1 and not rest[-1].startswith("{") else ""
    action = request.match_info.get("action") or ("" if literal in _READ_SUFFIXES else literal)
    namespace = "" if resource in _CLUSTER_SCOPED else (request_namespace(request) or default_namespace)
    name = request.match_info.get("name", "")
    if request.method in ("GET", "HEAD", "OPTIONS"):
        if rest[0] == "workflow-events":
            return Access("watch", resource, namespace)
        single = any(part in ("{name}", "{uid}", "{offset}") for part in rest)
        return Access("get" if single else "list", resource, namespace, name if single else "")
    if action == "lint":
        return Access("list", resource, namespace)
    if action == "submit":
        if not api and resource in _CLUSTER_SCOPED:  # the UI's form names the target namespace
            target = (await request.post()).get("namespace")
            namespace = target if isinstance(target, str) and target else "default"
        return Access("create", "workflows", namespace)
    if action == "resubmit" or (rest[0] == "archived-workflows" and action == "retry"):
        return Access("create", "workflows", namespace)
    if action == "replay":
        return Access("create", "events", namespace)
    if request.method == "DELETE" or action == "delete":
        return Access("delete", resource, namespace, name)
    if request.method == "POST" and not action:
        return Access("create", resource, namespace)
    return Access("update", resource, namespace, name)


class _TtlCache:
    """A small dict with per-entry expiry; full caches drop expired entries, then the oldest."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        found = self._items.get(key)
        if found is None:
            return False, None
        expires, value = found
        if expires < time.monotonic():
            del self._items[key]
            return False, None
        return True, value

    def put(self, key: Any, value: Any) -> None:
        now = time.monotonic()
        if len(self._items) >= self._max:
            self._items = {k: v for k, v in self._items.items() if v[0] >= now}
            while len(self._items) >= self._max:
                del self._items[next(iter(self._items))]
        self._items[key] = (now + self._ttl, value)


class KubeAuth:
    """An :class:`~eventbridge.server.auth.Authenticator` asking the API server (TokenReview + SAR).

    ``audiences``: what the token must be meant for (empty: the API server's own audiences).
    ``default_namespace``: reviewed for requests naming no namespace; a server that manages one
    namespace passes it, so "all namespaces" means that one (empty: cluster-wide reviews).
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        audiences: tuple[str, ...] = (),
        default_namespace: str = "",
        ttl_seconds: float = 10.0,
        max_entries: int = 4096,
        max_workers: int = 4,
        timeout_seconds: float = 10.0,
    ) -> None:
        self._authn = k8s.AuthenticationV1Api(api_client)
        self._authz = k8s.AuthorizationV1Api(api_client)
        self._audiences = list(audiences)
        self._default_namespace = default_namespace
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="kube-auth")
        self._tokens = _TtlCache(ttl_seconds, max_entries)
        self._access = _TtlCache(ttl_seconds, max_entries)
        #: How many reviews were sent to the API server (cache misses), for tests and debugging.
        self.reviews = 0

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(self, what: str, fn: Any, body: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        self.reviews += 1
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(body, _request_timeout=self._timeout))
        except ApiException as exc:
            log.warning("%s failed: HTTP %s %s", what, exc.status, exc.reason)
            raise AuthUnavailableError(f"cannot check access: {what} failed (HTTP {exc.status})") from None
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            log.warning("%s failed: %s", what, type(exc).__name__)
            raise AuthUnavailableError(f"cannot check access: {what} failed (API server unreachable)") from None

    async def authenticate(self, token: str) -> Principal | None:
        """The TokenReview's user, or None when the API server does not know the token."""
        key = hashlib.sha256(token.encode()).digest()
        hit, cached = self._tokens.get(key)
        if hit:
            return cached  # type: ignore[no-any-return]
        spec: dict[str, Any] = {"token": token}
        if self._audiences:
            spec["audiences"] = self._audiences
        review = await self._call("TokenReview", self._authn.create_token_review, {"spec": spec})
        status = review.status
        principal: KubePrincipal | None = None
        if status is not None and status.authenticated and status.user is not None:
            user = status.user
            extra = tuple(sorted((k, tuple(v or ())) for k, v in (user.extra or {}).items()))
            principal = KubePrincipal(
                name=user.username or "", groups=tuple(user.groups or ()), uid=user.uid or "", extra=extra
            )
        self._tokens.put(key, principal)
        return principal

    async def authorize(self, principal: Principal, request: web.Request) -> str | None:
        """None when the SubjectAccessReview for the request's :func:`required_access` allows it."""
        access = await required_access(request, self._default_namespace)
        if access is None:
            return None
        if await self.allowed(principal, access):
            return None
        return f"{principal.name} may not {access}"

    async def allowed(self, principal: Principal, access: Access) -> bool:
        """Whether ``principal`` has ``access`` (a SubjectAccessReview, cached)."""
        key = (principal, access)
        hit, cached = self._access.get(key)
        if hit:
            return bool(cached)
        attributes = {"group": access.group, "resource": access.resource, "verb": access.verb}
        if access.namespace:
            attributes["namespace"] = access.namespace
        if access.name:
            attributes["name"] = access.name
        spec: dict[str, Any] = {"user": principal.name, "groups": list(principal.groups)}
        spec["resourceAttributes"] = attributes
        if isinstance(principal, KubePrincipal):
            if principal.uid:
                spec["uid"] = principal.uid
            if principal.extra:
                spec["extra"] = {k: list(v) for k, v in principal.extra}
        review = await self._call("SubjectAccessReview", self._authz.create_subject_access_review, {"spec": spec})
        allowed = bool(review.status is not None and review.status.allowed and not review.status.denied)
        self._access.put(key, allowed)
        return allowed
