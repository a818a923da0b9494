"""The ``resource`` template (cluster mode): act on one Kubernetes object, wait for its conditions,
read output parameters from it. Argo runs ``kubectl`` in a Pod for this; here the controller does it
through the API (an :class:`ObjectClient`, in practice :class:`eventbridge.store.kube_objects.KubeObjects`).

Semantics (Argo's ``argoexec resource``, differences marked):

* ``manifest`` (already substituted) holds one YAML or JSON document. ``action``:
  ``get``; ``create`` (an existing object fails the step, except one this same node created
  before a controller restart, recognised by the ``eventbridge.io/resource-node`` annotation);
  ``apply`` (*difference*: server-side apply with forced conflicts, not kubectl's client-side
  three-way merge); ``replace``; ``delete`` (a missing object is fine, as ``--ignore-not-found``;
  conditions and outputs are refused with it, as Argo); ``patch`` with ``mergeStrategy``
  ``strategic`` (default), ``merge`` or ``json`` (the manifest is then the list of operations and
  ``flags`` name the object: ``[configmap, my-cm]`` or ``[configmap/my-cm]``, ``-n NS``). Only
  those flags are understood; ``manifestFrom`` (an artifact) is not supported.
* ``setOwnerReference: true`` adds a controller owner reference to the Workflow.
* ``successCondition`` / ``failureCondition``: Kubernetes label-selector syntax whose keys are
  gjson paths into the object (``status.succeeded > 0``, ``status.phase in (Failed, Error)``,
  ``metadata.annotations.done``, ``!status.error``). The object is read every ``poll_interval``
  seconds until the failure condition holds (any requirement: phase Failed), or every success
  requirement holds (Succeeded; with no success condition, the first read that does not fail).
  ``>``/``<`` compare integers (a value that is not one does not match). An object deleted while
  waiting fails the step; API errors while waiting are retried.
* ``outputs.parameters[].valueFrom``: ``jsonPath`` (kubectl's JSONPath: ``{.metadata.name}``,
  ``{.items[0].x}``, ``{.a['b.c']}``, ``{.list[*].name}``, literal text around; strings print as
  they are, other values as compact JSON; a missing path fails the step unless ``default`` is set)
  or ``jqFilter`` (jq; each result on its own line, strings raw, as Argo).
* The outcome names the object as Argo's executor logs it: ``<kind lower case>.<group>/<name>``.

Phases: Error for a template that cannot run (bad manifest, condition syntax, unsupported flag),
Failed for what the API server refused, a failure condition, or a vanished object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import jq  # type: ignore[import-untyped,import-not-found,unused-ignore]
import yaml

from eventbridge.errors import (
    AlreadyExistsError,
    EventBridgeError,
    ExprError,
    InvalidError,
    NotFoundError,
    TemporaryError,
)
from eventbridge.expr.paths import format_number, go_string, lookup
from eventbridge.models.workflow import Parameter, ResourceTemplate

log = logging.getLogger(__name__)

ResourcePhase = Literal["Succeeded", "Failed", "Error"]
ACTIONS = ("get", "create", "apply", "delete", "replace", "patch")
MERGE_STRATEGIES = ("strategic", "merge", "json")
ANNOTATION_NODE = "eventbridge.io/resource-node"
DEFAULT_POLL_INTERVAL = 1.0


class TypeInfo(Protocol):
    """What the runner needs to know of a resolved kubectl type name."""

    @property
    def api_version(self) -> str: ...

    @property
    def kind(self) -> str: ...


class ObjectClient(Protocol):
    """The part of :class:`eventbridge.store.objects.Objects` the runner uses."""

    async def resolve_type(self, type_name: str) -> TypeInfo: ...

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    async def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]: ...

    async def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        *,
        namespace: str | None = None,
        strategy: str = "merge",
    ) -> dict[str, Any]: ...

    async def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, propagation: str | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ResourceOutcome:
    """How a resource node ended: ``phase``, ``message``, output ``parameters`` (name -> value, in
    the template's order), and the object as Argo names it (``kind.group/name``) with its namespace."""

    phase: ResourcePhase
    message: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    resource_name: str = ""
    namespace: str = ""
    object: dict[str, Any] | None = None

    def output_parameters(self, declared: Sequence[Parameter] | None) -> list[dict[str, Any]]:
        """The node's ``outputs.parameters`` in Argo's shape (``name``, ``value``, ``valueFrom``)."""
        entries: list[dict[str, Any]] = []
        for param in declared or []:
            if param.name not in self.parameters:
                continue
            entry: dict[str, Any] = {"name": param.name, "value": self.parameters[param.name]}
            if param.value_from is not None:
                source = {k: v for k, v in (("jsonPath", param.value_from.json_path),
                                            ("jqFilter", param.value_from.jq_filter)) if v}  # fmt: skip
                if source:
                    entry["valueFrom"] = source
            if param.global_name:
                entry["globalName"] = param.global_name
            entries.append(entry)
        return entries


class _StepError(Exception):
    """Ends the step with ``phase`` and the message."""

    def __init__(self, phase: ResourcePhase, message: str) -> None:
        super().__init__(message)
        self.phase = phase


# ---------------------------------------------------------------------------------------------
# conditions: Kubernetes label-selector syntax over gjson paths


_SPECIAL = "=!(),<>"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement of a label selector; ``key`` is a gjson path into the object."""

    key: str
    operator: Literal["exists", "!", "=", "==", "!=", "in", "notin", "gt", "lt"]
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"

    def matches(self, obj: Any) -> bool:
        """Kubernetes' Requirement.Matches with gjson lookups (Argo's gjsonLabels)."""
        try:
            found, value = lookup(obj, self.key)
        except ExprError:
            found, value = False, None
        text = go_string(value) if found else ""
        if self.operator == "exists":
            return found
        if self.operator == "!":
            return not found
        if self.operator in ("=", "==", "in"):
            return found and text in self.values
        if self.operator in ("!=", "notin"):
            return not found or text not in self.values
        if not found or not _INTEGER.fullmatch(text):
            return False
        have, want = int(text), int(self.values[0])
        return have > want if self.operator == "gt" else have < want


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _tokens(text: str) -> list[str]:
    """The Kubernetes selector lexer: identifiers, operators and punctuation, whitespace dropped."""
    tokens: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char in _SPECIAL:
            pair = text[position : position + 2]
            if pair in ("==", "!="):
                tokens.append(pair)
                position += 2
            else:
                tokens.append(char)
                position += 1
        else:
            end = position
            while end < len(text) and not text[end].isspace() and text[end] not in _SPECIAL:
                end += 1
            tokens.append(text[position:end])
            position = end
    return tokens


def parse_selector(text: str) -> list[Requirement]:
    """Requirements of a Kubernetes label selector string; InvalidError with the reason when malformed."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    index = 0

    def error(reason: str) -> InvalidError:
        return InvalidError(f"condition {text!r} failed to parse: {reason}")

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise error("unexpected end")
        index += 1
        return tokens[index - 1]

    def peek() -> str | None:
        return tokens[index] if index < len(tokens) else None

    while index < len(tokens):
        token = take()
        if token == "!":  # noqa: S105 - an operator, not a password
            key = take()
            if key in _SPECIAL or key in ("==", "!="):
                raise error(f"expected a key after '!', found {key!r}")
            requirements.append(Requirement(key, "!"))
        elif token in _SPECIAL or token in ("==", "!="):
            raise error(f"expected a key, found {token!r}")
        else:
            key, following = token, peek()
            if following is None or following == ",":
                requirements.append(Requirement(key, "exists"))
            elif following in ("=", "==", "!="):
                take()
                value = peek()
                if value is None or value == ",":
                    requirements.append(Requirement(key, following, ("",)))  # type: ignore[arg-type]
                elif value in _SPECIAL or value in ("==", "!="):
                    raise error(f"expected a value after {following!r}, found {value!r}")
                else:
                    requirements.append(Requirement(key, following, (take(),)))  # type: ignore[arg-type]
            elif following in (">", "<"):
                take()
                value = take()
                if not _INTEGER.fullmatch(value):
                    raise error(f"for '>' and '<' the value must be an integer, not {value!r}")
                requirements.append(Requirement(key, "gt" if following == ">" else "lt", (value,)))
            elif following in ("in", "notin"):
                take()
                if take() != "(":
                    raise error(f"expected '(' after {following!r}")
                values: list[str] = []
                expect_value = True
                while True:
                    item = take()
                    if item == ")":
                        if expect_value and values:
                            values.append("")
                        break
                    if item == ",":
                        if expect_value:
                            values.append("")
                        expect_value = True
                        continue
                    if not expect_value or item in _SPECIAL:
                        raise error(f"unexpected {item!r} in the value list")
                    values.append(item)
                    expect_value = False
                requirements.append(Requirement(key, following, tuple(values)))  # type: ignore[arg-type]
            else:
                raise error(f"expected an operator after {key!r}, found {following!r}")
        if index < len(tokens):
            if take() != ",":
                raise error("requirements must be separated by ','")
            if index >= len(tokens):
                raise error("a requirement is missing after ','")
    return requirements


