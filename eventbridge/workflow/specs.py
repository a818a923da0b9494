"""How a Workflow's spec is put together: a ``workflowTemplateRef``'s spec under the Workflow's own
fields, and ``spec.templateDefaults`` under each template."""

from __future__ import annotations

import copy
from typing import Any


def merge_specs(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Workflow spec fields over the template's; arguments.parameters merged by name."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if key == "arguments" and isinstance(value, dict):
            args = dict(merged.get("arguments") or {})
            params = {p.get("name"): p for p in args.get("parameters") or []}
            for p in value.get("parameters") or []:
                params[p.get("name")] = {**params.get(p.get("name"), {}), **p}
            args["parameters"] = list(params.values())
            for k, v in value.items():
                if k != "parameters":
                    args[k] = v
            merged["arguments"] = args
        elif key == "templates" and isinstance(value, list):
            by_name = {t.get("name"): t for t in merged.get("templates") or []}
            for t in value:
                by_name[t.get("name")] = t
            merged["templates"] = list(by_name.values())
        else:
            merged[key] = value
    return merged


_KIND_KEYS = frozenset(
    {"container", "script", "steps", "dag", "suspend", "resource", "http", "containerSet", "data", "plugin"}
)


def _deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base.get(key), value) if key in base else value
        return merged
    return copy.deepcopy(override)


def with_defaults(defaults: dict[str, Any], template: Any) -> Any:
    """``spec.templateDefaults`` under one template (the template's own values win; a default for
    a template kind, e.g. ``container``, only applies to templates of that kind)."""
    if not isinstance(template, dict):
        return template
    base = {k: copy.deepcopy(v) for k, v in defaults.items() if k not in _KIND_KEYS or k in template}
    return _deep_merge(base, template)


__all__ = ["merge_specs", "with_defaults"]
