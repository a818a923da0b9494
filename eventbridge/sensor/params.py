"""Trigger parameters, resolved exactly as Argo Events does (``pkg/sensors/triggers/params.go``).

:func:`resolve_param_value` finds a parameter's value in the events that fired a trigger:

1. the dependency has no event (an ``||`` condition): ``value`` if set, otherwise the parameter
   is skipped silently;
2. no ``dataKey``/``dataTemplate``/``contextKey``/``contextTemplate``: ``value`` if set,
   otherwise the whole event as Argo's JSON (``{"context": {...}, "data": "<base64>"}``);
3. data selectors win over context selectors; the template is tried first (Go text/template
   over ``{"Input": payload}``, :mod:`eventbridge.expr.gotemplate`; an error, an empty result or
   ``<no value>`` counts as failed), then the gjson key, then ``value``; if all fail the trigger
   fails.

A key returns objects and arrays as compact JSON, ``null`` as ``null``, scalars as Go prints
them. With ``useRawData`` a non-string result is inserted as raw JSON (number, bool, object)
instead of as a string.

:func:`apply_params` writes the values into a resource at ``dest`` (sjson paths: ``a.b.0``,
``-1`` appends to an array, ``:7`` forces an object key, ``\\.`` escapes a dot) with the
``operation`` overwrite (default), append (existing + new) or prepend (new + existing).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, NamedTuple

from eventbridge.errors import ExprError, PermanentError
from eventbridge.events import Event
from eventbridge.expr.gotemplate import render_input
from eventbridge.expr.paths import compact_json, go_string, go_type, lookup, value_text
from eventbridge.jsontree import json_copy
from eventbridge.models.sensor import TriggerParameter, TriggerParameterSource

log = logging.getLogger(__name__)

STRING_TYPE = "String"
JSON_CONTENT_TYPES = ("application/json", "application/yaml", "text/yaml", "application/x-yaml")


class ParamValue(NamedTuple):  # immutable and cheap to build (one or more per firing)
    """A resolved value: its text and gjson type (``String`` unless it came from a key)."""

    text: str
    type: str = STRING_TYPE


def argo_context(event: Event) -> dict[str, str]:
    """The event context as Argo marshals it (``time`` in UTC RFC 3339 seconds, like metav1.Time)."""
    context = event.context()
    context["time"] = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return context


def event_data_bytes(event: Event) -> bytes:
    """The event data as the raw JSON bytes Argo carries (compact)."""
    if isinstance(event.data, bytes):
        return event.data
    return compact_json(event.data).encode()


def whole_event_json(event: Event) -> str:
    """Argo's ``json.Marshal(event)``: the context plus ``data`` as base64 of the JSON bytes."""
    payload = {
        "context": argo_context(event),
        "data": base64.b64encode(event_data_bytes(event)).decode(),
    }
    return compact_json(payload)


def _event_data(event: Event) -> Any:
    """Argo's ``renderEventDataAsJSON``: only JSON and YAML data can be parameterized."""
    if event.datacontenttype not in JSON_CONTENT_TYPES:
        raise PermanentError(f"unsupported event content type: {event.datacontenttype}")
    return event.data


def resolve_param_value(src: TriggerParameterSource, events: Mapping[str, Event]) -> ParamValue | None:
    """Resolve one parameter source; ``None`` means "skip this parameter".

    Raises :class:`PermanentError` when neither template, key nor ``value`` gives a value.
    """
    event = events.get(src.dependency_name)
    if event is None:
        if src.value is not None:
            return ParamValue(src.value)
        return None
    if not (src.context_key or src.data_key or src.data_template or src.context_template):
        if src.value is not None:
            return ParamValue(src.value)
        return ParamValue(whole_event_json(event))

    key = ""
    template = ""
    payload: Any = None
    failure: str | None = None
    if src.context_key or src.context_template:
        key, template = src.context_key or "", src.context_template or ""
        payload = argo_context(event)
    if src.data_key or src.data_template:
        key, template = src.data_key or "", src.data_template or ""
        try:
            payload = _event_data(event)
        except PermanentError as err:
            failure = str(err)
    if failure is not None:
        if src.value is not None:
            log.debug("parameter of %s: %s; using the default value", src.dependency_name, failure)
            return ParamValue(src.value)
        raise PermanentError(f"unable to resolve '{src.dependency_name}' parameter value: {failure}")

    if template:
        try:
            return ParamValue(render_input(template, payload))
        except ExprError as err:
            failure = str(err)
            log.debug("parameter of %s: template failed: %s; falling back to key or value", src.dependency_name, err)
    if key:
        try:
            found, value = lookup(payload, key)
        except ExprError as err:
            found, value, failure = False, None, str(err)
        if found:
            return ParamValue(value_text(value), go_type(value))
        failure = f"key {key} does not exist in the event payload" if failure is None else failure
    if src.value is not None:
        return ParamValue(src.value)
    raise PermanentError(f"unable to resolve '{src.dependency_name}' parameter value: {failure}")


# ---------------------------------------------------------------------------------------------
# sjson-style paths
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Part:
    key: str
    #: the array index this part names (``-1``: append), None for an object key only; ``:7``
    #: forces the object key "7"
    index: int | None


def _part(key: str, forced_key: bool) -> _Part:
    if forced_key:
        return _Part(key, None)
    if key == "-1":
        return _Part(key, -1)
    if key.isascii() and key.isdigit():  # "²".isdigit() is true, but int() refuses it
        return _Part(key, int(key))
    return _Part(key, None)


#: How far past the end of an array ``set_path`` pads with nulls (sjson pads without a bound; a
#: typo such as ``spec.items.99999999`` must not allocate gigabytes).
MAX_ARRAY_PADDING = 10_000


