"""A tiny typed registry: maps Argo spec keys (``webhook``, ``argoWorkflow``...) to implementations.

Adding a source or trigger type is adding one module that registers itself; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> implementation, filled by ``@registry.register("key")`` at import time."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._items: dict[str, T] = {}

    def register(self, key: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if key in self._items:
                raise ValueError(f"{self._what} {key!r} is registered twice")
            self._items[key] = item
            return item

        return add

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
