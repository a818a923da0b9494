"""GJSON paths over decoded JSON, and Go's stringification of the values they find.

Argo Events resolves every path (data filters, ``exprs`` fields, ``dataKey``/``contextKey``)
with tidwall/gjson. We use the ``gjson`` package (gjson-py), which speaks the same syntax on
decoded Python objects (``body.commits.0.id``, ``body.commits.#``, ``body.commits.#.id``,
``body.fav\\.movie``, ``body.commits.#(id=="x").id``, ``[a,b]``, ``{a,b}``, ``@reverse``).

Only :class:`eventbridge.errors.ExprError` escapes from this module: a missing key is reported
as ``found=False``, a malformed path raises ``ExprError``.

Stringification follows Go:

* :func:`go_string` is gjson's ``Result.String()`` as used by data filters: strings as-is,
  ``true``/``false``, numbers in Go's shortest ``'f'`` format (``3`` not ``3.0``), objects and
  arrays as compact JSON, ``null`` as the empty string.
* :func:`value_text` is Argo's ``getValueByKey`` (trigger parameters): the same, except that
  ``null`` is the raw text ``null``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from decimal import Decimal
from typing import Any, Literal

import gjson

from eventbridge.errors import ExprError

#: gjson's result types as Argo reads them (``Result.Type.String()``).
GoType = Literal["Null", "False", "Number", "String", "True", "JSON"]

# gjson-py raises GJSONParseError both for a malformed path and for data that does not contain it.
# Go's gjson never fails: a path it cannot follow simply does not exist. These phrases mark the
# malformed paths (reported as ExprError); every other parse error means "not found".
_SYNTAX_ERRORS = (
    "Empty",
    "Delimiter at the end",
    "Escape character at the end",
    "Expected delimiter or end of query",
    "empty modifier name",
    "Invalid JSON literal",
    "Invalid query starting",
    "Invalid query with two consecutive",
    "Missing separator after multipath",
    "Modifier with options separator",
    "pipe delimiter cannot immediately follow",
    "Unable to find end of literal",
    "Unable to load modifier options",
    "Unbalanced parentheses",
    "Unknown modifier",
    "Invalid modifier name",
    "Failed to parse multipaths key",
    "Expected colon after multipaths",
    "require a key before the operator",
    "requires one of the true, false",
    "Unable to load literal JSON",
    "Expected JSON object",
)


_SIMPLE_PATH = re.compile(r"[A-Za-z0-9_\-:/]+(?:\.[A-Za-z0-9_\-:/]+)*")


@functools.lru_cache(maxsize=4096)
def _simple_parts(path: str) -> tuple[str, ...] | None:
    """The keys of a path made only of plain keys and indexes (no gjson syntax), else None."""
    if _SIMPLE_PATH.fullmatch(path) is None:
        return None
    return tuple(path.split("."))


def lookup(data: Any, path: str) -> tuple[bool, Any]:
    """Resolve a gjson ``path`` in ``data``: ``(True, value)`` or ``(False, None)`` when absent.

    Raises :class:`ExprError` when the path itself is invalid (empty, unbalanced, bad modifier).
    """
    if not isinstance(path, str) or path == "":
        raise ExprError("empty path: write a gjson path such as body.ref")
    parts = _simple_parts(path)
    if parts is not None:
        # fast path for plain key/index chains (most paths), identical to gjson's answer
        node = data
        for part in parts:
            if isinstance(node, dict):
                if part not in node:
                    return False, None
                node = node[part]
            elif isinstance(node, list) and part.isdigit():
                index = int(part)
                if index >= len(node):
                    return False, None
                node = node[index]
            else:
                return False, None
        return True, node
    try:
        value = gjson.get(data, path)
    except gjson.GJSONParseError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if any(pattern in message for pattern in _SYNTAX_ERRORS):
            raise ExprError(f"invalid path {path!r}: {message}") from None
        return False, None
    except gjson.GJSONError as err:
        raise ExprError(f"invalid path {path!r}: {str(err).splitlines()[0]}") from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as err:
        # gjson-py is pure Python: any slip inside it must not leak as a non-eventbridge error.
        raise ExprError(f"invalid path {path!r}: {err}") from None
    return True, value


def check_path(path: str) -> str | None:
    """Why ``path`` is not a valid gjson path, or ``None`` when it is (for lint)."""
    try:
        lookup({}, path)
    except ExprError as err:
        return str(err)
    return None


def go_type(value: Any) -> GoType:
    """gjson's type name for a decoded JSON value (``JSON`` for objects and arrays)."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "JSON"


def format_number(number: float | int) -> str:
    """Go's ``strconv.FormatFloat(n, 'f', -1, 64)``: shortest digits, never an exponent.

    Integers are printed as they are (gjson returns the raw digits of an integer literal).
    """
    if isinstance(number, bool):
        return "true" if number else "false"
    if isinstance(number, int):
        return str(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return format(Decimal(repr(number)).normalize(), "f")


def compact_json(value: Any) -> str:
    """Compact JSON text, as gjson returns the raw text of objects and arrays."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ExprError(f"value cannot be written as JSON: {err}") from None


def go_string(value: Any) -> str:
    """gjson ``Result.String()``: ``null`` is the empty string (data filters compare this)."""
    if value is None:
        return ""
    return value_text(value)


def value_text(value: Any) -> str:
    """Argo's ``getValueByKey`` text: objects/arrays as compact JSON, ``null`` as ``null``."""
    if type(value) is str:  # the common case, before the general dispatch
        return value
    kind = go_type(value)
    if kind == "Null":
        return "null"
    if kind == "True":
        return "true"
    if kind == "False":
        return "false"
    if kind == "Number":
        return format_number(value)
    if kind == "String":
        return str(value)
    return compact_json(value)


_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)",
    re.IGNORECASE,
)


def parse_go_float(text: str) -> float | None:
    """Go's ``strconv.ParseFloat(text, 64)`` for decimal input; ``None`` when Go would fail."""
    if _GO_FLOAT.fullmatch(text):
        return float(text)
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+", text):
        try:
            return float.fromhex(text)
        except ValueError:
            return None
    return None


_GO_BOOLS = {
    "1": True,
    "t": True,
    "T": True,
    "TRUE": True,
    "true": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "FALSE": False,
    "false": False,
    "False": False,
}


def parse_go_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``; ``None`` when Go would fail."""
    return _GO_BOOLS.get(text)


def go_float(value: Any) -> float:
    """gjson ``Result.Float()``: numbers, ``true`` = 1, numeric strings; anything else 0."""
    kind = go_type(value)
    if kind == "True":
        return 1.0
    if kind == "Number":
        return float(value)
    if kind == "String":
        parsed = parse_go_float(value)
        return parsed if parsed is not None else 0.0
    return 0.0


def go_bool(value: Any) -> bool:
    """gjson ``Result.Bool()``: ``true``, non-zero numbers, strings ParseBool accepts."""
    kind = go_type(value)
    if kind == "True":
        return True
    if kind == "Number":
        return float(value) != 0
    if kind == "String":
        return parse_go_bool(value.lower()) is True
    return False
