"""Argo Workflows ``{{...}}`` parameter substitution.

``{{ name }}`` is replaced by ``scope[name]`` (spaces inside the braces are ignored, as Argo does).
Tags that look like workflow variables (``inputs.``, ``steps.``, ``tasks.``, ``workflow.``,
``item``...) but are not in the scope raise :class:`ExprError` ("failed to resolve"); other unknown
tags are left as written (they may belong to another tool, e.g. a shell's ``{{`` in a script).
``{{=expression}}`` tags are handed to the optional ``expression`` callback, else left unchanged.
Nothing is ever evaluated with Python's eval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from eventbridge.errors import ExprError

_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)

# Variable prefixes the controller owns: an unknown one is an error, not literal text.
STRICT_PREFIXES = (
    "inputs.",
    "outputs.",
    "steps.",
    "tasks.",
    "workflow.",
    "item",
    "pod.",
    "node.",
    "retries",
    "lastRetry.",
)

ExpressionHook = Callable[[str, Mapping[str, str]], str]


def _strict(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p) for p in prefixes) and (
        not name.startswith("item") or name == "item" or name.startswith("item.")
    )


def substitute(
    text: str,
    scope: Mapping[str, str],
    *,
    strict_prefixes: tuple[str, ...] = STRICT_PREFIXES,
    expression: ExpressionHook | None = None,
) -> str:
    """``text`` with every resolvable ``{{tag}}`` replaced; see the module docstring."""
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        tag = match.group(1).strip()
        if tag.startswith("="):
            if expression is None:
                return match.group(0)
            return expression(tag[1:].strip(), scope)
        value = scope.get(tag)
        if value is not None:
            return value
        if _strict(tag, strict_prefixes):
            raise ExprError(f"failed to resolve {{{{{tag}}}}}")
        return match.group(0)

    return _TAG.sub(replace, text)


def substitute_all(
    value: Any,
    scope: Mapping[str, str],
    *,
    strict_prefixes: tuple[str, ...] = STRICT_PREFIXES,
    expression: ExpressionHook | None = None,
) -> Any:
    """Substitute in every string of a JSON-like value (dicts, lists, strings); others unchanged."""
    if isinstance(value, str):
        return substitute(value, scope, strict_prefixes=strict_prefixes, expression=expression)
    if isinstance(value, dict):
        return {
            k: substitute_all(v, scope, strict_prefixes=strict_prefixes, expression=expression)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            substitute_all(v, scope, strict_prefixes=strict_prefixes, expression=expression) for v in value
        ]
    return value


def tags(text: str) -> list[str]:
    """The (stripped) tag names in ``text``, in order, ``{{=...}}`` expressions included as ``=...``."""
    return [m.group(1).strip() for m in _TAG.finditer(text)]
