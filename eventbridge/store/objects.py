"""Kubernetes objects of any kind as plain dicts: the :class:`Objects` protocol and its pieces.

The ``k8s`` trigger, the ``resource`` workflow template and the ``resource`` event source use it.
The implementation over a real API server is :class:`eventbridge.store.kube_objects.KubeObjects`
(cluster mode, or a kubeconfig); this module does not import the ``kubernetes`` package, so the
engines may depend on the protocol. Embedded mode has no Kubernetes API: :class:`NoObjects`
answers every call with an InvalidError that says so.

Patch strategies: ``merge`` (RFC 7386), ``json`` (RFC 6902, a list of operations), ``strategic``
(built-in kinds only: the API server refuses it for custom resources) and ``apply`` (server-side
apply); Argo's content-type spellings (``application/merge-patch+json``...) are accepted too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import quote

from eventbridge.errors import InvalidError
from eventbridge.store.base import Object

PatchStrategy = Literal["merge", "json", "strategic", "apply"]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]

#: Patch strategy names (ours, kubectl's ``--type`` and Argo's content types) -> (strategy, content type).
PATCH_TYPES: dict[str, tuple[PatchStrategy, str]] = {
    "merge": ("merge", "application/merge-patch+json"),
    "json": ("json", "application/json-patch+json"),
    "strategic": ("strategic", "application/strategic-merge-patch+json"),
    "apply": ("apply", "application/apply-patch+yaml"),
    "application/merge-patch+json": ("merge", "application/merge-patch+json"),
    "application/json-patch+json": ("json", "application/json-patch+json"),
    "application/strategic-merge-patch+json": ("strategic", "application/strategic-merge-patch+json"),
    "application/apply-patch+yaml": ("apply", "application/apply-patch+yaml"),
}
_ObjectList = list[Object]


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One resource as discovery describes it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The REST path of the collection (or of one object when ``name`` is given)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base

    def describe(self, namespace: str | None, name: str | None) -> str:
        """``ConfigMap ns/name`` (or ``Namespace name`` for cluster-scoped kinds), for messages."""
        where = f"{namespace}/{name}" if self.namespaced and namespace else str(name or "")
        return f"{self.kind} {where}".rstrip()


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """A change seen by :meth:`Objects.watch`; ``old`` is the previous state of a ``MODIFIED`` object;
    ``existing`` marks the ``ADDED`` events of the first list (objects that were there before the watch)."""

    type: EventType
    object: Object
    old: Object | None = None
    existing: bool = False


class ObjectWatch(Protocol):
    """An open watch: iterate it for changes; ``aclose()`` ends it."""

    def __aiter__(self) -> AsyncIterator[ObjectEvent]: ...

    async def __anext__(self) -> ObjectEvent: ...

    async def synced(self) -> None:
        """Return once the first list was reported (or the watch failed)."""
        ...

    async def aclose(self) -> None: ...


class Objects(Protocol):
    """Kubernetes objects of any kind as plain dicts (see the module docstring)."""

    @property
    def available(self) -> bool:
        """False where there is no Kubernetes API (embedded mode): every call raises InvalidError."""
        ...

    async def resolve(self, api_version: str, kind: str) -> ResourceInfo: ...

    async def resource(self, group: str, version: str, plural: str) -> ResourceInfo: ...

    async def resolve_type(self, type_name: str) -> ResourceInfo: ...

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object: ...

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> _ObjectList: ...

    async def create(self, obj: Object) -> Object: ...

    async def replace(self, obj: Object) -> Object: ...

    async def apply(self, obj: Object, *, force: bool = True) -> Object: ...

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        strategy: str = "merge",
    ) -> Object: ...

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, propagation: str | None = None
    ) -> None: ...

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        initial: bool = True,
    ) -> ObjectWatch: ...


def patch_type(strategy: str) -> tuple[PatchStrategy, str]:
    """``(strategy, content type)`` for a strategy name or content type; InvalidError if unknown."""
    found = PATCH_TYPES.get(strategy.strip())
    if found is None:
        raise InvalidError(
            f"unknown patch strategy {strategy!r}: use merge, json, strategic or apply "
            "(or application/merge-patch+json, application/json-patch+json, "
            "application/strategic-merge-patch+json, application/apply-patch+yaml)"
        )
    return found


def split_api_version(api_version: str) -> tuple[str, str]:
    """``("apps", "v1")`` for ``apps/v1``, ``("", "v1")`` for ``v1``."""
    text = (api_version or "").strip()
    if not text:
        raise InvalidError("apiVersion is required")
    group, _, version = text.rpartition("/")
    if not version or "/" in group:
        raise InvalidError(f"invalid apiVersion {api_version!r}")
    return group, version


def object_key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def resource_version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class NoObjects:
    """:class:`Objects` where there is no Kubernetes API (embedded mode): every call says so."""

    def __init__(self, reason: str = "objects of kinds other than Argo's need a Kubernetes API (cluster mode)") -> None:
        self.reason = reason

    @property
    def available(self) -> bool:
        return False

    def _refuse(self) -> InvalidError:
        return InvalidError(self.reason)

    async def resolve(self, api_version: str, kind: str) -> ResourceInfo:
        raise self._refuse()

    async def resource(self, group: str, version: str, plural: str) -> ResourceInfo:
        raise self._refuse()

    async def resolve_type(self, type_name: str) -> ResourceInfo:
        raise self._refuse()

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Object:
        raise self._refuse()

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> _ObjectList:
        raise self._refuse()

    async def create(self, obj: Object) -> Object:
        raise self._refuse()

    async def replace(self, obj: Object) -> Object:
        raise self._refuse()

    async def apply(self, obj: Object, *, force: bool = True) -> Object:
        raise self._refuse()

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
        raise self._refuse()

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, propagation: str | None = None
    ) -> None:
        raise self._refuse()

    def watch(
        self,
        info: ResourceInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        initial: bool = True,
    ) -> ObjectWatch:
        raise self._refuse()


__all__ = [
    "PATCH_TYPES",
    "NoObjects",
    "ObjectEvent",
    "ObjectWatch",
    "Objects",
    "ResourceInfo",
    "object_key",
    "patch_type",
    "resource_version",
    "split_api_version",
]
