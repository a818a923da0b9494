"""Lint across manifests: a reference from one loaded object to another that is not there.

Each object loads and checks on its own; these warnings need the whole set. They are warnings,
never errors, as the other object may come from elsewhere (the API, the cluster):

* a Sensor dependency whose EventSource is loaded but has no event of that name, or whose
  EventSource is not loaded while others of its namespace are (a misspelt name: Argo's most
  common "my sensor never fires");
* a ``workflowTemplateRef`` or ``templateRef`` (in Workflows, templates, CronWorkflows and the
  resources of Sensor triggers) naming a WorkflowTemplate or ClusterWorkflowTemplate that is not
  loaded while others of that kind are, or a template that the loaded one does not have.

References built from parameters (``{{...}}`` in the name, or a trigger parameter whose ``dest``
writes a template reference) are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventbridge.models.eventsource import EventSource
from eventbridge.models.kinds import FieldPath, join_path
from eventbridge.models.loader import Diagnostic, Loaded
from eventbridge.models.sensor import Sensor
from eventbridge.models.workflow import ClusterWorkflowTemplate, WorkflowTemplate

#: (namespace, name) for namespaced objects; ("", name) for cluster-scoped ones.
Key = tuple[str, str]


@dataclass
class _Index:
    """What the loaded objects offer to references: events by EventSource, templates by template object."""

    events: dict[Key, set[str]] = field(default_factory=dict)
    templates: dict[str, dict[Key, set[str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Sequence[Loaded]) -> _Index:
        index = cls()
        for loaded in objects:
            manifest = loaded.manifest
            if isinstance(manifest, EventSource):
                names = {event_name for _, event_name, _ in manifest.spec.sources()}
                index.events[(manifest.namespace, manifest.name)] = names
            elif isinstance(manifest, WorkflowTemplate | ClusterWorkflowTemplate):
                scope = "" if isinstance(manifest, ClusterWorkflowTemplate) else manifest.namespace
                names = {template.name for template in manifest.spec.templates or []}
                index.templates.setdefault(manifest.kind, {})[(scope, manifest.name)] = names
        return index


def cross_references(objects: Sequence[Loaded]) -> list[Diagnostic]:
    """Warnings for the references among ``objects`` that point at nothing loaded."""
    index = _Index.of(objects)
    diagnostics: list[Diagnostic] = []
    for loaded in objects:
        manifest = loaded.manifest
        if isinstance(manifest, Sensor):
            for path, message in _dependencies(manifest, index):
                diagnostics.append(_warning(loaded, path, message))
        for path, message in _template_references(loaded, index):
            diagnostics.append(_warning(loaded, path, message))
    return diagnostics


def _warning(loaded: Loaded, path: FieldPath, message: str) -> Diagnostic:
    manifest = loaded.manifest
    return Diagnostic(
        loaded.file, loaded.line_of(path), manifest.kind, manifest.name, join_path(path), message, "warning"
    )


def _listing(names: Sequence[str] | set[str]) -> str:
    return ", ".join(sorted(names)) or "none"


def _dependencies(sensor: Sensor, index: _Index) -> Iterator[tuple[FieldPath, str]]:
    namespace = sensor.namespace
    in_namespace = sorted(name for ns, name in index.events if ns == namespace)
    for number, dependency in enumerate(sensor.spec.dependencies):
        source, event = dependency.event_source_name, dependency.event_name
        if not source or not event:
            continue  # the Sensor's own check reports these
        path: FieldPath = ("spec", "dependencies", number)
        events = index.events.get((namespace, source))
        if events is None:
            if in_namespace:
                yield (
                    (*path, "eventSourceName"),
                    (
                        f"no EventSource {source!r} is loaded in namespace {namespace!r} (loaded: "
                        f"{_listing(in_namespace)}): the dependency gets no event unless it runs elsewhere"
                    ),
                )
        elif event not in events:
            yield (
                (*path, "eventName"),
                (
                    f"EventSource {source!r} has no event {event!r} (its events: {_listing(events)}): "
                    "the dependency never gets an event"
                ),
            )


def _template_references(loaded: Loaded, index: _Index) -> Iterator[tuple[FieldPath, str]]:
    manifest = loaded.manifest
    body = manifest.dump()
    parameterized = _parameterized_triggers(body) if isinstance(manifest, Sensor) else set()
    for path, namespace, ref, template in _references(body, (), manifest.namespace):
        if path[:2] == ("spec", "triggers") and len(path) > 2 and path[2] in parameterized:
            continue
        name = ref.get("name")
        if not isinstance(name, str) or not name or "{{" in name:
            continue
        cluster = bool(ref.get("clusterScope"))
        kind = "ClusterWorkflowTemplate" if cluster else "WorkflowTemplate"
        scope = "" if cluster else namespace
        loaded_of_kind = index.templates.get(kind, {})
        names = loaded_of_kind.get((scope, name))
        if names is None:
            others = sorted(n for s, n in loaded_of_kind if s == scope)
            if others:
                where = "" if cluster else f" in namespace {namespace!r}"
                yield (
                    (*path, "name"),
                    (
                        f"no {kind} {name!r} is loaded{where} (loaded: {_listing(others)}): "
                        "it must exist in the store when this runs"
                    ),
                )
        elif template is not None and "{{" not in template and template not in names:
            yield (
                (*path, "template"),
                f"{kind} {name!r} has no template {template!r} (its templates: {_listing(names)})",
            )


def _references(
    value: Any, path: FieldPath, namespace: str
) -> Iterator[tuple[FieldPath, str, dict[str, Any], str | None]]:
    """Every ``workflowTemplateRef`` (template ``None``) and ``templateRef`` under ``value``, with
    the namespace it resolves in (an embedded object's own ``metadata.namespace``, else the outer one)."""
    if isinstance(value, list):
        for number, item in enumerate(value):
            yield from _references(item, (*path, number), namespace)
        return
    if not isinstance(value, dict):
        return
    metadata = value.get("metadata")
    if path and "kind" in value and isinstance(metadata, dict) and isinstance(metadata.get("namespace"), str):
        namespace = metadata["namespace"] or namespace
    for key, item in value.items():
        here = (*path, key)
        if key == "workflowTemplateRef" and isinstance(item, dict):
            yield here, namespace, item, None
        elif key == "templateRef" and isinstance(item, dict):
            template = item.get("template")
            yield here, namespace, item, template if isinstance(template, str) else None
        else:
            yield from _references(item, here, namespace)


def _parameterized_triggers(body: dict[str, Any]) -> set[int]:
    """Indexes of the Sensor's triggers with a parameter that writes a template reference."""
    triggers = (body.get("spec") or {}).get("triggers") or []
    return {number for number, trigger in enumerate(triggers) if any("emplateRef" in d for d in _dests(trigger))}


def _dests(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _dests(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "dest" and isinstance(item, str):
                yield item
            else:
                yield from _dests(item)


__all__ = ["cross_references"]
