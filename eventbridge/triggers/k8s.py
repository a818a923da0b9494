"""The ``k8s`` trigger: create, update, patch or delete the ``source`` object (Argo's
StandardK8STrigger).

``parameters`` apply to the loaded source (``resource``, ``inline``, ``file``, ``url``,
``configmap``); the namespace is the object's, or the sensor's (cluster-scoped kinds have none).
``create`` is effectively once in both modes: labels ``events.argoproj.io/sensor``, ``/trigger``,
``/action-timestamp`` are added, ``generateName`` becomes ``generateName`` + a hash of the firing key,
and the key goes in the ``eventbridge.io/trigger-key`` annotation, so a replayed firing finds the
object it created instead of creating a second one.

**Cluster mode** (the services carry an available :class:`~eventbridge.store.objects.Objects`):
objects of any kind the API server serves (ConfigMap, Job, Deployment, custom resources...), with
Argo's semantics:

* ``update``: reads the live object (creates the source object when there is none, as Argo),
  deep-merges the source into it (Argo's mergo override: maps merge, a non-empty value replaces,
  an empty one does not) and writes it with the live resourceVersion (a conflict is retried).
  ``liveObject: true`` starts from the live object before the parameters are applied.
* ``patch``: ``patchStrategy`` ``application/merge-patch+json`` (default),
  ``application/strategic-merge-patch+json`` (built-in kinds) or ``application/apply-patch+yaml``
  (server-side apply); the object is created when missing, as Argo. ``application/json-patch+json``
  is refused: a trigger's source is an object, not a list of operations (Argo's request fails too).
* ``delete``: an object that is already gone counts as deleted (replays are safe).

**Embedded mode**: only the argoproj.io kinds of the store (:data:`STORED_KINDS`); any other kind
fails with a PermanentError that says so. ``update`` replaces the live object's spec (and merges
labels/annotations) and fails when it does not exist; ``patch`` applies the source as a JSON merge
patch (``strategic`` too, lists replaced); json-patch is not supported.

``policy.k8s`` labels are waited for after create/update/patch (see :mod:`._policy`).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from eventbridge.errors import (
    AlreadyExistsError,
    ConflictError,
    EventBridgeError,
    InvalidError,
    NotFoundError,
    PermanentError,
    TemporaryError,
)
from eventbridge.models.sensor import K8SResourcePolicy
from eventbridge.store.objects import Objects
from eventbridge.triggers._policy import apply_k8s_policy, backoff_delays
from eventbridge.triggers._source import load_source
from eventbridge.triggers.argo_workflow import (
    ANNOTATION_EVENT_IDS,
    ANNOTATION_KEY,
    LABEL_ACTION_TIMESTAMP,
    LABEL_SENSOR,
    LABEL_TRIGGER,
    workflow_name,
)
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome

STORED_KINDS = ("Workflow", "WorkflowTemplate", "ClusterWorkflowTemplate", "CronWorkflow")
OPERATIONS = ("create", "update", "patch", "delete")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
CLUSTER_PATCH_STRATEGIES = (MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _empty(value: Any) -> bool:
    """Go's zero value test as mergo applies it to decoded JSON."""
    return value is None or value is False or value == 0 or (isinstance(value, (str, list, dict)) and not value)


def override_merge(target: Any, source: Any) -> Any:
    """Argo's ``mergo.Merge(live, source, mergo.WithOverride)`` over decoded JSON: maps merge
    recursively, a non-empty source value replaces the target's (lists as a whole), an empty one only
    fills a key the target lacks or has empty."""
    if not isinstance(target, dict) or not isinstance(source, dict):
        return source if not _empty(source) or _empty(target) else target
    result = dict(target)
    for key, value in source.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = override_merge(current, value)
        elif not _empty(value) or key not in result or _empty(current):
            result[key] = value
    return result


