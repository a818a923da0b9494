"""Argo Workflows ``{{...}}`` parameter substitution.

``{{ name }}`` is replaced by ``scope[name]`` (spaces inside the braces are ignored, as Argo does).
Tags that look like workflow variables (``inputs.``, ``steps.``, ``tasks.``, ``workflow.``,
``item``...) but are not in the scope raise :class:`ExprError` ("failed to resolve"); other unknown
tags are left as written (they may belong to another tool, e.g. a shell's ``{{`` in a script).
``{{=expression}}`` tags are expr-lang expressions (:mod:`eventbridge.expr.lang`) over the scope
as nested maps (``inputs.parameters.x``, ``steps['my-step'].outputs.result``); their result is
inserted as Argo does (strings as-is, other values as JSON). ``expression=None`` leaves them
unchanged; a callable replaces the evaluator. Nothing is ever evaluated with Python's eval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from eventbridge.errors import ExprError
from eventbridge.expr.lang import evaluate, format_value, nest

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


def expression_tag(expression: str, scope: Mapping[str, str]) -> str:
    """The text a ``{{=expression}}`` tag is replaced with (ExprError if it cannot be evaluated)."""
    return format_value(evaluate(expression, nest(scope)))


_DEFAULT: ExpressionHook = expression_tag


def _tag_end(text: str, start: int) -> int:
    """Index of the ``}}`` closing the expression tag whose body starts at ``start``, or -1.

    Braces and quoted strings inside the expression are skipped, so ``{{=toJson({a: {b: 1}})}}``
    closes at the last ``}}``."""
    depth = 0
    pos = start
    while pos < len(text):
        char = text[pos]
        if char in "'\"`":
            end = pos + 1
            while end < len(text) and text[end] != char:
                end += 2 if text[end] == "\\" and char != "`" else 1
            pos = end + 1
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0 and text.startswith("}}", pos):
                return pos
            depth = max(depth - 1, 0)
        pos += 1
    return -1


def substitute(
    text: str,
    scope: Mapping[str, str],
    *,
    strict_prefixes: tuple[str, ...] = STRICT_PREFIXES,
    expression: ExpressionHook | None = _DEFAULT,
) -> str:
    """``text`` with every resolvable ``{{tag}}`` replaced; see the module docstring."""
    if "{{" not in text:
        return text
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            out.append(text[pos:])
            break
        body = start + 2
        stripped = len(text) - len(text[body:].lstrip())
        is_expression = text.startswith("=", stripped)
        end = _tag_end(text, stripped + 1) if is_expression else text.find("}}", body)
        if end < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:start])
        whole = text[start : end + 2]
        tag = text[body:end].strip()
        pos = end + 2
        if tag.startswith("="):
            out.append(whole if expression is None else expression(tag[1:].strip(), scope))
            continue
        value = scope.get(tag)
        if value is not None:
            out.append(value)
        elif _strict(tag, strict_prefixes):
            raise ExprError(f"failed to resolve {{{{{tag}}}}}")
        else:
            out.append(whole)
    return "".join(out)


def substitute_all(
    value: Any,
    scope: Mapping[str, str],
    *,
    strict_prefixes: tuple[str, ...] = STRICT_PREFIXES,
    expression: ExpressionHook | None = _DEFAULT,
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
        return [substitute_all(v, scope, strict_prefixes=strict_prefixes, expression=expression) for v in value]
    return value


def tags(text: str) -> list[str]:
    """The (stripped) tag names in ``text``, in order, ``{{=...}}`` expressions included as ``=...``."""
    return [m.group(1).strip() for m in _TAG.finditer(text)]
