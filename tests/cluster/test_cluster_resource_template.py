"""The ``resource`` template runner on the real API server: actions, conditions, outputs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from crdfixture import API_VERSION, KIND, ensure_widget_crd, widget
from kubecluster import KubeCluster

from eventbridge.errors import InvalidError
from eventbridge.executors.resource import ResourceRunner, json_path, parse_selector
from eventbridge.models.workflow import Parameter, ResourceTemplate
from eventbridge.store.kube_objects import KubeObjects


@pytest.fixture
async def objects(cluster: KubeCluster) -> AsyncIterator[KubeObjects]:
    ensure_widget_crd(cluster)
    client = KubeObjects(cluster.api_client())
    yield client
    await client.close()


@pytest.fixture
def runner(objects: KubeObjects) -> ResourceRunner:
    return ResourceRunner(objects, poll_interval=0.1)


def template(action: str, manifest: Any = None, **fields: Any) -> ResourceTemplate:
    text = manifest if isinstance(manifest, str) or manifest is None else yaml.safe_dump(manifest)
    return ResourceTemplate.model_validate({"action": action, "manifest": text, **fields})


def outputs(**sources: dict[str, Any]) -> list[Parameter]:
    return [Parameter.model_validate({"name": name, "valueFrom": source}) for name, source in sources.items()]


async def workflow(objects: KubeObjects, namespace: str) -> dict[str, Any]:
    manifest = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"name": "wf", "namespace": namespace}, "spec": {"entrypoint": "main"}}  # fmt: skip
    return await objects.create(manifest)


async def test_create_with_owner_reference_and_outputs(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    wf = await workflow(objects, ns)
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "out-"},
                "data": {"color": "blue", "size": "3"}}  # fmt: skip
    outcome = await runner.run(
        template("create", manifest, setOwnerReference=True),
        outputs(name={"jsonPath": "{.metadata.name}"}, color={"jsonPath": "color={.data.color}"},
                data={"jqFilter": ".data"}, keys={"jqFilter": ".data | keys[]"}),
        namespace=ns, workflow=wf, node_id="wf-123",
    )  # fmt: skip
    assert outcome.phase == "Succeeded", outcome.message
    name = outcome.parameters["name"]
    assert name.startswith("out-") and outcome.resource_name == f"configmap./{name}" and outcome.namespace == ns
    assert outcome.parameters["color"] == "color=blue"
    assert json.loads(outcome.parameters["data"]) == {"color": "blue", "size": "3"}
    assert outcome.parameters["keys"] == "color\nsize"
    live = await objects.get("v1", "ConfigMap", name, ns)
    [owner] = live["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Workflow",
        "wf",
        wf["metadata"]["uid"],
        True,
    )
    entries = outcome.output_parameters(outputs(name={"jsonPath": "{.metadata.name}"}))
    assert entries == [{"name": "name", "value": name, "valueFrom": {"jsonPath": "{.metadata.name}"}}]


async def test_create_again_adopts_only_its_own_object(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    wf = await workflow(objects, ns)
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "once"}}
    first = await runner.run(template("create", manifest), None, namespace=ns, workflow=wf, node_id="n1")
    again = await runner.run(template("create", manifest), None, namespace=ns, workflow=wf, node_id="n1")
    assert (first.phase, again.phase) == ("Succeeded", "Succeeded")  # a restarted controller re-runs the node
    other = await runner.run(template("create", manifest), None, namespace=ns, workflow=wf, node_id="n2")
    assert other.phase == "Failed" and "already exists" in other.message


async def test_patch_strategies_apply_replace_get(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": ns}, "data": {"a": "1"}}
    assert (await runner.run(template("apply", base), None, namespace=ns)).phase == "Succeeded"
    patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "labels": {"p": "y"}},
             "data": {"b": "2"}}  # fmt: skip
    done = await runner.run(template("patch", patch), outputs(data={"jqFilter": ".data"}), namespace=ns)
    assert done.phase == "Succeeded" and json.loads(done.parameters["data"]) == {"a": "1", "b": "2"}
    merged = await runner.run(template("patch", {**patch, "data": {"a": None}}, mergeStrategy="merge"),
                              outputs(data={"jqFilter": ".data"}), namespace=ns)  # fmt: skip
    assert json.loads(merged.parameters["data"]) == {"b": "2"}
    ops = [{"op": "add", "path": "/data/c", "value": "3"}]
    flagged = await runner.run(template("patch", json.dumps(ops), mergeStrategy="json", flags=["configmap", "cfg"]),
                               outputs(c={"jsonPath": "{.data.c}"}), namespace=ns)  # fmt: skip
    assert flagged.phase == "Succeeded" and flagged.parameters == {"c": "3"}
    replaced = await runner.run(template("replace", {**base, "data": {"only": "this"}}),
                                outputs(data={"jqFilter": ".data"}), namespace=ns)  # fmt: skip
    assert json.loads(replaced.parameters["data"]) == {"only": "this"}
    got = await runner.run(template("get", None, flags=["cm/cfg", "-n", ns]),
                           outputs(data={"jsonPath": "{.data}"}), namespace="elsewhere")  # fmt: skip
    assert got.phase == "Succeeded", got.message
    assert json.loads(got.parameters["data"]) == {"only": "this"}  # replace dropped the rest, labels too

    on_crd = await runner.run(template("patch", widget("w", ns, spec={"x": 1})), None, namespace=ns)
    assert on_crd.phase == "Failed" and "Widget" in on_crd.message  # no such object yet: the API server says so
    await objects.create(widget("w", ns, spec={"x": 1}))
    strategic = await runner.run(template("patch", widget("w", ns, spec={"x": 2})), None, namespace=ns)
    assert strategic.phase == "Failed" and "patch type" in strategic.message  # as kubectl: use mergeStrategy merge
    assert (await runner.run(template("patch", widget("w", ns, spec={"x": 2}), mergeStrategy="merge"), None,
                             namespace=ns)).phase == "Succeeded"  # fmt: skip


async def set_status_later(objects: KubeObjects, ns: str, status: dict[str, Any], delay: float = 0.4) -> None:
    await asyncio.sleep(delay)
    await objects.patch(API_VERSION, KIND, "job", {"status": status}, namespace=ns)


async def test_success_condition_waits_for_a_field(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    manifest = widget("job", ns, spec={"steps": 2})
    run = asyncio.create_task(runner.run(
        template("create", manifest, successCondition="status.succeeded > 0, status.phase in (Done, Finished)",
                 failureCondition="status.failed > 0"),
        outputs(succeeded={"jsonPath": "{.status.succeeded}"}), namespace=ns))  # fmt: skip
    await asyncio.sleep(0.3)
    assert not run.done()
    await set_status_later(objects, ns, {"succeeded": 0, "phase": "Done"}, 0)
    await asyncio.sleep(0.3)
    assert not run.done()  # 0 is not > 0
    await set_status_later(objects, ns, {"succeeded": 1}, 0)
    outcome = await asyncio.wait_for(run, 10)
    assert outcome.phase == "Succeeded" and outcome.parameters == {"succeeded": "1"}
    assert outcome.resource_name == "widget.test.eventbridge.io/job"


async def test_failure_condition_fails_the_node(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    waiting = asyncio.create_task(runner.run(
        template("apply", widget("job", ns), successCondition="status.succeeded > 0",
                 failureCondition="status.failed > 0"), None, namespace=ns))  # fmt: skip
    await set_status_later(objects, ns, {"failed": 2})
    outcome = await asyncio.wait_for(waiting, 10)
    assert (outcome.phase, outcome.message) == ("Failed", "failure condition 'status.failed>0' evaluated true")


async def test_deleted_while_waiting_and_delete_action(
    runner: ResourceRunner, objects: KubeObjects, cluster: KubeCluster
) -> None:
    ns = cluster.new_namespace("res")
    waiting = asyncio.create_task(
        runner.run(template("create", widget("job", ns), successCondition="status.done"), None, namespace=ns)
    )
    await asyncio.sleep(0.4)
    await objects.delete(API_VERSION, KIND, "job", ns)
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.phase == "Failed" and "deleted while its status was still being checked" in outcome.message

    gone = await runner.run(template("delete", widget("job", ns)), None, namespace=ns)
    assert gone.phase == "Succeeded"  # --ignore-not-found
    await objects.create(widget("x", ns))
    assert (await runner.run(template("delete", None, flags=["widgets", "x"]), None, namespace=ns)).phase == "Succeeded"
    assert not await objects.list(API_VERSION, KIND, ns)


@pytest.mark.parametrize(
    ("fields", "declared", "message"),
    [
        (
            {"action": "delete", "manifest": "kind: ConfigMap", "successCondition": "a"},
            None,
            "not supported for delete",
        ),
        ({"action": "scale", "manifest": "a: b"}, None, "is not one of"),
        ({"action": "create", "manifest": "{{"}, None, "not YAML or JSON"),
        ({"action": "create", "manifest": "a: 1\n---\nb: 2\n"}, None, "one object"),
        (
            {"action": "create", "manifest": "apiVersion: v1\nkind: ConfigMap\n"},
            None,
            "Kind and name are both required",
        ),
        ({"action": "get", "manifest": "", "flags": []}, None, "at least one of flags or manifest"),
        ({"action": "get", "manifest": "", "flags": ["--all"]}, None, "not supported"),
        ({"action": "create", "manifest": "kind: X", "successCondition": "a in b"}, None, "failed to parse"),
        ({"action": "patch", "manifest": "[]", "mergeStrategy": "json"}, None, "needs flags"),
        ({"action": "patch", "manifest": "a: 1", "mergeStrategy": "xml"}, None, "mergeStrategy"),
    ],
)
async def test_invalid_templates_are_errors(
    runner: ResourceRunner, fields: dict[str, Any], declared: Any, message: str
) -> None:
    outcome = await runner.run(ResourceTemplate.model_validate(fields), declared, namespace="default")
    assert outcome.phase == "Error" and message in outcome.message


async def test_missing_output_path_fails_unless_defaulted(runner: ResourceRunner, cluster: KubeCluster) -> None:
    ns = cluster.new_namespace("res")
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    failed = await runner.run(template("apply", manifest), outputs(x={"jsonPath": "{.data.x}"}), namespace=ns)
    assert failed.phase == "Failed" and "is not found" in failed.message
    kept = await runner.run(template("apply", manifest), outputs(x={"jsonPath": "{.data.x}", "default": "none"}),
                            namespace=ns)  # fmt: skip
    assert kept.phase == "Succeeded" and kept.parameters == {"x": "none"}


@pytest.mark.parametrize(
    ("selector", "obj", "expected"),
    [
        ("status.phase == Running", {"status": {"phase": "Running"}}, True),
        ("status.phase=Running", {"status": {"phase": "Pending"}}, False),
        ("status.phase != Failed", {}, True),  # a missing key is "not equal", as Kubernetes
        ("status.phase notin (Failed,Error)", {"status": {"phase": "Error"}}, False),
        ("status.phase in (Failed, Error)", {"status": {"phase": "Error"}}, True),
        ("status.ready", {"status": {"ready": False}}, True),  # exists
        ("!status.error", {"status": {}}, True),
        ("status.count > 2", {"status": {"count": 3}}, True),
        ("status.count < 2", {"status": {"count": 3}}, False),
        ("status.count > 2", {"status": {"count": 2.5}}, False),  # not an integer: no match
        ("status.ok == true, status.n > 0", {"status": {"ok": True, "n": 1}}, True),
        ("status.ok == true, status.n > 0", {"status": {"ok": True, "n": 0}}, False),
    ],
)
def test_selector_semantics(selector: str, obj: dict[str, Any], expected: bool) -> None:
    assert all(r.matches(obj) for r in parse_selector(selector)) is expected


@pytest.mark.parametrize("selector", ["a >", "a > x", "a in (b", "== b", "a b", "a,", "a in b"])
def test_selector_syntax_errors(selector: str) -> None:
    with pytest.raises(InvalidError, match="failed to parse"):
        parse_selector(selector)


def test_json_path_subset() -> None:
    data = {"metadata": {"name": "n", "labels": {"a.b/c": "x"}}, "items": [{"v": 1}, {"v": 2}], "f": 1.5}
    assert json_path(data, "{.metadata.name}") == "n"
    assert json_path(data, "{.metadata.labels['a.b/c']}") == "x"
    assert json_path(data, "{.items[1].v}-{.items[*].v}") == "2-1 2"
    assert json_path(data, "{$.f}") == "1.5"
    assert json_path(data, "{.items[0]}") == '{"v":1}'
    with pytest.raises(InvalidError, match="not found"):
        json_path(data, "{.missing}")
