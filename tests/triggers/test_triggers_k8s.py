"""The k8s trigger in embedded mode: argoproj kinds in a real SqliteStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eventbridge.errors import NotFoundError, PermanentError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.argo_workflow import ANNOTATION_KEY
from eventbridge.triggers.base import TriggerServices, action_for
from eventbridge.triggers.k8s import K8sTrigger, merge_patch

NS = "ops"


class NoReferences:
    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no secrets")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError("no configmaps")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    instance = SqliteStore(tmp_path / "store.db")
    await instance.start()
    yield instance
    await instance.stop()


def event(event_id: str = "e1", schedule: str = "*/5 * * * *") -> Event:
    return Event(id=event_id, source="es", subject="e", type="webhook", namespace=NS,
                 data={"body": {"schedule": schedule, "suspend": True}})


def sensor(k8s: dict[str, Any]) -> Sensor:
    return Sensor.model_validate({
        "kind": "Sensor", "metadata": {"name": "s", "namespace": NS},
        "spec": {"dependencies": [{"name": "d", "eventSourceName": "es", "eventName": "e"}],
                 "triggers": [{"template": {"name": "t", "k8s": k8s}}]},
    })


async def fire(k8s: dict[str, Any], store: SqliteStore, the_event: Event | None = None) -> Any:
    the_sensor = sensor(k8s)
    trigger = the_sensor.spec.triggers[0]
    action = action_for(the_sensor, trigger, TriggerServices(store, NoReferences()))
    assert isinstance(action, K8sTrigger)
    return await action.execute(make_call(the_sensor, trigger, {"d": the_event or event()}))


CRON = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
        "metadata": {"name": "nightly"}, "spec": {"schedules": ["0 0 * * *"], "workflowSpec": {"entrypoint": "m"}}}
SCHEDULE_PARAM = [{"src": {"dependencyName": "d", "dataKey": "body.schedule"}, "dest": "spec.schedules.0"}]


async def test_create_update_patch_delete_a_cron_workflow(store: SqliteStore) -> None:
    created = await fire({"source": {"resource": CRON}, "parameters": SCHEDULE_PARAM}, store)
    assert created.summary == f"created CronWorkflow {NS}/nightly"
    stored = await store.get("CronWorkflow", NS, "nightly")
    assert stored["spec"]["schedules"] == ["*/5 * * * *"]
    assert stored["metadata"]["labels"]["events.argoproj.io/sensor"] == "s"
    assert (await fire({"source": {"resource": CRON}, "parameters": SCHEDULE_PARAM}, store)).replayed

    update = {**CRON, "spec": {"schedules": ["1 1 * * *"], "workflowSpec": {"entrypoint": "n"}}}
    await fire({"operation": "update", "source": {"resource": update}}, store)
    stored = await store.get("CronWorkflow", NS, "nightly")
    assert stored["spec"] == update["spec"]
    assert stored["metadata"]["annotations"][ANNOTATION_KEY]  # kept from the live object

    patch = {"apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "metadata": {"name": "nightly"},
             "spec": {"suspend": False}}
    await fire({"operation": "patch", "source": {"resource": patch},
                "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.suspend", "useRawData": True},
                                "dest": "spec.suspend"}]}, store)
    stored = await store.get("CronWorkflow", NS, "nightly")
    assert stored["spec"]["suspend"] is True and stored["spec"]["schedules"] == ["1 1 * * *"]

    assert (await fire({"operation": "delete", "source": {"resource": CRON}}, store)).summary.startswith("deleted")
    with pytest.raises(NotFoundError):
        await store.get("CronWorkflow", NS, "nightly")
    assert "already deleted" in (await fire({"operation": "delete", "source": {"resource": CRON}}, store)).summary


@pytest.mark.parametrize(
    ("k8s", "message"),
    [
        ({"source": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}}},
         "cannot be managed here"),
        ({"operation": "replace", "source": {"resource": CRON}}, "unknown k8s operation"),
        ({"operation": "update", "source": {"resource": CRON}}, "does not exist"),
        ({"operation": "patch", "patchStrategy": "application/json-patch+json", "source": {"resource": CRON}},
         "not supported"),
    ],
)
async def test_errors_are_permanent(store: SqliteStore, k8s: dict[str, Any], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        await fire(k8s, store)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}}, {"a": 1, "b": {"d": 3, "e": 4}}),
        ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
        ({"a": 1}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ],
)
def test_merge_patch_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected
