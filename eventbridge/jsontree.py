"""Small helpers for JSON-like trees (dicts, lists, strings, numbers, booleans, None)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import orjson

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


def json_copy(value: Any) -> Any:
    """A deep copy made the way Argo makes one (JSON out and back in), about twice as fast as
    :func:`clone`: tuples come back as lists, datetimes as RFC 3339 strings. Values JSON cannot
    hold are copied by :func:`clone` instead."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return clone(value)


def dumps(value: Any, *, default: Callable[[Any], Any] | None = None) -> bytes:
    """Compact JSON as UTF-8 bytes, the encoding of the bus, the store and the Kafka records.

    orjson does the work (about 10x the standard library on a 2 KB event); what it refuses (keys
    that are not strings, integers past 64 bits, lone surrogates) goes through :mod:`json`, which
    writes the same JSON for everything both accept."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), default=default).encode()


def dumps_text(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """:func:`dumps` as a ``str`` (for SQLite TEXT columns)."""
    return dumps(value, default=default).decode()


def loads(raw: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON. orjson first; :mod:`json` for what only it accepts (``NaN`` literals and lone
    surrogates written by earlier versions), so that every error message comes from one place."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(bytes(raw) if isinstance(raw, memoryview) else raw)


__all__ = ["clone", "dumps", "dumps_text", "json_copy", "loads"]
