"""Which model class reads which manifest, and validation of one decoded document.

``KINDS`` maps ``(apiVersion, kind)`` to the model class. :func:`validate_document` turns one
decoded document (a dict from YAML or JSON) into a :class:`~eventbridge.models.base.Manifest`
plus a list of :class:`Problem` (schema errors from pydantic, then the kind's own ``check()``),
without ever raising. :func:`parse_manifest` is the raising variant for the HTTP API.

Rules shared by the loader and the API:

* Only Argo's field names are accepted (``stringData``, not ``string_data``); a snake_case
  spelling is kept as an unknown field and lint warns about it.
* Documents of other kinds (Service, Deployment, RBAC, ``argoproj.io`` kinds we do not run)
  are *ignored*, not errors; a known kind with the wrong apiVersion version is an error.
* Documents are normalised to plain JSON values first (mapping keys become strings the way
  Kubernetes' YAML-to-JSON does, ``!!binary`` becomes base64 text) and limited in nesting depth
  and node count, so hostile input ends in a problem report, not in a crash.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from eventbridge.errors import InvalidError
from eventbridge.models.base import Manifest
from eventbridge.models.core import ConfigMap, Secret
from eventbridge.models.eventbus import EventBus
from eventbridge.models.eventsource import EventSource
from eventbridge.models.sensor import Sensor
from eventbridge.models.workflow import ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate

ARGO_API_VERSION = "argoproj.io/v1alpha1"

KINDS: dict[tuple[str, str], type[Manifest]] = {
    (ARGO_API_VERSION, "EventSource"): EventSource,
    (ARGO_API_VERSION, "Sensor"): Sensor,
    (ARGO_API_VERSION, "EventBus"): EventBus,
    (ARGO_API_VERSION, "Workflow"): Workflow,
    (ARGO_API_VERSION, "WorkflowTemplate"): WorkflowTemplate,
    (ARGO_API_VERSION, "ClusterWorkflowTemplate"): ClusterWorkflowTemplate,
    (ARGO_API_VERSION, "CronWorkflow"): CronWorkflow,
    ("v1", "Secret"): Secret,
    ("v1", "ConfigMap"): ConfigMap,
}
"""(apiVersion, kind) -> model class for every kind eventbridge reads."""

CLUSTER_SCOPED_KINDS = frozenset({"ClusterWorkflowTemplate"})

MAX_DEPTH = 100
"""Deepest nesting of mappings/lists accepted in one document (Argo manifests stay below 30)."""

MAX_NODES = 500_000
"""Most values (after YAML alias expansion) accepted in one document."""

FieldPath = tuple[str | int, ...]
Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in one document; ``path`` is a tuple of keys/indexes (empty: the document)."""

    path: FieldPath
    message: str
    severity: Severity = "error"

    @property
    def dotted(self) -> str:
        return join_path(self.path)


@dataclass(slots=True)
class DocumentResult:
    """What :func:`validate_document` found out about one document.

    ``manifest`` is set when the document is valid (no error problems); ``ignored`` is set when
    the document is of a kind eventbridge does not read (then there are no problems)."""

    kind: str = ""
    name: str = ""
    manifest: Manifest | None = None
    problems: list[Problem] = field(default_factory=list)
    ignored: bool = False

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


class DocumentTooLarge(InvalidError):
    """A document nests too deeply or has too many values (after alias expansion)."""


def join_path(path: FieldPath) -> str:
    """``('spec', 'triggers', 0, 'name')`` -> ``spec.triggers.0.name``."""
    return ".".join(str(part) for part in path)


def split_path(dotted: str) -> FieldPath:
    """Inverse of :func:`join_path` (digits become list indexes; dotted keys cannot round-trip)."""
    if not dotted:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in dotted.split("."))


def model_for(api_version: str, kind: str) -> type[Manifest] | None:
    return KINDS.get((api_version, kind))


def _api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


_GROUP_OF_KIND = {kind: _api_group(api_version) for api_version, kind in KINDS}


# ---------------------------------------------------------------------------------------------
# Normalisation to plain JSON values, with limits


