"""The Store protocol: Kubernetes-like CRUD + watch over Argo objects kept as plain dicts.

Objects are the JSON shape Argo uses (``apiVersion``, ``kind``, ``metadata``, ``spec``,
``status``). The embedded SQLite store and the Kubernetes custom-resource store implement it.

* ``create`` fills ``metadata.uid``, ``resourceVersion``, ``creationTimestamp`` and
  ``namespace`` (``default`` when missing); when only ``generateName`` is given it appends 5
  random characters as Kubernetes does. Raises AlreadyExistsError.
* ``update`` requires the ``metadata.resourceVersion`` it read; a stale one raises
  ConflictError. It returns the stored object with the new resourceVersion.
* ``watch`` yields changes after the call (``ADDED``, ``MODIFIED``, ``DELETED``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Object = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    object: Object


class Store(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def create(self, obj: Object) -> Object: ...

    async def get(self, kind: str, namespace: str, name: str) -> Object: ...

    async def list(
        self,
        kind: str,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> list[Object]: ...

    async def update(self, obj: Object) -> Object: ...

    async def delete(self, kind: str, namespace: str, name: str) -> None: ...

    def watch(self, kind: str, namespace: str | None = None) -> AsyncIterator[WatchEvent]: ...
