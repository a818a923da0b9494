"""argoWorkflow operations other than submit, trigger sources and the k8s label policy, against a
real SqliteStore and an operations object that records calls and changes the store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from eventbridge.errors import NotFoundError, PermanentError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.store.base import Object
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.argo_workflow import LABEL_TRIGGER_KEY, ArgoWorkflowTrigger
from eventbridge.triggers.base import TriggerServices, action_for


class References:
    def __init__(self, config_maps: dict[tuple[str, str], str] | None = None) -> None:
        self.config_maps = config_maps or {}

    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} key {key} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        try:
            return self.config_maps[(name, key)]
        except KeyError:
            raise NotFoundError(f"configmap {namespace}/{name} key {key} not found") from None


class RecordingOperations:
    """A WorkflowOperations that works on the store the way workflow/operations.py does."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.calls: list[tuple[Any, ...]] = []

    async def submit_from(
        self, kind: str, namespace: str, name: str, labels: Mapping[str, str] | None = None
    ) -> Object:
        self.calls.append(("submit_from", kind, namespace, name))
        await self.store.get(kind, namespace, name)
        return await self.store.create({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": f"{name}-", "namespace": namespace, "labels": dict(labels or {})},
            "spec": {"workflowTemplateRef": {"name": name}},
        })

    async def resubmit(self, namespace: str, name: str) -> Object:
        self.calls.append(("resubmit", namespace, name))
        old = await self.store.get("Workflow", namespace, name)
        return await self.store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                        "metadata": {"generateName": f"{name}-", "namespace": namespace},
                                        "spec": old.get("spec", {})})

    async def _flag(self, operation: str, namespace: str, name: str) -> Object:
        self.calls.append((operation, namespace, name))
        obj = await self.store.get("Workflow", namespace, name)
        obj.setdefault("spec", {})["touched"] = operation
        return await self.store.update(obj)

    async def retry(self, namespace: str, name: str) -> Object:
        return await self._flag("retry", namespace, name)

    async def suspend(self, namespace: str, name: str) -> Object:
        return await self._flag("suspend", namespace, name)

    async def resume(self, namespace: str, name: str) -> Object:
        return await self._flag("resume", namespace, name)

    async def stop(self, namespace: str, name: str) -> Object:
        return await self._flag("stop", namespace, name)

    async def terminate(self, namespace: str, name: str) -> Object:
        return await self._flag("terminate", namespace, name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


NS = "team"
EVENT = Event(id="ev-1", source="es", subject="e", type="webhook", data={"body": {"wf": "target"}}, namespace=NS)


def sensor_with(argo_workflow: dict[str, Any], **trigger: Any) -> Sensor:
    return Sensor.model_validate({
        "kind": "Sensor",
        "metadata": {"name": "s", "namespace": NS},
        "spec": {
            "dependencies": [{"name": "d", "eventSourceName": "es", "eventName": "e"}],
            "triggers": [{"template": {"name": "t", "argoWorkflow": argo_workflow}, **trigger}],
        },
    })


async def run(sensor: Sensor, store: SqliteStore, ops: RecordingOperations | None,
              references: References | None = None) -> Any:
    trigger = sensor.spec.triggers[0]
    action = action_for(sensor, trigger, TriggerServices(store, references or References(), ops))
    assert isinstance(action, ArgoWorkflowTrigger)
    return await action.execute(make_call(sensor, trigger, {"d": EVENT}))


async def make_workflow(store: SqliteStore, name: str = "target") -> None:
    await store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                        "metadata": {"name": name, "namespace": NS}, "spec": {"entrypoint": "main"}})


@pytest.mark.parametrize("operation", ["retry", "suspend", "resume", "stop", "terminate"])
async def test_state_operations_use_the_parameterized_name(store: SqliteStore, operation: str) -> None:
    await make_workflow(store)
    ops = RecordingOperations(store)
    sensor = sensor_with({
        "operation": operation,
        "source": {"resource": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                "metadata": {"name": "placeholder"}}},
        "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.wf"}, "dest": "metadata.name"}],
    })
    outcome = await run(sensor, store, ops)
    assert ops.calls == [(operation, NS, "target")]
    assert outcome.objects == (f"Workflow {NS}/target",)
    assert (await store.get("Workflow", NS, "target"))["spec"]["touched"] == operation