# ---------------------------------------------------------------------------------------------
# kubectl JSONPath (the subset output parameters use)

_FIELD = re.compile(r"\.([^.\[\]]+)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(-?\d+|\*)\s*\]|\.\*|\.\.")


def _json_path_values(data: Any, expression: str) -> list[Any]:
    expression = expression.strip()
    if expression.startswith("$"):
        expression = expression[1:]
    values = [data]
    position = 0
    while position < len(expression):
        match = _FIELD.match(expression, position)
        if match is None:
            raise InvalidError(f"jsonPath {{{expression}}}: unsupported syntax at {expression[position:]!r}")
        text = match.group(0)
        if text == "..":
            raise InvalidError(f"jsonPath {{{expression}}}: recursive descent (..) is not supported")
        name = match.group(1) or match.group(2) or match.group(3)
        index = match.group(4)
        following: list[Any] = []
        for value in values:
            if text == ".*" or index == "*":
                following += list(value.values()) if isinstance(value, dict) else list(value) if isinstance(
                    value, list) else []  # fmt: skip
            elif index is not None:
                if isinstance(value, list) and -len(value) <= int(index) < len(value):
                    following.append(value[int(index)])
            elif isinstance(value, dict) and name in value:
                following.append(value[name])
        if not following:
            raise InvalidError(f"jsonPath {{{expression}}}: {text} is not found")
        values = following
        position = match.end()
    return values


