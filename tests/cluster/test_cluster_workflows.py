"""The real Controller on the real API server: KubeStore + PodExecutor + the test kubelet.

The controller acts as the `eventbridge` ServiceAccount with deploy/'s namespaced Role; step Pods
run as `eventbridge-executor` and report outputs as WorkflowTaskResults with that account's token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubecluster import KubeCluster
from kubernetes import client as k8s
from testkubelet import TestKubelet

from eventbridge.errors import ConflictError
from eventbridge.executors.pod import ANNOTATION_NODE_ID, LABEL_COMPLETED, LABEL_WORKFLOW, PodExecutor
from eventbridge.store.kube import KubeStore
from eventbridge.workflow.controller import Controller

Obj = dict[str, Any]


def wf(namespace: str, templates: list[Obj], entrypoint: str = "main", **spec: Any) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "cluster-", "namespace": namespace},
        "spec": {"entrypoint": entrypoint, "templates": templates, **spec},
    }


def by_display(obj: Obj) -> dict[str, Obj]:
    return {n["displayName"]: n for n in obj["status"]["nodes"].values()}


STEPS = [
    {
        "name": "main",
        "steps": [
            [{"name": "gen", "template": "echo", "arguments": {"parameters": [{"name": "m", "value": "hello"}]}}],
            [
                {
                    "name": "write",
                    "template": "write",
                    "arguments": {"parameters": [{"name": "m", "value": "W-{{steps.gen.outputs.result}}"}]},
                }
            ],
            [
                {
                    "name": "last",
                    "template": "echo",
                    "arguments": {"parameters": [{"name": "m", "value": "{{steps.write.outputs.parameters.out}}"}]},
                }
            ],
        ],
    },
    {
        "name": "echo",
        "inputs": {"parameters": [{"name": "m"}]},
        "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.m}}"]},
    },
    {
        "name": "write",
        "inputs": {"parameters": [{"name": "m"}]},
        "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out.txt"}}]},
        "script": {
            "image": "python",
            "command": ["python3"],
            "source": "open('/tmp/out.txt', 'w').write('{{inputs.parameters.m}}')\nprint('wrote')",
        },
    },
]


async def test_steps_workflow_runs_in_pods_end_to_end(
    controller: Controller, namespace: str, cluster: KubeCluster, kubelet: TestKubelet, pod_executor: PodExecutor
) -> None:
    result = await controller.run(wf(namespace, STEPS))
    status = result["status"]
    assert status["phase"] == "Succeeded", status
    nodes = by_display(result)
    name = result["metadata"]["name"]
    assert nodes["gen"]["outputs"]["result"] == "hello"
    assert nodes["write"]["outputs"]["parameters"][0]["value"] == "W-hello"
    assert nodes["write"]["outputs"]["result"] == "wrote"
    assert nodes["last"]["outputs"]["result"] == "W-hello"
    assert nodes["last"]["outputs"]["exitCode"] == "0"
    assert len(kubelet.started_pods) == 3

    with cluster.api_client() as api:
        pods = k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={name}").items
        assert len(pods) == 3
        for pod in pods:
            assert pod.status.phase == "Succeeded"
            assert pod.metadata.labels[LABEL_COMPLETED] == "true"
            assert pod.metadata.owner_references[0].kind == "Workflow"
            assert pod.metadata.owner_references[0].uid == result["metadata"]["uid"]
            assert pod.spec.service_account_name == "eventbridge-executor"
            assert pod.metadata.annotations[ANNOTATION_NODE_ID] in result["status"]["nodes"]
        reports = k8s.CustomObjectsApi(api).list_namespaced_custom_object(
            "argoproj.io", "v1alpha1", namespace, "workflowtaskresults", label_selector=f"{LABEL_WORKFLOW}={name}"
        )["items"]
        assert sorted(r["metadata"]["name"] for r in reports) == sorted(
            n["id"] for n in nodes.values() if n["type"] == "Pod"
        )

    log = await pod_executor.read_log(namespace, name, nodes["write"]["id"])
    assert log == "wrote\n"


async def test_failing_step_fails_the_workflow(controller: Controller, namespace: str) -> None:
    manifest = wf(namespace, [{"name": "main", "container": {"image": "alpine", "command": ["sh", "-c", "exit 3"]}}])
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Failed"
    node = by_display(result)[result["metadata"]["name"]]
    assert node["phase"] == "Failed" and "exit code 3" in node["message"]


async def test_missing_output_file_is_an_error_and_default_is_used(controller: Controller, namespace: str) -> None:
    templates = [
        {
            "name": "main",
            "steps": [[{"name": "with-default", "template": "defaulted"}], [{"name": "without", "template": "plain"}]],
        },
        {
            "name": "defaulted",
            "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/none", "default": "dflt"}}]},
            "container": {"image": "alpine", "command": ["true"]},
        },
        {
            "name": "plain",
            "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/none"}}]},
            "container": {"image": "alpine", "command": ["true"]},
        },
    ]
    result = await controller.run(wf(namespace, templates))
    nodes = by_display(result)
    assert nodes["with-default"]["outputs"]["parameters"][0]["value"] == "dflt"
    assert nodes["without"]["phase"] == "Error"
    assert "/tmp/none" in nodes["without"]["message"]


async def test_dag_with_pod_gc_on_success(
    controller: Controller, namespace: str, cluster: KubeCluster, kube_store: KubeStore
) -> None:
    templates = [
        {
            "name": "main",
            "dag": {
                "tasks": [
                    {"name": "a", "template": "say", "arguments": {"parameters": [{"name": "m", "value": "A"}]}},
                    {
                        "name": "b",
                        "template": "say",
                        "dependencies": ["a"],
                        "arguments": {"parameters": [{"name": "m", "value": "{{tasks.a.outputs.result}}B"}]},
                    },
                    {
                        "name": "c",
                        "template": "say",
                        "dependencies": ["a"],
                        "arguments": {"parameters": [{"name": "m", "value": "{{tasks.a.outputs.result}}C"}]},
                    },
                ]
            },
        },
        {
            "name": "say",
            "inputs": {"parameters": [{"name": "m"}]},
            "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.m}}"]},
        },
    ]
    result = await controller.run(wf(namespace, templates, podGC={"strategy": "OnPodSuccess"}))
    assert result["status"]["phase"] == "Succeeded", result["status"]
    nodes = by_display(result)
    assert (nodes["b"]["outputs"]["result"], nodes["c"]["outputs"]["result"]) == ("AB", "AC")
    with cluster.api_client() as api:
        left = (
            k8s.CoreV1Api(api)
            .list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={result['metadata']['name']}")
            .items
        )
    assert left == []
    stored = await kube_store.get("Workflow", namespace, result["metadata"]["name"])
    assert stored["status"]["phase"] == "Succeeded"


async def test_active_deadline_ends_the_pod(controller: Controller, namespace: str) -> None:
    template = {
        "name": "main",
        "activeDeadlineSeconds": 1,
        "container": {"image": "alpine", "command": ["sleep", "30"]},
    }
    result = await controller.run(wf(namespace, [template]))
    assert result["status"]["phase"] in ("Failed", "Error")
    node = by_display(result)[result["metadata"]["name"]]
    assert "deadline" in node["message"].lower()


async def test_retries_and_exit_handler(controller: Controller, namespace: str) -> None:
    manifest = wf(
        namespace,
        [
            {"name": "main", "retryStrategy": {"limit": "1"}, "container": {"image": "a", "command": ["false"]}},
            {"name": "bye", "container": {"image": "a", "command": ["echo", "{{workflow.status}}"]}},
        ],
        onExit="bye",
    )
    result = await controller.run(manifest)
    assert result["status"]["phase"] == "Failed"
    assert len(result["status"]["nodes"][result["metadata"]["name"]]["children"]) == 2
    assert by_display(result)["onExit"]["outputs"]["result"] == "Failed"


async def test_terminate_deletes_the_running_pod(
    controller: Controller, namespace: str, kube_store: KubeStore, cluster: KubeCluster, kubelet: TestKubelet
) -> None:
    created = await kube_store.create(
        wf(namespace, [{"name": "main", "container": {"image": "a", "command": ["sleep", "60"]}}])
    )
    name = created["metadata"]["name"]
    core = k8s.CoreV1Api(cluster.api_client())
    for _ in range(100):  # until the kubelet runs the step's Pod
        pods = core.list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={name}").items
        if pods and pods[0].status.phase == "Running":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the step's Pod never ran")
    for _ in range(5):
        current = await kube_store.get("Workflow", namespace, name)
        current["spec"]["shutdown"] = "Terminate"
        try:
            await kube_store.update(current)
            break
        except ConflictError:
            continue
    done = await controller.wait(namespace, name)
    assert done["status"]["phase"] in ("Failed", "Error")
    assert "Terminate" in done["status"]["message"]
    for _ in range(50):
        if not core.list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={name}").items:
            break
        await asyncio.sleep(0.1)
    assert core.list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={name}").items == []