def key_text(key: object) -> str:
    """Mapping keys as Kubernetes' YAML-to-JSON conversion spells them."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, tuple):
        return "[" + ", ".join(key_text(item) for item in key) + "]"
    return str(key)


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def normalize_document(document: object) -> Any:
    """A plain JSON-like copy of ``document`` (dict/list/str/int/float/bool/None).

    Shared references (YAML aliases) become copies; the copy is bounded by :data:`MAX_DEPTH`
    and :data:`MAX_NODES`, and reference cycles are rejected, all with :class:`DocumentTooLarge`.
    Iterative, so hostile nesting cannot exhaust the Python stack.
    """
    nodes = 0
    root: list[Any] = [None]
    # Each task: (source value, container to write into, key/index in it, depth, ids on the path)
    stack: list[tuple[object, Any, Any, int, frozenset[int]]] = [(document, root, 0, 0, frozenset())]
    while stack:
        value, target, slot, depth, ancestors = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise DocumentTooLarge(f"document has more than {MAX_NODES} values (YAML aliases expand to too much data)")
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            if depth >= MAX_DEPTH:
                raise DocumentTooLarge(f"document nests deeper than {MAX_DEPTH} levels")
            if id(value) in ancestors:
                raise DocumentTooLarge("document contains itself (recursive YAML alias)")
            inner = ancestors | {id(value)}
            if isinstance(value, Mapping):
                copy_map: dict[str, Any] = {}
                target[slot] = copy_map
                for key, item in value.items():
                    text = key_text(key)
                    copy_map[text] = None
                    stack.append((item, copy_map, text, depth + 1, inner))
            elif isinstance(value, set | frozenset):
                target[slot] = {key_text(key): None for key in value}
            else:
                copy_list: list[Any] = [None] * len(value)
                target[slot] = copy_list
                for index, item in enumerate(value):
                    stack.append((item, copy_list, index, depth + 1, inner))
        else:
            target[slot] = _scalar(value)
    return root[0]


# ---------------------------------------------------------------------------------------------
# Validation


def identity(document: object) -> tuple[str, str]:
    """(kind, name) of a raw document, as far as it can be read; name falls back to generateName."""
    if not isinstance(document, Mapping):
        return "", ""
    kind = document.get("kind")
    metadata = document.get("metadata")
    name: object = None
    if isinstance(metadata, Mapping):
        name = metadata.get("name") or metadata.get("generateName")
    return (kind if isinstance(kind, str) else ""), (name if isinstance(name, str) else "")


def _step(current: object, part: str | int) -> tuple[bool, object]:
    """(True, child) if ``part`` is a key/index present in ``current``."""
    if isinstance(current, Mapping) and isinstance(part, str) and part in current:
        return True, current[part]
    if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
        return True, current[part]
    return False, None


def _clean_location(document: object, loc: tuple[str | int, ...], error_type: str) -> FieldPath:
    """Drop pydantic's union/validator tags from an error location, keeping real keys/indexes."""
    path: list[str | int] = []
    current: object = document
    for position, part in enumerate(loc):
        found, child = _step(current, part)
        if found:
            current = child
            path.append(part)
        elif (
            position == len(loc) - 1
            and error_type == "missing"
            and isinstance(current, Mapping)
            and isinstance(part, str)
        ):
            path.append(part)  # the missing field itself
        # anything else is a tag such as 'str', 'list[str]', 'function-after[...]' or a class name
    return tuple(path)


def _validation_problems(document: object, error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[FieldPath, str]] = set()
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        path = _clean_location(document, tuple(item["loc"]), item["type"])
        message = "required field is missing" if item["type"] == "missing" else str(item["msg"])
        if (path, message) not in seen:
            seen.add((path, message))
            problems.append(Problem(path, message))
    return problems


def _identity_problems(document: Mapping[str, Any]) -> list[Problem]:
    metadata = document.get("metadata")
    if metadata is None or (isinstance(metadata, Mapping) and not metadata):
        return [Problem(("metadata",), "required: metadata.name (or metadata.generateName)")]
    if isinstance(metadata, Mapping) and not metadata.get("name") and not metadata.get("generateName"):
        return [Problem(("metadata", "name"), "required (or metadata.generateName)")]
    return []


def validate_document(document: object) -> DocumentResult:
    """Validate one decoded document; never raises (problems are returned)."""
    result = DocumentResult()
    try:
        document = normalize_document(document)
    except DocumentTooLarge as exc:
        result.kind, result.name = identity(document) if isinstance(document, Mapping) else ("", "")
        result.problems.append(Problem((), str(exc)))
        return result
    result.kind, result.name = identity(document)
    if not isinstance(document, dict):
        result.problems.append(Problem((), f"a manifest must be a mapping, not {_type_name(document)}"))
        return result
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if api_version in (None, "") and kind in (None, ""):
        result.problems.append(Problem((), "not a Kubernetes manifest: apiVersion and kind are missing"))
        return result
    for key, value in (("apiVersion", api_version), ("kind", kind)):
        if value is None or value == "":
            result.problems.append(Problem((key,), "required field is missing"))
        elif not isinstance(value, str):
            result.problems.append(Problem((key,), f"must be a string, not {_type_name(value)}"))
    if result.problems:
        return result
    assert isinstance(api_version, str) and isinstance(kind, str)
    model = model_for(api_version, kind)
    if model is None:
        expected_group = _GROUP_OF_KIND.get(kind)
        if expected_group is not None and _api_group(api_version) == expected_group:
            expected = next(v for v, k in KINDS if k == kind)
            result.problems.append(Problem(("apiVersion",), f"{kind} must be {expected}, not {api_version}"))
        else:
            result.ignored = True
        return result
    result.problems.extend(_identity_problems(document))
    try:
        manifest = model.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        result.problems.extend(_validation_problems(document, exc))
        return result
    try:
        findings = manifest.check()
    except Exception as exc:  # noqa: BLE001 - a bug in a model's check(): report it, never crash the loader
        result.problems.append(
            Problem((), f"internal error while checking {kind}/{result.name}: {type(exc).__name__}: {exc}")
        )
        return result
    for finding in findings:
        result.problems.append(Problem(split_path(finding.path), finding.message, finding.severity))
    if not result.has_errors:
        result.manifest = manifest
    return result


def _type_name(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:80]


def parse_manifest(obj: dict[str, Any]) -> Manifest:
    """Validate one object (e.g. posted as JSON); raise :class:`InvalidError` naming every problem.

    Warnings are dropped; kinds eventbridge does not read are an error here."""
    result = validate_document(obj)
    label = f"{result.kind or '?'}/{result.name or '?'}"
    if result.ignored:
        raise InvalidError(
            f"{label}: kind {result.kind} ({obj.get('apiVersion')}) is not used by eventbridge; "
            f"expected one of: {', '.join(sorted({k for _, k in KINDS}))}"
        )
    errors = [p for p in result.problems if p.severity == "error"]
    if errors or result.manifest is None:
        details = "; ".join(f"{p.dotted}: {p.message}" if p.path else p.message for p in errors)
        raise InvalidError(f"{label}: {details or 'invalid manifest'}")
    return result.manifest