def _jsonpath_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_path(data: Any, template: str) -> str:
    """kubectl ``-o jsonpath=TEMPLATE`` over ``data``: ``{...}`` expressions within literal text."""
    out: list[str] = []
    position = 0
    while position < len(template):
        start = template.find("{", position)
        if start < 0:
            out.append(template[position:])
            break
        out.append(template[position:start])
        end = template.find("}", start)
        if end < 0:
            raise InvalidError(f"jsonPath {template!r}: unclosed '{{'")
        inner = template[start + 1 : end].strip()
        if inner.startswith(("range", "end")) or "?(" in inner:
            raise InvalidError(f"jsonPath {template!r}: range and filter expressions are not supported")
        out.append(" ".join(_jsonpath_text(v) for v in _json_path_values(data, inner)) if inner else "")
        position = end + 1
    return "".join(out)


def jq_filter(data: Any, program: str) -> str:
    """Argo's jqFilter output: each result on its own line (strings raw, others JSON), trimmed."""
    try:
        results = jq.compile(program).input_value(data).all()
    except ValueError as exc:
        raise InvalidError(f"jqFilter {program!r}: {exc}") from None
    lines = [r if isinstance(r, str) else json.dumps(r, separators=(",", ":"), ensure_ascii=False) for r in results]
    return "\n".join(lines).strip()