@functools.lru_cache(maxsize=1024)
def split_path(path: str) -> tuple[_Part, ...]:
    """Split an sjson path on unescaped dots; ``\\.`` and ``\\:`` are literal, ``:`` forces a key.

    Cached: dest paths come from manifests, so a few distinct ones are split again and again."""
    if path == "":
        raise PermanentError("parameter dest is empty: give a path such as spec.arguments.parameters.0.value")
    parts: list[_Part] = []
    current: list[str] = []
    forced = False
    position = 0
    while position < len(path):
        char = path[position]
        if char == "\\" and position + 1 < len(path):
            current.append(path[position + 1])
            position += 2
            continue
        if char == ":" and not current and not forced:
            forced = True
        elif char == ".":
            parts.append(_part("".join(current), forced))
            current, forced = [], False
        else:
            current.append(char)
        position += 1
    parts.append(_part("".join(current), forced))
    return tuple(parts)


def get_path(document: Any, path: str) -> tuple[bool, Any]:
    """Read an sjson ``path`` (used by append/prepend to find the current value)."""
    node = document
    for part in split_path(path):
        if isinstance(node, dict):
            if part.key not in node:
                return False, None
            node = node[part.key]
        elif isinstance(node, list):
            index = part.index
            if index is None or index < 0 or index >= len(node):
                return False, None
            node = node[index]
        else:
            return False, None
    return True, node


_CONTAINERS = (dict, list)


def _fresh_container(following: _Part) -> list[Any] | dict[str, Any]:
    """The container a missing path part becomes: an array when the next part is an index."""
    return [] if following.index is not None else {}


def set_path(document: Any, path: str, value: Any) -> Any:
    """Set ``value`` at an sjson ``path`` in ``document`` (mutated in place and returned).

    Missing containers are created: an array when the next part is an index (or ``-1``),
    otherwise an object. Setting past the end of an array pads it with ``null``.
    """
    parts = split_path(path)
    if not isinstance(document, _CONTAINERS):
        raise PermanentError(f"cannot set {path!r}: the document is not an object or an array")
    node: Any = document
    final = len(parts) - 1
    for position, part in enumerate(parts):
        last = position == final
        if isinstance(node, dict):
            if last:
                node[part.key] = value
                return document
            child = node.get(part.key)
            if not isinstance(child, _CONTAINERS):
                child = node[part.key] = _fresh_container(parts[position + 1])
            node = child
            continue
        # node is a list
        index = part.index
        if index is None:
            raise PermanentError(f"cannot set {path!r}: {part.key!r} is not an index of an array")
        if index == -1:
            index = len(node)
        if index > len(node) + MAX_ARRAY_PADDING:
            raise PermanentError(
                f"cannot set {path!r}: index {index} is more than {MAX_ARRAY_PADDING} past the end of the array "
                f"({len(node)} items)"
            )
        while len(node) <= index:
            node.append(None)
        if last:
            node[index] = value
            return document
        if not isinstance(node[index], _CONTAINERS):
            node[index] = _fresh_container(parts[position + 1])
        node = node[index]
    return document


# ---------------------------------------------------------------------------------------------
# applying parameters
# ---------------------------------------------------------------------------------------------


def apply_params(
    document: Mapping[str, Any] | list[Any],
    parameters: Sequence[TriggerParameter] | None,
    events: Mapping[str, Event],
) -> Any:
    """Return a copy of ``document`` with every parameter applied in order (Argo's ApplyParams)."""
    result = json_copy(document)
    for parameter in parameters or []:
        if parameter.src is None:
            raise PermanentError(f"parameter for {parameter.dest!r} has no src")
        resolved = resolve_param_value(parameter.src, events)
        if resolved is None:
            continue
        text, kind = resolved.text, resolved.type
        operation = parameter.operation or "overwrite"
        if operation in ("append", "prepend"):
            found, current = get_path(result, parameter.dest)
            if found:
                kind = STRING_TYPE
                text = go_string(current) + text if operation == "append" else text + go_string(current)
        elif operation != "overwrite":
            raise PermanentError(f"unsupported trigger parameter operation: {operation}")
        if kind != STRING_TYPE and parameter.src.use_raw_data:
            try:
                value: Any = json.loads(text)
            except ValueError as err:
                raise PermanentError(f"value for {parameter.dest!r} is not valid JSON: {err}") from None
        else:
            value = text
        set_path(result, parameter.dest, value)
    return result


def construct_payload(parameters: Sequence[TriggerParameter] | None, events: Mapping[str, Event]) -> bytes:
    """Argo's ConstructPayload (http and kafka ``payload``): a JSON object built from the
    parameters in order; a parameter with an empty ``dest`` is the whole payload (raw text).
    Skipped parameters (an absent ``||`` dependency without ``value``) add nothing; with none
    resolved the payload is empty."""
    document: dict[str, Any] | None = None
    for parameter in parameters or []:
        if parameter.src is None:
            raise PermanentError(f"payload parameter for {parameter.dest!r} has no src")
        resolved = resolve_param_value(parameter.src, events)
        if not parameter.dest:
            if resolved is not None:
                return resolved.text.encode()
            continue
        if resolved is None:
            continue
        if resolved.type != STRING_TYPE and parameter.src.use_raw_data:
            try:
                value: Any = json.loads(resolved.text)
            except ValueError as err:
                raise PermanentError(f"value for {parameter.dest!r} is not valid JSON: {err}") from None
        else:
            value = resolved.text
        document = set_path(document if document is not None else {}, parameter.dest, value)
    if document is None:
        return b""
    return compact_json(document).encode()
