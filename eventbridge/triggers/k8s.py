"""The ``k8s`` trigger: create, update, patch or delete the ``source`` object (Argo's
StandardK8STrigger), here through the Store.

Embedded mode stores only the argoproj.io workflow kinds (:data:`STORED_KINDS`); any other kind
fails with a PermanentError that says so (cluster mode, with a Kubernetes Store, can take any
kind the Store accepts). ``parameters`` apply to the loaded source (``resource``, ``inline``,
``file``, ``url``, ``configmap``); the namespace is the object's, or the sensor's.

* ``create`` (default): labels ``events.argoproj.io/sensor``, ``/trigger``, ``/action-timestamp``
  are added; effectively once as ``argoWorkflow`` submit (``generateName`` + a hash of the firing
  key; the key in the ``eventbridge.io/trigger-key`` annotation; a replay finds the object).
* ``update``: replaces the live object's spec (and merges labels/annotations); NotFound fails.
* ``patch``: ``patchStrategy`` ``application/merge-patch+json`` (default) or
  ``application/strategic-merge-patch+json`` (applied as a JSON merge patch: lists are replaced)
  merges the source into the live object; ``application/json-patch+json`` is not supported.
* ``delete``: deletes it; an object that is already gone counts as deleted (replays are safe).

``policy.k8s`` labels are waited for after create/update/patch (see :mod:`._policy`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from eventbridge.errors import AlreadyExistsError, ConflictError, NotFoundError, PermanentError, TemporaryError
from eventbridge.triggers._policy import apply_k8s_policy
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


@TRIGGERS.register("k8s")
class K8sTrigger(TriggerAction):
    key = "k8s"

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
        resource = call.apply_params(source, spec.parameters)
        if not isinstance(resource, dict):
            raise PermanentError(f"{what}: the parameterized source is not an object")
        kind = resource.get("kind")
        api_version = str(resource.get("apiVersion") or "")
        if kind not in STORED_KINDS or (api_version and not api_version.startswith("argoproj.io/")):
            raise PermanentError(
                f"{what}: {api_version or '?'} {kind or '?'} objects cannot be managed here: the embedded store "
                f"holds only argoproj.io {', '.join(STORED_KINDS)} (run in cluster mode for other kinds)"
            )
        metadata = resource.get("metadata")
        resource["metadata"] = dict(metadata) if isinstance(metadata, dict) else {}
        resource["metadata"]["namespace"] = str(resource["metadata"].get("namespace") or self.sensor.namespace)
        resource.setdefault("apiVersion", "argoproj.io/v1alpha1")
        return operation, resource

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
