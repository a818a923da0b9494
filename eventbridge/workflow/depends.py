"""A DAG's dependencies: evaluating a task's ``depends`` expression (``(a && b.Failed) || !c.Skipped``),
the tasks it waits for, and reachability in a dependency graph.

A bare task name means ``name.Succeeded || name.Skipped || name.Daemoned``, as in Argo.
``AnySucceeded`` / ``AllFailed`` look at every expansion of a looped task.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from eventbridge.errors import ExprError
from eventbridge.models.workflow import DAGTask, depends_names

_TOKEN = re.compile(r"\s*(?:(&&|\|\||!|\(|\))|([A-Za-z0-9_][A-Za-z0-9_-]*)(?:\.([A-Za-z]+))?)")


def _result(name: str, result: str | None, phase: str, phases: Sequence[str]) -> bool:
    if result is None:
        return phase in ("Succeeded", "Skipped", "Daemoned")
    if result == "Errored":
        return phase == "Error"
    if result == "AnySucceeded":
        return any(p == "Succeeded" for p in phases)
    if result == "AllFailed":
        return bool(phases) and all(p == "Failed" for p in phases)
    if result in ("Succeeded", "Failed", "Skipped", "Omitted", "Daemoned"):
        return phase == result
    raise ExprError(f"depends: unknown result {name}.{result}")


def evaluate_depends(
    expression: str, phases: Mapping[str, str], expansions: Mapping[str, Sequence[str]] | None = None
) -> bool:
    """Evaluate ``expression`` given each dependency's phase (and its expansions' phases)."""
    tokens: list[tuple[str, str | None, str | None]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"depends {expression!r}: unexpected {text[pos:]!r}")
        if match.group(1):
            tokens.append(("op", match.group(1), None))
        else:
            tokens.append(("task", match.group(2), match.group(3)))
        pos = match.end()
    index = 0

    def peek() -> tuple[str, str | None, str | None] | None:
        return tokens[index] if index < len(tokens) else None

    def take(op: str) -> bool:
        nonlocal index
        tok = peek()
        if tok is not None and tok[0] == "op" and tok[1] == op:
            index += 1
            return True
        return False

    def or_() -> bool:
        value = and_()
        while take("||"):
            right = and_()
            value = value or right
        return value

    def and_() -> bool:
        value = unary()
        while take("&&"):
            right = unary()
            value = value and right
        return value

    def unary() -> bool:
        nonlocal index
        if take("!"):
            return not unary()
        if take("("):
            value = or_()
            if not take(")"):
                raise ExprError(f"depends {expression!r}: missing ')'")
            return value
        tok = peek()
        if tok is None or tok[0] != "task" or tok[1] is None:
            raise ExprError(f"depends {expression!r}: expected a task name")
        index += 1
        name = tok[1]
        phase = phases.get(name, "")
        return _result(name, tok[2], phase, (expansions or {}).get(name, [phase]))

    value = or_()
    if index != len(tokens):
        raise ExprError(f"depends {expression!r}: unexpected text after the expression")
    return value


def reaches(graph: Mapping[str, list[str]], start: str, target: str) -> bool:
    """Whether ``start`` depends on ``target``, directly or through others, in a dependency graph."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current == target:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(graph.get(current, []))
    return False


def task_dependencies(task: DAGTask) -> list[str]:
    """The tasks a DAG task waits for: its ``dependencies`` and the names in its ``depends``."""
    deps = list(task.dependencies or [])
    if task.depends:
        deps += [d for d in depends_names(task.depends) if d not in deps]
    return deps


def failure_refs(depends: str) -> list[str]:
    """Tasks whose failure a depends expression handles (``x.Failed``, ``x.Errored``...)."""
    return re.findall(r"([A-Za-z0-9_][A-Za-z0-9_-]*)\.(?:Failed|Errored|AllFailed|AnySucceeded|Completed)", depends)
