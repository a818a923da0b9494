"""argoWorkflow and log triggers called directly, against a real SqliteStore."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from eventbridge.errors import NotFoundError, PermanentError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor, TriggerParameter
from eventbridge.sensor.params import apply_params
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.argo_workflow import ANNOTATION_KEY, ArgoWorkflowTrigger
from eventbridge.triggers.base import TRIGGERS, TriggerCall, TriggerServices, action_for, firing_key
from eventbridge.triggers.log import LogTrigger


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


def sensor_with(argo_workflow: dict[str, Any], namespace: str = "team") -> Sensor:
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": "s", "namespace": namespace},
        "spec": {
            "dependencies": [{"name": "d", "eventSourceName": "es", "eventName": "e"}],
            "triggers": [{"template": {"name": "t", "argoWorkflow": argo_workflow}}],
        },
    })


EVENT = Event(id="ev-1", source="es", subject="e", type="webhook", data={"body": {"x": "1"}},
              namespace="team")


def call_for(sensor: Sensor, events: Mapping[str, Event] | None = None) -> TriggerCall:
    trigger = sensor.spec.triggers[0]
    assert trigger.template is not None
    chosen = dict(events or {"d": EVENT})

    def applier(document: Any, parameters: Sequence[TriggerParameter] | None) -> Any:
        return apply_params(document, parameters, chosen)

    return TriggerCall(sensor=sensor, trigger=trigger, template=trigger.template, events=chosen,
                       apply_params=applier)


async def run(sensor: Sensor, store: SqliteStore, events: Mapping[str, Event] | None = None) -> Any:
    action = action_for(sensor, sensor.spec.triggers[0], TriggerServices(store, NoReferences()))
    assert isinstance(action, ArgoWorkflowTrigger)
    return await action.execute(call_for(sensor, events))


def test_registry_has_builtin_types() -> None:
    assert TRIGGERS.get("argoWorkflow") is ArgoWorkflowTrigger
    assert TRIGGERS.get("log") is LogTrigger
    assert TRIGGERS.get("nats") is None


def test_firing_key_is_stable_and_depends_on_every_part() -> None:
    sensor = sensor_with({"source": {"resource": {}}})
    key = firing_key(sensor, "t", {"d": EVENT})
    assert key == firing_key(sensor, "t", {"d": EVENT})
    assert key != firing_key(sensor, "other", {"d": EVENT})
    assert key != firing_key(sensor, "t", {"other-dep": EVENT})
    other = Event(id="ev-2", source="es", subject="e", type="webhook", data=None, namespace="team")
    assert key != firing_key(sensor, "t", {"d": other})


def test_firing_key_is_unchanged_from_the_json_module_encoding() -> None:
    """Keys name Workflows that already exist: the faster encoder must give the bytes (and so the
    keys) that ``json.dumps(..., ensure_ascii=False)`` gave, also for non-ASCII and control text."""
    sensor = sensor_with({"source": {"resource": {}}})
    for text in ("plain", "é中\u2028\U0001f600", "tab\tquote\"back\\slash\x01\x7f", ""):
        event = Event(id=f"id-{text}", source=text, subject="e", type="webhook", data=None, namespace="team")
        identities = [["d", "team", text, "e", f"id-{text}"]]
        material = json.dumps([sensor.namespace, sensor.name, text, identities], separators=(",", ":"),
                              ensure_ascii=False)  # fmt: skip
        assert firing_key(sensor, text, {"d": event}) == hashlib.sha256(material.encode()).hexdigest()


async def test_inline_source_and_resource_namespace(store: SqliteStore) -> None:
    sensor = sensor_with({
        "source": {"inline": "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\n"
                             "metadata: {generateName: inline-, namespace: jobs}\nspec: {}\n"},
        "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.x"}, "dest": "spec.value"}],
    })
    outcome = await run(sensor, store)
    [workflow] = await store.list("Workflow", "jobs")
    assert workflow["spec"] == {"value": "1"}
    assert outcome.objects == (f"Workflow jobs/{workflow['metadata']['name']}",)
    assert not outcome.replayed
    again = await run(sensor, store)
    assert again.replayed
    assert len(await store.list("Workflow")) == 1


async def test_fixed_name_with_same_key_is_replay_and_other_object_is_conflict(store: SqliteStore) -> None:
    sensor = sensor_with({"source": {"resource": {"kind": "Workflow", "metadata": {"name": "fixed"}}}})
    await run(sensor, store)
    stored = await store.get("Workflow", "team", "fixed")
    assert stored["metadata"]["annotations"][ANNOTATION_KEY] == firing_key(sensor, "t", {"d": EVENT})
    assert (await run(sensor, store)).replayed
    other = Event(id="ev-2", source="es", subject="e", type="webhook", data={}, namespace="team")
    with pytest.raises(PermanentError, match="already exists"):
        await run(sensor, store, {"d": other})


@pytest.mark.parametrize(
    ("argo_workflow", "message"),
    [
        ({"operation": "resubmit", "source": {"resource": {"kind": "Workflow", "metadata": {"name": "w"}}}},
         "needs the workflow operations"),
        ({"operation": "explode", "source": {"resource": {"kind": "Workflow"}}}, "unknown argoWorkflow operation"),
        ({"source": {"resource": {"kind": "WorkflowTemplate", "metadata": {"name": "x"}}}},
         "needs kind Workflow"),
        ({"source": {"resource": {"kind": "Workflow", "metadata": {}}}},
         "metadata.name or metadata.generateName"),
        ({"source": {"inline": "[unclosed"}}, "not YAML"),
        ({"source": {"url": {"path": "ftp://x"}}}, "must be an http"),
        ({"source": {"file": {"path": "/nonexistent/wf.yaml"}}}, "cannot be read"),
        ({"source": {"configmap": {"name": "cm", "key": "wf"}}}, "configmap"),
        ({"source": {"git": {"url": "x"}}}, "git and s3 are not supported"),
    ],
)
async def test_invalid_sources_fail_permanently(store: SqliteStore, argo_workflow: dict[str, Any],
                                                message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        await run(sensor_with(argo_workflow), store)
