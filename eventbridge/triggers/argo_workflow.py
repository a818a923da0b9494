"""The ``argoWorkflow`` trigger: Argo Workflow operations through our Store, effectively once.

``operation: submit`` (the default) loads the source (``resource``, ``inline``, ``file``, ``url``,
``configmap``; :mod:`._source`), applies ``argoWorkflow.parameters`` to it, and creates it with
Argo's labels ``events.argoproj.io/sensor``, ``events.argoproj.io/trigger`` and
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

The other operations act on the workflow (or template) named by the parameterized source's
``metadata.name``, as Argo's trigger passes that name to the ``argo`` CLI, through the injected
:class:`eventbridge.triggers.base.WorkflowOperations`:

* ``submit-from``: the source's kind must be ``WorkflowTemplate``, ``ClusterWorkflowTemplate`` or
  ``CronWorkflow``; the new Workflow carries the sensor/trigger labels and the label
  ``eventbridge.io/trigger-key`` (the first 63 characters of the firing key), and a replay finds
  it by that label instead of submitting again.
* ``resubmit``, ``retry``, ``suspend``, ``resume``, ``stop``, ``terminate`` on a Workflow.
* ``args`` (extra ``argo`` CLI flags) have no meaning without the CLI and are ignored (lint warns).

``policy.k8s.labels`` is applied to created workflows (see :mod:`._policy`). A created Workflow
carries the W3C trace context in the annotation ``eventbridge.io/traceparent``: the trigger span's
when tracing is on, else the ``traceparent`` extension of the events (see :mod:`eventbridge.tracing`).
"""

from __future__ import annotations

import time
from typing import Any

from eventbridge import jsontree, tracing
from eventbridge.errors import AlreadyExistsError, InvalidError, NotFoundError, PermanentError, TemporaryError
from eventbridge.triggers._policy import apply_k8s_policy
from eventbridge.triggers._source import load_source
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome

LABEL_SENSOR = "events.argoproj.io/sensor"
LABEL_TRIGGER = "events.argoproj.io/trigger"
LABEL_ACTION_TIMESTAMP = "events.argoproj.io/action-timestamp"
ANNOTATION_KEY = "eventbridge.io/trigger-key"
ANNOTATION_EVENT_IDS = "eventbridge.io/event-ids"
NAME_HASH_LENGTH = 10


def workflow_name(metadata: dict[str, Any], key: str, trigger_name: str) -> str:
    """``metadata.name``, or ``generateName`` + a short stable hash of the firing key."""
    name = metadata.get("name")
    if name:
        return str(name)
    generate_name = metadata.get("generateName")
    if not generate_name:
        raise PermanentError(f"trigger {trigger_name}: the Workflow needs metadata.name or metadata.generateName")
    return f"{generate_name}{key[:NAME_HASH_LENGTH]}"


LABEL_TRIGGER_KEY = "eventbridge.io/trigger-key"
OPERATIONS = ("submit", "submit-from", "resubmit", "retry", "resume", "suspend", "terminate", "stop")
SUBMIT_FROM_KINDS = {
    "workflowtemplate": "WorkflowTemplate",
    "clusterworkflowtemplate": "ClusterWorkflowTemplate",
    "cronworkflow": "CronWorkflow",
}


