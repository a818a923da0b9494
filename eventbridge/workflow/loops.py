"""Loops of steps and DAG tasks: ``withItems``, ``withParam`` and ``withSequence`` expansions, and
the ``{{item}}`` / ``{{item.key}}`` variables of one expansion."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from eventbridge.errors import ExprError
from eventbridge.expr.template import substitute, substitute_all
from eventbridge.models.workflow import DAGTask, WorkflowStep
from eventbridge.workflow.nodes import item_label, item_text


def expansions(step: WorkflowStep | DAGTask, scope: Mapping[str, str]) -> list[tuple[str, Any | None]]:
    """(node name suffix, item) for each expansion of a looped step; [("", None)] otherwise."""
    items: list[Any] | None = None
    if step.with_items is not None:
        items = [substitute_all(i, scope) for i in step.with_items]
    elif step.with_param is not None:
        text = substitute(step.with_param, scope)
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExprError(f"withParam value could not be parsed as a JSON list: {text[:200]!r}") from exc
        if not isinstance(items, list):
            raise ExprError(f"withParam value is not a JSON list: {text[:200]!r}")
    elif step.with_sequence is not None:
        items = sequence(step.with_sequence.model_dump(exclude_none=True), scope)
    if items is None:
        return [("", None)]
    return [(f"({i}:{item_label(item)})", item) for i, item in enumerate(items)]


def add_item(scope: dict[str, str], item: Any) -> None:
    scope["item"] = item_text(item)
    if isinstance(item, dict):
        stack: list[tuple[str, Any]] = [(f"item.{k}", v) for k, v in item.items()]
        while stack:
            key, value = stack.pop()
            scope[key] = item_text(value)
            if isinstance(value, dict):
                stack.extend((f"{key}.{k}", v) for k, v in value.items())


def sequence(seq: dict[str, Any], scope: Mapping[str, str]) -> list[str]:
    def number(key: str) -> int | None:
        raw = seq.get(key)
        if raw is None:
            return None
        text = substitute(str(raw), scope)
        try:
            return int(text)
        except ValueError:
            raise ExprError(f"withSequence.{key} {text!r} is not an integer") from None

    count, start, end = number("count"), number("start"), number("end")
    fmt = seq.get("format")
    if count is not None:
        first = start or 0
        values = list(range(first, first + count))
    elif end is not None:
        first = start or 0
        values = list(range(first, end + 1)) if end >= first else list(range(first, end - 1, -1))
    else:
        raise ExprError("withSequence needs count or end")
    if fmt:
        try:
            return [str(fmt) % v for v in values]
        except (TypeError, ValueError, KeyError) as exc:
            raise ExprError(f"withSequence.format {fmt!r} is not a printf format for one integer") from exc
    return [str(v) for v in values]


__all__ = ["add_item", "expansions", "sequence"]
