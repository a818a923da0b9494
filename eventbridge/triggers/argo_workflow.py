"""The ``argoWorkflow`` trigger: submits a Workflow into the Store, effectively once.

``operation: submit`` (the default) takes the inline resource (``source.resource``, or
``source.inline`` YAML/JSON text), applies ``argoWorkflow.parameters`` to it, and creates it
with Argo's labels ``events.argoproj.io/sensor``, ``events.argoproj.io/trigger`` and
``events.argoproj.io/action-timestamp`` (milliseconds). The namespace is the resource's, or the
sensor's when unset.

Effectively once: the name is derived from the firing (sensor, trigger and the events that
fired it, see :func:`eventbridge.triggers.base.firing_key`). With ``generateName`` the name is
``generateName`` + the first 10 hex digits of that key; a fixed ``metadata.name`` is kept as
it is. The full key is kept in the annotation ``eventbridge.io/trigger-key`` and the event ids
in ``eventbridge.io/event-ids``. When the create reports that the name exists and the existing
Workflow carries the same key, this firing already happened (a replay after a crash or a
redelivery): success, nothing new is created. Any other existing object is a real conflict
(:class:`PermanentError`).

The other operations (``submit-from``, ``resubmit``, ``retry``, ``resume``, ``suspend``,
``terminate``, ``stop``) are not supported yet and fail permanently.
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from eventbridge.errors import AlreadyExistsError, NotFoundError, PermanentError, TemporaryError
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome

LABEL_SENSOR = "events.argoproj.io/sensor"
LABEL_TRIGGER = "events.argoproj.io/trigger"
LABEL_ACTION_TIMESTAMP = "events.argoproj.io/action-timestamp"
ANNOTATION_KEY = "eventbridge.io/trigger-key"
ANNOTATION_EVENT_IDS = "eventbridge.io/event-ids"
NAME_HASH_LENGTH = 10


def _source_resource(call: TriggerCall) -> dict[str, Any]:
    workflow = call.template.argo_workflow
    if workflow is None or workflow.source is None:
        raise PermanentError(f"trigger {call.template.name}: argoWorkflow.source is required")
    source = workflow.source
    if source.resource is not None:
        resource: Any = source.resource
    elif source.inline is not None:
        try:
            resource = yaml.safe_load(source.inline)
        except yaml.YAMLError as err:
            raise PermanentError(f"trigger {call.template.name}: source.inline is not YAML: {err}") from None
    else:
        raise PermanentError(
            f"trigger {call.template.name}: only source.resource and source.inline are supported yet"
        )
    if not isinstance(resource, dict):
        raise PermanentError(f"trigger {call.template.name}: the source is not an object")
    return resource


def workflow_name(metadata: dict[str, Any], key: str, trigger_name: str) -> str:
    """``metadata.name``, or ``generateName`` + a short stable hash of the firing key."""
    name = metadata.get("name")
    if name:
        return str(name)
    generate_name = metadata.get("generateName")
    if not generate_name:
        raise PermanentError(
            f"trigger {trigger_name}: the Workflow needs metadata.name or metadata.generateName"
        )
    return f"{generate_name}{key[:NAME_HASH_LENGTH]}"


@TRIGGERS.register("argoWorkflow")
class ArgoWorkflowTrigger(TriggerAction):
    key = "argoWorkflow"

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        workflow = call.template.argo_workflow
        operation = (workflow.operation if workflow is not None else None) or "submit"
        if operation != "submit":
            raise PermanentError(
                f"trigger {call.template.name}: argoWorkflow operation {operation!r} is not supported yet"
            )
        resource = call.apply_params(_source_resource(call), workflow.parameters if workflow else None)
        if not isinstance(resource, dict):
            raise PermanentError(f"trigger {call.template.name}: the parameterized source is not an object")
        kind = resource.get("kind")
        if kind != "Workflow":
            raise PermanentError(
                f"trigger {call.template.name}: operation submit needs kind Workflow, got {kind!r}"
            )
        metadata = resource.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        key = call.key
        name = workflow_name(metadata, key, call.template.name)
        namespace = str(metadata.get("namespace") or self.sensor.namespace)
        labels = dict(metadata.get("labels") or {})
        labels[LABEL_SENSOR] = self.sensor.name
        labels[LABEL_TRIGGER] = call.template.name
        labels[LABEL_ACTION_TIMESTAMP] = str(int(time.time() * 1000))
        annotations = dict(metadata.get("annotations") or {})
        annotations[ANNOTATION_KEY] = key
        annotations[ANNOTATION_EVENT_IDS] = json.dumps(call.event_ids, separators=(",", ":"))
        new_metadata = {k: v for k, v in metadata.items() if k != "generateName"}
        new_metadata.update(name=name, namespace=namespace, labels=labels, annotations=annotations)
        resource["metadata"] = new_metadata
        resource.setdefault("apiVersion", "argoproj.io/v1alpha1")

        store = self.services.store
        described = f"Workflow {namespace}/{name}"
        try:
            await store.create(resource)
        except AlreadyExistsError:
            try:
                existing = await store.get("Workflow", namespace, name)
            except NotFoundError:
                # Deleted between our create and get: let the engine retry the create.
                raise TemporaryError(f"{described} vanished while checking a replay; retrying", 0.1) from None
            existing_key = ((existing.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_KEY)
            if existing_key == key:
                summary = f"{described} already exists for these events (replay)"
                return TriggerOutcome(summary, (described,), replayed=True)
            raise PermanentError(
                f"{described} already exists and was not created by trigger {call.template.name} for these "
                "events: use generateName, or a name that depends on the event"
            ) from None
        return TriggerOutcome(f"created {described}", (described,))