async def test_resubmit_creates_a_new_workflow(store: SqliteStore) -> None:
    await make_workflow(store)
    ops = RecordingOperations(store)
    sensor = sensor_with({"operation": "resubmit",
                          "source": {"resource": {"kind": "Workflow", "metadata": {"name": "target"}}}})
    outcome = await run(sensor, store, ops)
    assert ops.calls == [("resubmit", NS, "target")]
    assert len(await store.list("Workflow", NS)) == 2
    assert outcome.objects[0].startswith(f"Workflow {NS}/target-")


async def test_operation_on_a_missing_workflow_fails_permanently(store: SqliteStore) -> None:
    sensor = sensor_with({"operation": "suspend",
                          "source": {"resource": {"kind": "Workflow", "metadata": {"name": "ghost"}}}})
    with pytest.raises(PermanentError, match="suspend team/ghost"):
        await run(sensor, store, RecordingOperations(store))


async def test_submit_from_template_is_effectively_once(store: SqliteStore) -> None:
    await store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
                        "metadata": {"name": "build", "namespace": NS}, "spec": {}})
    ops = RecordingOperations(store)
    sensor = sensor_with({"operation": "submit-from",
                          "source": {"resource": {"kind": "WorkflowTemplate", "metadata": {"name": "build"}}}})
    first = await run(sensor, store, ops)
    again = await run(sensor, store, ops)
    assert not first.replayed and again.replayed
    assert first.objects == again.objects
    [workflow] = await store.list("Workflow", NS)
    labels = workflow["metadata"]["labels"]
    assert labels["events.argoproj.io/sensor"] == "s" and labels["events.argoproj.io/trigger"] == "t"
    assert len(labels[LABEL_TRIGGER_KEY]) == 63
    assert [call[0] for call in ops.calls] == ["submit_from"]


async def test_submit_from_needs_a_template_kind(store: SqliteStore) -> None:
    sensor = sensor_with({"operation": "submit-from",
                          "source": {"resource": {"kind": "Workflow", "metadata": {"name": "x"}}}})
    with pytest.raises(PermanentError, match="WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow"):
        await run(sensor, store, RecordingOperations(store))


WORKFLOW_YAML = (
    "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: src-}\nspec: {entrypoint: e}\n"
)


async def test_file_and_configmap_sources(store: SqliteStore, tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW_YAML)
    await run(sensor_with({"source": {"file": {"path": str(path)}}}), store, None)
    refs = References({("manifests", "wf"): WORKFLOW_YAML.replace("src-", "cm-")})
    await run(sensor_with({"source": {"configmap": {"name": "manifests", "key": "wf"}}}), store, None, refs)
    names = sorted(wf["metadata"]["name"][:3] for wf in await store.list("Workflow", NS))
    assert names == ["cm-", "src"]


async def test_url_source_and_redirects(store: SqliteStore, aiohttp_server_factory: Any) -> None:
    async def document(_: web.Request) -> web.Response:
        return web.Response(text=WORKFLOW_YAML)

    async def same_host(_: web.Request) -> web.Response:
        raise web.HTTPFound("/wf.yaml")

    async def other_host(_: web.Request) -> web.Response:
        raise web.HTTPFound("http://localhost:1/wf.yaml")

    base = await aiohttp_server_factory({"/wf.yaml": document, "/moved": same_host, "/away": other_host})
    await run(sensor_with({"source": {"url": {"path": f"{base}/moved"}}}), store, None)
    assert len(await store.list("Workflow", NS)) == 1
    with pytest.raises(PermanentError, match="another host"):
        await run(sensor_with({"source": {"url": {"path": f"{base}/away"}}}), store, None)


async def test_k8s_policy_waits_for_labels(store: SqliteStore) -> None:
    policy = {"k8s": {"labels": {"workflows.argoproj.io/phase": "Succeeded"},
                      "backoff": {"duration": "10ms", "steps": 3}, "errorOnBackoffTimeout": True}}
    sensor = sensor_with({"source": {"resource": {"kind": "Workflow", "metadata": {"generateName": "p-"}}}},
                         policy=policy)
    with pytest.raises(PermanentError, match="did not get labels"):
        await run(sensor, store, None)
    lenient = sensor_with({"source": {"resource": {"kind": "Workflow", "metadata": {"generateName": "q-"}}}},
                          policy={"k8s": {**policy["k8s"], "errorOnBackoffTimeout": False}})
    outcome = await run(lenient, store, None)
    assert "errorOnBackoffTimeout is false" in outcome.summary
