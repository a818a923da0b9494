"""Small helpers for JSON-like trees (dicts, lists, strings, numbers, booleans, None)."""

from __future__ import annotations

import copy
from typing import Any

_SCALARS = (str, int, float, bool, type(None))


def clone(value: Any) -> Any:
    """A deep copy of a JSON-like tree, several times faster than :func:`copy.deepcopy` for one.

    Dicts and lists are rebuilt, scalars are shared (they are immutable); anything else falls back
    to :func:`copy.deepcopy`, so the result never shares a mutable object with ``value``."""
    kind = type(value)
    if kind is dict:
        return {key: clone(item) for key, item in value.items()}
    if kind is list:
        return [clone(item) for item in value]
    if kind in _SCALARS:
        return value
    return copy.deepcopy(value)


__all__ = ["clone"]
