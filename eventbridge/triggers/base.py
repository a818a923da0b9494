"""The trigger interface and the registry of trigger types, keyed by Argo's template keys.

A trigger type is one module that subclasses :class:`TriggerAction` and registers itself::

    @TRIGGERS.register("log")
    class LogTrigger(TriggerAction): ...

The sensor engine makes one action per (sensor, trigger) when the sensor starts, calls
:meth:`TriggerAction.execute` once per firing (with the trigger-level ``parameters`` already
applied to the template), and :meth:`TriggerAction.close` when the sensor stops.

Errors: raise :class:`eventbridge.errors.PermanentError` when retrying cannot help (bad
resource, conflict) and :class:`eventbridge.errors.TemporaryError` when it may (a server is
down); the engine retries according to ``retryStrategy``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from eventbridge.events import Event
from eventbridge.models.base import References
from eventbridge.models.sensor import Sensor, Trigger, TriggerParameter, TriggerTemplate
from eventbridge.registry import Registry
from eventbridge.store.base import Object, Store
from eventbridge.store.objects import Objects


class WorkflowOperations(Protocol):
    """Argo Workflow operations other than ``submit`` (``argoWorkflow.operation``).

    The runtime injects an implementation backed by :mod:`eventbridge.workflow.operations`
    (triggers may not import the workflow package). Each returns the workflow it changed or
    created; errors are :class:`eventbridge.errors.EventBridgeError` subclasses
    (NotFoundError, InvalidError...).
    """

    async def submit_from(
        self, kind: str, namespace: str, name: str, labels: Mapping[str, str] | None = None
    ) -> Object: ...

    async def resubmit(self, namespace: str, name: str) -> Object: ...

    async def retry(self, namespace: str, name: str) -> Object: ...

    async def suspend(self, namespace: str, name: str) -> Object: ...

    async def resume(self, namespace: str, name: str) -> Object: ...

    async def stop(self, namespace: str, name: str) -> Object: ...

    async def terminate(self, namespace: str, name: str) -> Object: ...


@dataclass(frozen=True, slots=True)
class TriggerServices:
    """What trigger implementations may use: the object store, secret/configmap lookup, the
    workflow operations (``None``: operations other than submit fail with a PermanentError) and
    Kubernetes objects of any kind (``None`` or not ``available``: embedded mode, where the ``k8s``
    trigger manages only the argoproj kinds of the store)."""

    store: Store
    references: References
    workflow_ops: WorkflowOperations | None = None
    objects: Objects | None = None


def firing_key(sensor: Sensor, trigger_name: str, events: Mapping[str, Event]) -> str:
    """A stable id of one firing: sha256 over the sensor, the trigger and the events that fired it.

    Each event is identified by its dependency name and its bus identity (namespace, source,
    subject, id), so replaying the same events always gives the same key.
    """
    identities = sorted(
        [dependency, event.namespace, event.source, event.subject, event.id] for dependency, event in events.items()
    )
    # orjson writes a list of strings byte for byte as json.dumps(..., separators=(",", ":"),
    # ensure_ascii=False) did when these keys were first issued: keys stay stable across versions.
    material = orjson.dumps([sensor.namespace, sensor.name, trigger_name, identities])
    return hashlib.sha256(material).hexdigest()


#: Applies trigger parameters, resolved against the firing's events, to a copy of a document.
#: The sensor engine provides it (parameter resolution lives in :mod:`eventbridge.sensor.params`,
#: a layer above the triggers).
ParameterApplier = Callable[[Any, Sequence[TriggerParameter] | None], Any]
#: Builds a request body from ``payload`` parameters (Argo's ConstructPayload).
PayloadBuilder = Callable[[Sequence[TriggerParameter] | None], bytes]
#: Resolves one parameter's value (``dynamicHeaders``); None when the parameter is skipped.
ValueResolver = Callable[[TriggerParameter], str | None]


@dataclass(frozen=True, slots=True)
class TriggerCall:
    """One firing of a trigger."""

    sensor: Sensor
    trigger: Trigger
    #: the trigger's template after the trigger-level ``parameters`` were applied
    template: TriggerTemplate
    #: dependency name -> the event that satisfied it
    events: Mapping[str, Event]
    #: ``apply_params(document, parameters)`` -> a parameterized copy of ``document``
    apply_params: ParameterApplier
    #: ``build_payload(parameters)`` -> Argo's ConstructPayload bytes (http, kafka)
    build_payload: PayloadBuilder = field(default=lambda _parameters: b"")
    #: ``resolve_value(parameter)`` -> the parameter's value text, or None when skipped
    resolve_value: ValueResolver = field(default=lambda _parameter: None)

    @property
    def key(self) -> str:
        return firing_key(self.sensor, self.template.name, self.events)

    @property
    def event_ids(self) -> list[str]:
        return sorted(event.id for event in self.events.values())


@dataclass(frozen=True, slots=True)
class TriggerOutcome:
    """What a firing did, for logs and traces (``created Workflow argo/ci-1a2b``)."""

    summary: str
    #: ``kind namespace/name`` of objects created or found
    objects: tuple[str, ...] = field(default=())
    #: True when the firing had already happened (replay) and nothing new was done
    replayed: bool = False


class TriggerAction:
    """Base class of a trigger type. Subclasses set :attr:`key` and implement :meth:`execute`."""

    #: Argo's key under ``template`` (``argoWorkflow``, ``log``, ``http``...)
    key: ClassVar[str] = ""

    def __init__(self, sensor: Sensor, trigger: Trigger, services: TriggerServices) -> None:
        self.sensor = sensor
        self.trigger = trigger
        self.services = services

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        """Run the trigger once."""
        raise NotImplementedError  # abstract: every registered trigger type implements it

    async def preview(self, call: TriggerCall) -> Any:
        """What :meth:`execute` would create or send, fully parameterized, without doing it
        (``sensor test``); ``None`` when the trigger creates nothing. Secrets are not resolved."""
        return None

    async def close(self) -> None:
        """Release connections (nothing by default)."""


#: Trigger types by Argo's template key.
TRIGGERS: Registry[type[TriggerAction]] = Registry("trigger type")


def action_for(sensor: Sensor, trigger: Trigger, services: TriggerServices) -> TriggerAction | None:
    """Instantiate the registered action for the trigger's type, or ``None`` if unsupported."""
    if trigger.template is None:
        return None
    for key in trigger.template.type_keys():
        action_type = TRIGGERS.get(key)
        if action_type is not None:
            return action_type(sensor, trigger, services)
    return None