@TRIGGERS.register("argoWorkflow")
class ArgoWorkflowTrigger(TriggerAction):
    key = "argoWorkflow"

    def _operation(self, call: TriggerCall) -> str:
        workflow = call.template.argo_workflow
        operation = (workflow.operation if workflow is not None else None) or "submit"
        if operation not in OPERATIONS:
            raise PermanentError(f"trigger {call.template.name}: unknown argoWorkflow operation {operation!r}")
        return operation

    async def _resource(self, call: TriggerCall) -> dict[str, Any]:
        workflow = call.template.argo_workflow
        what = f"trigger {call.template.name}"
        source = await load_source(
            workflow.source if workflow else None,
            namespace=self.sensor.namespace,
            references=self.services.references,
            what=what,
            copy=False,  # apply_params works on a copy
        )
        resource = call.apply_params(source, workflow.parameters if workflow else None)
        if not isinstance(resource, dict):
            raise PermanentError(f"{what}: the parameterized source is not an object")
        return resource

    def _labels(self, call: TriggerCall) -> dict[str, str]:
        return {
            LABEL_SENSOR: self.sensor.name,
            LABEL_TRIGGER: call.template.name,
            LABEL_ACTION_TIMESTAMP: str(int(time.time() * 1000)),
        }

    def _prepare_submit(self, call: TriggerCall, resource: dict[str, Any]) -> dict[str, Any]:
        kind = resource.get("kind")
        if kind != "Workflow":
            raise PermanentError(f"trigger {call.template.name}: operation submit needs kind Workflow, got {kind!r}")
        metadata = resource.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        key = call.key
        name = workflow_name(metadata, key, call.template.name)
        namespace = str(metadata.get("namespace") or self.sensor.namespace)
        labels = dict(metadata.get("labels") or {})
        labels.update(self._labels(call))
        annotations = dict(metadata.get("annotations") or {})
        annotations[ANNOTATION_KEY] = key
        annotations[ANNOTATION_EVENT_IDS] = jsontree.dumps_text(call.event_ids)
        traceparent = tracing.current_traceparent() or tracing.event_traceparent(call.events)
        if traceparent:
            annotations[tracing.ANNOTATION_TRACEPARENT] = traceparent
        new_metadata = {k: v for k, v in metadata.items() if k != "generateName"}
        new_metadata.update(name=name, namespace=namespace, labels=labels, annotations=annotations)
        resource["metadata"] = new_metadata
        resource.setdefault("apiVersion", "argoproj.io/v1alpha1")
        return resource

    async def preview(self, call: TriggerCall) -> Any:
        operation = self._operation(call)
        resource = await self._resource(call)
        if operation == "submit":
            return self._prepare_submit(call, resource)
        metadata = resource.get("metadata") or {}
        return {
            "operation": operation,
            "kind": resource.get("kind"),
            "namespace": metadata.get("namespace") or self.sensor.namespace,
            "name": metadata.get("name"),
        }

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        operation = self._operation(call)
        resource = await self._resource(call)
        if operation == "submit":
            outcome = await self._submit(call, self._prepare_submit(call, resource))
        else:
            outcome = await self._other(call, operation, resource)
        policy = call.trigger.policy.k8s if call.trigger.policy is not None else None
        if policy is not None and outcome.objects and not outcome.replayed:
            kind, _, reference = outcome.objects[0].partition(" ")
            namespace, _, name = reference.partition("/")
            note = await apply_k8s_policy(self.services.store, kind, namespace, name, policy)
            if note:
                outcome = TriggerOutcome(f"{outcome.summary}; {note}", outcome.objects, outcome.replayed)
        return outcome

    async def _submit(self, call: TriggerCall, resource: dict[str, Any]) -> TriggerOutcome:
        metadata = resource["metadata"]
        namespace, name, key = metadata["namespace"], metadata["name"], metadata["annotations"][ANNOTATION_KEY]
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

    async def _other(self, call: TriggerCall, operation: str, resource: dict[str, Any]) -> TriggerOutcome:
        what = f"trigger {call.template.name}"
        ops = self.services.workflow_ops
        if ops is None:
            raise PermanentError(
                f"{what}: argoWorkflow operation {operation!r} needs the workflow operations, which this "
                "process was started without (only submit works here)"
            )
        metadata = resource.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            raise PermanentError(f"{what}: operation {operation} needs metadata.name in the source")
        namespace = str(metadata.get("namespace") or self.sensor.namespace)
        kind = str(resource.get("kind") or "")
        try:
            if operation == "submit-from":
                real_kind = SUBMIT_FROM_KINDS.get(kind.lower())
                if real_kind is None:
                    raise PermanentError(
                        f"{what}: submit-from needs a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow "
                        f"source, got {kind!r}"
                    )
                key_label = call.key[:63]
                existing = await self.services.store.list("Workflow", namespace, {LABEL_TRIGGER_KEY: key_label})
                if existing:
                    found = existing[0]["metadata"]
                    described = f"Workflow {found.get('namespace', namespace)}/{found['name']}"
                    return TriggerOutcome(f"{described} already exists for these events (replay)", (described,), True)
                labels = {**self._labels(call), LABEL_TRIGGER_KEY: key_label}
                created = await ops.submit_from(real_kind, namespace, str(name), labels)
                described = _describe(created, namespace)
                return TriggerOutcome(f"submitted {described} from {real_kind} {namespace}/{name}", (described,))
            if kind and kind != "Workflow":
                raise PermanentError(f"{what}: operation {operation} needs kind Workflow, got {kind!r}")
            if operation == "resubmit":
                created = await ops.resubmit(namespace, str(name))
                described = _describe(created, namespace)
                return TriggerOutcome(f"resubmitted Workflow {namespace}/{name} as {described}", (described,))
            method = {
                "retry": ops.retry,
                "suspend": ops.suspend,
                "resume": ops.resume,
                "stop": ops.stop,
                "terminate": ops.terminate,
            }[operation]
            await method(namespace, str(name))
        except (NotFoundError, InvalidError) as err:
            raise PermanentError(f"{what}: {operation} {namespace}/{name}: {err}") from None
        described = f"Workflow {namespace}/{name}"
        return TriggerOutcome(f"{operation} {described}", (described,))


def _describe(obj: dict[str, Any], namespace: str) -> str:
    metadata = obj.get("metadata") or {}
    return f"Workflow {metadata.get('namespace') or namespace}/{metadata.get('name', '?')}"
