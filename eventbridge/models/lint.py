"""Lint: the loader's diagnostics plus advice about fields that are set but have no effect.

On top of what :mod:`eventbridge.models.loader` reports (syntax, schema and ``check()``
problems), lint warns about:

* every field declared with :func:`~eventbridge.models.base.unsupported` that is set to a
  non-empty value (the warning is the reason given in the model);
* every unknown field (kept on a round trip, but nothing reads it);
* references from one object to another that is not loaded (:mod:`eventbridge.models.crossrefs`).

Fields set to a Go zero value (``null``, ``false``, ``0``, ``""``, ``[]``, ``{}``) count as unset,
as they do for Argo. The CLI calls :func:`lint_paths` and prints :func:`format_diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from eventbridge.models.base import UNSUPPORTED_KEY, Finding, Manifest
from eventbridge.models.crossrefs import cross_references
from eventbridge.models.kinds import FieldPath, join_path
from eventbridge.models.loader import Diagnostic, Loaded, LoadResult, load_paths

UNKNOWN_FIELD = "unknown field (kept, not used)"


def _is_zero(value: object) -> bool:
    return not isinstance(value, BaseModel) and not value


def _unsupported_reason(model: BaseModel, field_name: str) -> str | None:
    info = type(model).model_fields.get(field_name)
    if info is None or not isinstance(info.json_schema_extra, dict):
        return None
    reason = info.json_schema_extra.get(UNSUPPORTED_KEY)
    return str(reason) if reason is not None else None


def model_warnings(model: BaseModel, path: FieldPath = ()) -> list[tuple[FieldPath, str]]:
    """(path, message) for every set unsupported field and every unknown field in ``model``,
    walking nested models, lists and dicts."""
    found: list[tuple[FieldPath, str]] = []
    _walk_model(model, path, found)
    return found


def _walk_model(model: BaseModel, path: FieldPath, found: list[tuple[FieldPath, str]]) -> None:
    fields = type(model).model_fields
    extra = model.model_extra or {}
    for name in sorted(model.model_fields_set, key=str):
        if name in extra:
            found.append(((*path, name), UNKNOWN_FIELD))
            continue
        info = fields.get(name)
        if info is None:
            continue
        value = getattr(model, name, None)
        if _is_zero(value):
            continue
        field_path = (*path, info.alias or name)
        reason = _unsupported_reason(model, name)
        if reason is not None:
            found.append((field_path, reason))
            continue  # nothing below an unsupported field is used either
        _walk_value(value, field_path, found)


def _walk_value(value: Any, path: FieldPath, found: list[tuple[FieldPath, str]]) -> None:
    if isinstance(value, BaseModel):
        _walk_model(value, path, found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_value(item, (*path, index), found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_value(item, (*path, str(key)), found)


def lint_object(loaded: Loaded) -> list[Diagnostic]:
    """Lint warnings for one loaded object."""
    manifest = loaded.manifest
    name = manifest.metadata.name or manifest.metadata.generate_name or ""
    return [
        Diagnostic(loaded.file, loaded.line_of(path), manifest.kind, name, join_path(path), text, "warning")
        for path, text in model_warnings(manifest)
    ]


#: A check that needs more than the models know (expression syntax...); engines provide them.
ExtraCheck = Callable[[Manifest], list[Finding]]


def located(loaded: Loaded, finding: Finding) -> Diagnostic:
    """A Finding of ``loaded`` as a Diagnostic pointing at the field's line."""
    manifest = loaded.manifest
    path: FieldPath = tuple(int(p) if p.isdigit() else p for p in finding.path.split(".") if p)
    name = manifest.metadata.name or manifest.metadata.generate_name or ""
    return Diagnostic(
        loaded.file, loaded.line_of(path), manifest.kind, name, finding.path, finding.message, finding.severity
    )


def lint(result: LoadResult, extra_checks: Sequence[ExtraCheck] = ()) -> list[Diagnostic]:
    """All diagnostics of ``result`` plus lint warnings, ``extra_checks`` and the cross-object
    warnings, ordered by file and line."""
    diagnostics = list(result.diagnostics)
    for loaded in result.objects:
        diagnostics.extend(lint_object(loaded))
        for check in extra_checks:
            diagnostics.extend(located(loaded, finding) for finding in check(loaded.manifest))
    diagnostics.extend(cross_references(result.objects))
    return sorted(diagnostics, key=lambda d: (d.file, d.line))


def lint_paths(paths: Sequence[str | Path], extra_checks: Sequence[ExtraCheck] = ()) -> tuple[list[Diagnostic], int]:
    """Load and lint files/folders; exit code 1 if any error, else 0 (warnings do not fail)."""
    diagnostics = lint(load_paths(paths), extra_checks)
    return diagnostics, (1 if any(d.severity == "error" for d in diagnostics) else 0)


def format_diagnostics(diagnostics: Iterable[Diagnostic], *, summary: bool = True) -> str:
    """One line per diagnostic, then (if ``summary``) ``N errors, M warnings`` or ``no problems found``."""
    items = list(diagnostics)
    lines = [str(d) for d in items]
    if summary:
        errors = sum(1 for d in items if d.severity == "error")
        warnings = len(items) - errors
        if not items:
            lines.append("no problems found")
        else:
            lines.append(f"{_count(errors, 'error')}, {_count(warnings, 'warning')}")
    return "\n".join(lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