# ---------------------------------------------------------------------------------------------
# the runner


def full_name(obj: dict[str, Any]) -> str:
    """``<kind lower case>.<group>/<name>`` as Argo's executor names the object (``configmap./x``)."""
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    name = str((obj.get("metadata") or {}).get("name") or "")
    return f"{str(obj.get('kind') or '').lower()}.{group}/{name}"


def _parse_manifest(text: str) -> Any:
    try:
        documents = [d for d in yaml.safe_load_all(text or "") if d is not None]
    except yaml.YAMLError as exc:
        raise _StepError("Error", f"the manifest is not YAML or JSON: {exc}") from None
    if len(documents) > 1:
        raise _StepError("Error", "the manifest must hold one object (found several documents)")
    return documents[0] if documents else None


@dataclass(frozen=True, slots=True)
class _Target:
    api_version: str
    kind: str
    name: str
    namespace: str


class ResourceRunner:
    """Runs ``resource`` template nodes through ``objects``; see the module docstring."""

    def __init__(self, objects: ObjectClient, *, poll_interval: float = DEFAULT_POLL_INTERVAL) -> None:
        self.objects = objects
        self.poll_interval = poll_interval

    async def run(
        self,
        resource: ResourceTemplate,
        outputs: Sequence[Parameter] | None,
        *,
        namespace: str,
        workflow: dict[str, Any] | None = None,
        node_id: str = "",
    ) -> ResourceOutcome:
        """Run one node: ``resource`` with its manifest already substituted, the template's declared
        output parameters, the workflow's namespace (default for the object), the Workflow object
        (for ``setOwnerReference`` and the node annotation) and the node's id."""
        try:
            return await self._run(resource, list(outputs or []), namespace, workflow or {}, node_id)
        except _StepError as exc:
            return ResourceOutcome(exc.phase, str(exc))

    async def _run(
        self,
        resource: ResourceTemplate,
        outputs: list[Parameter],
        namespace: str,
        workflow: dict[str, Any],
        node_id: str,
    ) -> ResourceOutcome:
        action = resource.action
        if action not in ACTIONS:
            raise _StepError("Error", f"resource action {action!r} is not one of {', '.join(ACTIONS)}")
        if resource.manifest_from:
            raise _StepError("Error", "resource.manifestFrom (a manifest from an artifact) is not supported yet")
        try:
            success = parse_selector(resource.success_condition) if resource.success_condition else []
            failure = parse_selector(resource.failure_condition) if resource.failure_condition else []
        except InvalidError as exc:
            raise _StepError("Error", str(exc)) from None
        if action == "delete" and (success or failure or outputs):
            raise _StepError(
                "Error", "successCondition, failureCondition and outputs are not supported for delete action"
            )
        document = _parse_manifest(resource.manifest or "")
        flag_target, flag_namespace = await self._flags(resource.flags or [])
        if document is None and flag_target is None:
            raise _StepError("Error", "Must provide at least one of flags or manifest.")
        strategy = resource.merge_strategy or "strategic"
        if action == "patch" and strategy not in MERGE_STRATEGIES:
            raise _StepError("Error", f"mergeStrategy {strategy!r} is not one of {', '.join(MERGE_STRATEGIES)}")
        if document is not None and not (action == "patch" and strategy == "json"):
            if not isinstance(document, dict):
                raise _StepError("Error", "the manifest is not an object")
            if resource.set_owner_reference:
                _add_owner(document, workflow)
        target = self._target(document, flag_target, flag_namespace, namespace, action, strategy)
        obj = await self._act(action, strategy, document, target, workflow, node_id)
        if action == "delete":
            return ResourceOutcome("Succeeded", "", {}, full_name(_described(target)), target.namespace)
        live_target = _Target(
            str(obj.get("apiVersion") or target.api_version),
            str(obj.get("kind") or target.kind),
            str((obj.get("metadata") or {}).get("name") or target.name),
            str((obj.get("metadata") or {}).get("namespace") or ""),
        )
        if success or failure:
            obj = await self._wait(live_target, obj, success, failure)
        elif outputs:
            obj = await self._read(live_target)
        parameters = self._outputs(obj, outputs)
        return ResourceOutcome("Succeeded", "", parameters, full_name(obj), live_target.namespace, obj)

    async def _flags(self, flags: list[str]) -> tuple[tuple[str, str, str] | None, str | None]:
        """``((api_version, kind, name), namespace)`` named by kubectl-style flags (or Nones)."""
        positional: list[str] = []
        namespace: str | None = None
        index = 0
        while index < len(flags):
            flag = flags[index]
            if flag in ("-n", "--namespace"):
                if index + 1 >= len(flags):
                    raise _StepError("Error", f"flag {flag} needs a value")
                namespace = flags[index + 1]
                index += 2
                continue
            if flag.startswith("--namespace="):
                namespace = flag.partition("=")[2]
            elif flag.startswith("-"):
                raise _StepError("Error", f"resource flag {flag!r} is not supported (only TYPE NAME and -n NAMESPACE)")
            else:
                positional.append(flag)
            index += 1
        if not positional:
            return None, namespace
        if len(positional) == 1 and "/" in positional[0]:
            type_name, _, name = positional[0].partition("/")
        elif len(positional) == 2:
            type_name, name = positional
        else:
            raise _StepError("Error", f"resource flags {positional} must name one object: TYPE NAME or TYPE/NAME")
        try:
            info = await self.objects.resolve_type(type_name)
        except EventBridgeError as exc:
            raise _StepError("Failed", str(exc)) from None
        return (info.api_version, info.kind, name), namespace

    @staticmethod
    def _target(
        document: Any,
        flag_target: tuple[str, str, str] | None,
        flag_namespace: str | None,
        namespace: str,
        action: str,
        strategy: str,
    ) -> _Target:
        if flag_target is not None and (not isinstance(document, dict) or not document.get("kind")):
            api_version, kind, name = flag_target
            return _Target(api_version, kind, name, flag_namespace or namespace)
        if action == "patch" and strategy == "json":
            raise _StepError("Error", "a json patch needs flags naming the object (for example [configmap, my-cm])")
        assert isinstance(document, dict)
        metadata = document.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        api_version, kind = str(document.get("apiVersion") or ""), str(document.get("kind") or "")
        name = str(metadata.get("name") or "")
        if not api_version or not kind:
            raise _StepError("Error", "the manifest needs apiVersion and kind")
        if not name and not (action == "create" and metadata.get("generateName")):
            raise _StepError(
                "Error", "Kind and name are both required but at least one of them is missing from the manifest"
            )
        ns = str(metadata.get("namespace") or flag_namespace or namespace)
        metadata["namespace"] = ns
        document["metadata"] = metadata
        return _Target(api_version, kind, name, ns)

    async def _act(
        self, action: str, strategy: str, document: Any, target: _Target, workflow: dict[str, Any], node_id: str
    ) -> dict[str, Any]:
        objects = self.objects
        try:
            if action == "get":
                return await objects.get(target.api_version, target.kind, target.name, target.namespace)
            if action == "create":
                return await self._create(document, target, workflow, node_id)
            if action == "apply":
                return await objects.apply(document)
            if action == "replace":
                return await objects.replace(document)
            if action == "delete":
                with contextlib.suppress(NotFoundError):
                    await objects.delete(target.api_version, target.kind, target.name, target.namespace)
                return {}
            body = document
            if strategy != "json" and isinstance(body, dict):
                body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
                meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in ("name", "namespace")}
                body = {**body, "metadata": meta} if meta else {k: v for k, v in body.items() if k != "metadata"}
            return await objects.patch(
                target.api_version, target.kind, target.name, body, namespace=target.namespace, strategy=strategy
            )
        except TemporaryError as exc:
            raise _StepError("Failed", f"no more retries {exc}") from None
        except EventBridgeError as exc:
            raise _StepError("Failed", str(exc)) from None

    async def _create(
        self, document: dict[str, Any], target: _Target, workflow: dict[str, Any], node_id: str
    ) -> dict[str, Any]:
        uid = str((workflow.get("metadata") or {}).get("uid") or "")
        marker = f"{uid}/{node_id}" if uid and node_id else ""
        if marker:
            document["metadata"].setdefault("annotations", {})[ANNOTATION_NODE] = marker
        try:
            return await self.objects.create(document)
        except AlreadyExistsError:
            if not marker or not target.name:
                raise
            existing = await self.objects.get(target.api_version, target.kind, target.name, target.namespace)
            if ((existing.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_NODE) != marker:
                raise
            log.info("resource node %s: %s was created by this node before; adopting it", node_id, full_name(existing))
            return existing

    async def _read(self, target: _Target) -> dict[str, Any]:
        return await self.objects.get(target.api_version, target.kind, target.name, target.namespace or None)

    async def _wait(
        self, target: _Target, obj: dict[str, Any], success: list[Requirement], failure: list[Requirement]
    ) -> dict[str, Any]:
        """Poll the object until a failure requirement or every success requirement holds."""
        current: dict[str, Any] | None = None
        while True:
            try:
                current = await self._read(target)
            except NotFoundError as exc:
                raise _StepError(
                    "Failed",
                    "The resource has been deleted while its status was still being checked. "
                    f"Will not be retried: {exc}",
                ) from None
            except TemporaryError as exc:
                log.info("resource %s: reading it failed (%s); retrying", full_name(obj), exc)
                current = None
            except EventBridgeError as exc:
                raise _StepError("Failed", str(exc)) from None
            if current is not None:
                for requirement in failure:
                    if requirement.matches(current):
                        raise _StepError("Failed", f"failure condition '{requirement}' evaluated true")
                if all(requirement.matches(current) for requirement in success):
                    return current
            await asyncio.sleep(self.poll_interval)

    @staticmethod
    def _outputs(obj: dict[str, Any], outputs: list[Parameter]) -> dict[str, str]:
        values: dict[str, str] = {}
        for param in outputs:
            source = param.value_from
            if source is None or not (source.json_path or source.jq_filter):
                continue
            try:
                if source.json_path:
                    values[param.name] = json_path(obj, source.json_path)
                else:
                    values[param.name] = jq_filter(obj, str(source.jq_filter))
            except InvalidError as exc:
                if source.default is None:
                    raise _StepError("Failed", f"output parameter {param.name!r}: {exc}") from None
                values[param.name] = str(source.default)
        return values


def _described(target: _Target) -> dict[str, Any]:
    return {"apiVersion": target.api_version, "kind": target.kind, "metadata": {"name": target.name}}


def _add_owner(document: dict[str, Any], workflow: dict[str, Any]) -> None:
    """A controller owner reference to the Workflow (Argo's NewControllerRef)."""
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        metadata = document["metadata"] = {}
    wf_meta = workflow.get("metadata") or {}
    if not wf_meta.get("uid"):
        raise _StepError("Error", "setOwnerReference needs the Workflow's uid (the Workflow is not stored yet)")
    reference = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "name": str(wf_meta.get("name") or ""),
        "uid": str(wf_meta["uid"]),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    metadata["ownerReferences"] = [*(metadata.get("ownerReferences") or []), reference]


__all__ = [
    "ACTIONS",
    "ObjectClient",
    "Requirement",
    "ResourceOutcome",
    "ResourceRunner",
    "full_name",
    "jq_filter",
    "json_path",
    "parse_selector",
]