def _labels_met(obj: dict[str, Any], wanted: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


@TRIGGERS.register("k8s")
class K8sTrigger(TriggerAction):
    key = "k8s"

    @property
    def _objects(self) -> Objects | None:
        """The any-kind client in cluster mode, else None."""
        objects = self.services.objects
        return objects if objects is not None and objects.available else None

    async def _resource(self, call: TriggerCall) -> tuple[str, dict[str, Any]]:
        spec = call.template.k8s
        what = f"trigger {call.template.name}"
        if spec is None:
            raise PermanentError(f"{what}: k8s is not set")
        operation = spec.operation or "create"
        if operation not in OPERATIONS:
            raise PermanentError(f"{what}: unknown k8s operation {operation!r}: use create, update, patch or delete")
        source = await load_source(
            spec.source, namespace=self.sensor.namespace, references=self.services.references, what=what
        )
        objects = self._objects
        if objects is not None and spec.live_object and operation == "update":
            source = await self._live(objects, source, what)
        resource = call.apply_params(source, spec.parameters)
        if not isinstance(resource, dict):
            raise PermanentError(f"{what}: the parameterized source is not an object")
        kind = resource.get("kind")
        api_version = str(resource.get("apiVersion") or "")
        if objects is not None:
            if not kind or not api_version:
                raise PermanentError(f"{what}: the object needs apiVersion and kind")
        elif kind not in STORED_KINDS or (api_version and not api_version.startswith("argoproj.io/")):
            raise PermanentError(
                f"{what}: {api_version or '?'} {kind or '?'} objects cannot be managed here: the embedded store "
                f"holds only argoproj.io {', '.join(STORED_KINDS)} (run in cluster mode for other kinds)"
            )
        metadata = resource.get("metadata")
        resource["metadata"] = dict(metadata) if isinstance(metadata, dict) else {}
        resource["metadata"]["namespace"] = str(resource["metadata"].get("namespace") or self.sensor.namespace)
        resource.setdefault("apiVersion", "argoproj.io/v1alpha1")
        return operation, resource

    async def _live(self, objects: Objects, source: dict[str, Any], what: str) -> dict[str, Any]:
        """``liveObject``: the live object named by the source (before parameters, as Argo)."""
        metadata = source.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name = str(metadata.get("name") or "")
        if not name:
            raise PermanentError(f"{what}: liveObject needs metadata.name in the source")
        namespace = str(metadata.get("namespace") or self.sensor.namespace)
        try:
            return await objects.get(
                str(source.get("apiVersion") or ""), str(source.get("kind") or ""), name, namespace
            )
        except NotFoundError as exc:
            raise PermanentError(f"{what}: liveObject: {exc}") from None
        except (InvalidError, AlreadyExistsError, ConflictError) as exc:
            raise PermanentError(f"{what}: liveObject: {exc}") from None

    def _stamp(self, call: TriggerCall, resource: dict[str, Any]) -> dict[str, Any]:
        metadata = resource["metadata"]
        key = call.key
        metadata["name"] = workflow_name(metadata, key, call.template.name)
        metadata.pop("generateName", None)
        labels = dict(metadata.get("labels") or {})
        labels.update({
            LABEL_SENSOR: self.sensor.name,
            LABEL_TRIGGER: call.template.name,
            LABEL_ACTION_TIMESTAMP: str(int(time.time() * 1000)),
        })  # fmt: skip
        annotations = dict(metadata.get("annotations") or {})
        annotations[ANNOTATION_KEY] = key
        annotations[ANNOTATION_EVENT_IDS] = json.dumps(call.event_ids, separators=(",", ":"))
        metadata["labels"], metadata["annotations"] = labels, annotations
        return resource

    async def preview(self, call: TriggerCall) -> Any:
        operation, resource = await self._resource(call)
        if operation == "create":
            resource = self._stamp(call, resource)
        return {"operation": operation, "object": resource}

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        operation, resource = await self._resource(call)
        objects = self._objects
        if objects is not None:
            return await self._execute_any_kind(objects, call, operation, resource)
        spec = call.template.k8s
        assert spec is not None
        store = self.services.store
        metadata = resource["metadata"]
        kind, namespace = str(resource["kind"]), metadata["namespace"]
        if operation == "create":
            resource = self._stamp(call, resource)
            name = metadata["name"]
            described = f"{kind} {namespace}/{name}"
            try:
                await store.create(resource)
            except AlreadyExistsError:
                existing = await store.get(kind, namespace, name)
                if ((existing.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_KEY) == call.key:
                    return TriggerOutcome(f"{described} already exists for these events (replay)", (described,), True)
                raise PermanentError(f"{described} already exists and was not created by this firing") from None
            outcome = TriggerOutcome(f"created {described}", (described,))
        else:
            name = metadata.get("name")
            if not name:
                raise PermanentError(f"trigger {call.template.name}: operation {operation} needs metadata.name")
            described = f"{kind} {namespace}/{name}"
            if operation == "delete":
                try:
                    await store.delete(kind, namespace, name)
                except NotFoundError:
                    return TriggerOutcome(f"{described} was already deleted", (described,))
                return TriggerOutcome(f"deleted {described}", (described,))
            strategy = spec.patch_strategy or MERGE_PATCH
            if operation == "patch" and strategy not in (MERGE_PATCH, STRATEGIC_PATCH):
                raise PermanentError(f"trigger {call.template.name}: patchStrategy {strategy!r} is not supported")
            try:
                live = await store.get(kind, namespace, name)
            except NotFoundError:
                raise PermanentError(f"trigger {call.template.name}: {described} does not exist") from None
            if operation == "patch":
                updated = merge_patch(live, {k: v for k, v in resource.items() if k not in ("kind", "apiVersion")})
            else:
                updated = dict(live)
                for key, value in resource.items():
                    if key not in ("metadata", "status"):
                        updated[key] = value
                live_meta = dict(live.get("metadata") or {})
                for field in ("labels", "annotations"):
                    if metadata.get(field):
                        live_meta[field] = {**(live_meta.get(field) or {}), **metadata[field]}
                updated["metadata"] = live_meta
            updated["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
            try:
                await store.update(updated)
            except ConflictError:
                raise TemporaryError(f"{described} changed while it was being {operation}d; retrying", 0.1) from None
            outcome = TriggerOutcome(f"{operation}d {described}", (described,))
        policy = call.trigger.policy.k8s if call.trigger.policy is not None else None
        if policy is not None and not outcome.replayed:
            note = await apply_k8s_policy(store, kind, namespace, str(metadata["name"]), policy)
            if note:
                outcome = TriggerOutcome(f"{outcome.summary}; {note}", outcome.objects)
        return outcome

    # cluster mode ----------------------------------------------------------------------------

    async def _execute_any_kind(
        self, objects: Objects, call: TriggerCall, operation: str, resource: dict[str, Any]
    ) -> TriggerOutcome:
        """create/update/patch/delete of any kind through the Kubernetes API (see the module docstring)."""
        try:
            outcome, live = await self._operate(objects, call, operation, resource)
        except (InvalidError, AlreadyExistsError) as exc:
            raise PermanentError(f"trigger {call.template.name}: {exc}") from None
        except NotFoundError as exc:
            raise PermanentError(f"trigger {call.template.name}: {exc}") from None
        except ConflictError as exc:
            raise TemporaryError(f"trigger {call.template.name}: {exc}; retrying", 0.1) from None
        policy = call.trigger.policy.k8s if call.trigger.policy is not None else None
        if policy is not None and live is not None and not outcome.replayed:
            note = await self._wait_for_labels(objects, live, policy)
            if note:
                outcome = TriggerOutcome(f"{outcome.summary}; {note}", outcome.objects)
        return outcome

    async def _operate(
        self, objects: Objects, call: TriggerCall, operation: str, resource: dict[str, Any]
    ) -> tuple[TriggerOutcome, dict[str, Any] | None]:
        spec = call.template.k8s
        assert spec is not None
        api_version, kind = str(resource["apiVersion"]), str(resource["kind"])
        info = await objects.resolve(api_version, kind)
        metadata = resource["metadata"]
        if not info.namespaced:
            metadata.pop("namespace", None)
        namespace = metadata.get("namespace")
        if operation == "create":
            resource = self._stamp(call, resource)
            described = info.describe(namespace, metadata["name"])
            try:
                created = await objects.create(resource)
            except AlreadyExistsError:
                existing = await objects.get(api_version, kind, metadata["name"], namespace)
                if ((existing.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_KEY) == call.key:
                    outcome = TriggerOutcome(
                        f"{described} already exists for these events (replay)", (described,), True
                    )
                    return outcome, existing
                raise PermanentError(f"{described} already exists and was not created by this firing") from None
            return TriggerOutcome(f"created {described}", (described,)), created
        name = str(metadata.get("name") or "")
        if not name:
            raise PermanentError(f"trigger {call.template.name}: operation {operation} needs metadata.name")
        described = info.describe(namespace, name)
        strategy = spec.patch_strategy or MERGE_PATCH
        if operation == "patch" and strategy not in CLUSTER_PATCH_STRATEGIES:
            hint = " (a trigger's source is an object, not a list of operations)" if strategy == JSON_PATCH else ""
            raise PermanentError(
                f"trigger {call.template.name}: patchStrategy {strategy!r} is not supported{hint}; "
                f"use one of {', '.join(CLUSTER_PATCH_STRATEGIES)}"
            )
        try:
            live = await objects.get(api_version, kind, name, namespace)
        except NotFoundError:
            if operation == "delete":
                return TriggerOutcome(f"{described} was already deleted", (described,)), None
            created = await objects.create(resource)  # update and patch create a missing object, as Argo
            return TriggerOutcome(f"created {described} (it did not exist)", (described,)), created
        if operation == "delete":
            try:
                await objects.delete(api_version, kind, name, namespace)
            except NotFoundError:
                return TriggerOutcome(f"{described} was already deleted", (described,)), None
            return TriggerOutcome(f"deleted {described}", (described,)), None
        if operation == "update":
            merged = override_merge(live, resource)
            live_version = (live.get("metadata") or {}).get("resourceVersion")
            merged["metadata"]["resourceVersion"] = resource["metadata"].get("resourceVersion") or live_version
            changed = await objects.replace(merged)
            return TriggerOutcome(f"updated {described}", (described,)), changed
        patched = await objects.patch(api_version, kind, name, resource, namespace=namespace, strategy=strategy)
        return TriggerOutcome(f"patched {described}", (described,)), patched

    async def _wait_for_labels(self, objects: Objects, obj: dict[str, Any], policy: K8SResourcePolicy) -> str | None:
        """``policy.k8s`` for any kind: as :func:`._policy.apply_k8s_policy`, reading through ``objects``."""
        if not policy.labels:
            return None
        metadata = obj.get("metadata") or {}
        name, namespace = str(metadata.get("name") or ""), metadata.get("namespace")
        api_version, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        current = obj
        for delay in backoff_delays(policy.backoff):
            if _labels_met(current, policy.labels):
                return None
            await asyncio.sleep(delay)
            try:
                current = await objects.get(api_version, kind, name, namespace)
            except EventBridgeError:
                current = {}
        if _labels_met(current, policy.labels):
            return None
        labels = (current.get("metadata") or {}).get("labels") or {}
        where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
        message = f"{where} did not get labels {policy.labels} in time (has {labels})"
        if policy.error_on_backoff_timeout:
            raise PermanentError(f"policy: {message}")
        return f"policy: {message}; errorOnBackoffTimeout is false, so the trigger counts as successful"
