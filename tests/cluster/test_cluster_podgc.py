"""Pod GC in cluster mode (``spec.podGC``: strategy, labelSelector, deleteDelayDuration) and the
node-name annotation, on the real API server with the test kubelet.

The workflow-level strategies act when the executor is told the workflow finished
(``PodExecutor.workflow_finished``, which the controller calls with the final object); the tests
call it with the stored final object, as the controller does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubecluster import KubeCluster
from kubernetes import client as k8s

from eventbridge.executors.base import StepSpec
from eventbridge.executors.pod import (
    ANNOTATION_NODE_NAME,
    LABEL_COMPLETED,
    LABEL_WORKFLOW,
    PodExecutor,
    PodGC,
    build_pod,
    pod_gc,
    selector_matches,
    should_delete_pod,
)
from eventbridge.workflow.controller import Controller

Obj = dict[str, Any]


def wf(namespace: str, templates: list[Obj], **spec: Any) -> Obj:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "gc-", "namespace": namespace},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def say(name: str, text: str, *, labels: dict[str, str] | None = None, code: int = 0) -> Obj:
    template: Obj = {
        "name": name,
        "container": {"image": "alpine", "command": ["sh", "-c", f"echo {text}; exit {code}"]},
    }
    if labels:
        template["metadata"] = {"labels": labels}
    return template


def two_steps(second_code: int = 0) -> list[Obj]:
    """Two steps run in parallel; the second exits ``second_code``. ``keep`` is labelled gc=no."""
    return [
        {"name": "main", "steps": [[{"name": "a", "template": "a"}, {"name": "b", "template": "b"}]]},
        say("a", "A", labels={"gc": "yes"}),
        say("b", "B", labels={"gc": "no"}, code=second_code),
    ]


def pods_of(cluster: KubeCluster, namespace: str, workflow: str) -> list[k8s.V1Pod]:
    with cluster.api_client() as api:
        return list(
            k8s.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{LABEL_WORKFLOW}={workflow}").items
        )


async def finish(controller: Controller, executor: PodExecutor, manifest: Obj) -> tuple[Obj, str]:
    """Run the workflow to its end; the controller tells the executor it finished (which runs the
    workflow-level Pod GC). Returns (final object, name)."""
    result = await controller.run(manifest)
    return result, str(result["metadata"]["name"])


# ---------------------------------------------------------------------------------------------
# the decision, as Argo's table has it


@pytest.mark.parametrize(
    ("strategy", "step_phase", "workflow_phase", "deleted"),
    [
        ("", "Succeeded", "Succeeded", False),
        ("OnPodCompletion", "Failed", "", True),
        ("OnPodCompletion", "Succeeded", "", True),
        ("OnPodSuccess", "Succeeded", "", True),
        ("OnPodSuccess", "Failed", "", False),
        ("OnWorkflowCompletion", "Succeeded", "", False),  # a step ended: not yet
        ("OnWorkflowCompletion", "", "Failed", True),
        ("OnWorkflowCompletion", "", "Error", True),
        ("OnWorkflowSuccess", "Succeeded", "", False),
        ("OnWorkflowSuccess", "", "Failed", False),
        ("OnWorkflowSuccess", "", "Succeeded", True),
        ("OnWorkflowSuccess", "", "Running", False),
    ],
)
def test_gc_decision(strategy: str, step_phase: str, workflow_phase: str, deleted: bool) -> None:
    gc = PodGC(strategy)
    assert should_delete_pod(gc, {}, step_phase=step_phase, workflow_phase=workflow_phase) is deleted


def test_label_selector_matching() -> None:
    labels = {"app": "x", "tier": "db"}
    assert selector_matches(None, labels) and selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"app": "x"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "y"}}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "web"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}, labels)
    both = {"matchLabels": {"app": "x"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}
    assert not selector_matches(both, labels)  # every requirement must hold
    gc = PodGC("OnPodCompletion", {"matchLabels": {"app": "y"}})
    assert not should_delete_pod(gc, labels, step_phase="Succeeded")


def test_pod_gc_reads_the_spec_and_the_stored_template_spec() -> None:
    gc = pod_gc({"spec": {"podGC": {"strategy": "OnWorkflowSuccess", "deleteDelayDuration": "1m30s"}}})
    assert gc == PodGC("OnWorkflowSuccess", None, 90.0)
    stored = {"status": {"storedWorkflowTemplateSpec": {"podGC": {"strategy": "OnPodSuccess"}}}, "spec": {}}
    assert pod_gc(stored).strategy == "OnPodSuccess"
    assert pod_gc({"spec": {"podGC": {"strategy": "OnPodSuccess", "deleteDelayDuration": "soon"}}}).delay == 0.0
    assert pod_gc({"spec": {}}) == PodGC()


def test_node_name_annotation_comes_from_the_step() -> None:
    workflow = {"metadata": {"name": "wf", "namespace": "ns"}, "spec": {"templates": [say("a", "A")]}}
    spec = StepSpec("ns", "wf", "wf-123", "wf-a-123", ["echo"], template_name="a", node_name="wf[0].a")
    assert build_pod(spec, workflow)["metadata"]["annotations"][ANNOTATION_NODE_NAME] == "wf[0].a"
    without = StepSpec("ns", "wf", "wf-123", "wf-a-123", ["echo"], template_name="a")
    assert build_pod(without, workflow)["metadata"]["annotations"][ANNOTATION_NODE_NAME] == "wf-123"


# ---------------------------------------------------------------------------------------------
# on the real API server


async def test_on_workflow_completion_deletes_every_pod_of_a_failed_workflow(
    controller: Controller, pod_executor: PodExecutor, namespace: str, cluster: KubeCluster
) -> None:
    result, name = await finish(
        controller, pod_executor, wf(namespace, two_steps(second_code=1), podGC={"strategy": "OnWorkflowCompletion"})
    )
    assert result["status"]["phase"] == "Failed"
    assert pods_of(cluster, namespace, name) == []


async def test_on_workflow_success_keeps_the_pods_of_a_failed_workflow_and_deletes_a_succeeded_ones(
    controller: Controller, pod_executor: PodExecutor, namespace: str, cluster: KubeCluster
) -> None:
    spec = {"podGC": {"strategy": "OnWorkflowSuccess"}}
    failed, failed_name = await finish(controller, pod_executor, wf(namespace, two_steps(second_code=1), **spec))
    assert failed["status"]["phase"] == "Failed"
    kept = pods_of(cluster, namespace, failed_name)
    assert len(kept) == 2
    assert all(p.metadata.labels[LABEL_COMPLETED] == "true" for p in kept)

    succeeded, name = await finish(controller, pod_executor, wf(namespace, two_steps(), **spec))
    assert succeeded["status"]["phase"] == "Succeeded"
    assert pods_of(cluster, namespace, name) == []
    assert len(pods_of(cluster, namespace, failed_name)) == 2


async def test_label_selector_limits_which_pods_are_deleted(
    controller: Controller, pod_executor: PodExecutor, namespace: str, cluster: KubeCluster
) -> None:
    gc = {"strategy": "OnWorkflowCompletion", "labelSelector": {"matchLabels": {"gc": "yes"}}}
    result, name = await finish(controller, pod_executor, wf(namespace, two_steps(), podGC=gc))
    assert result["status"]["phase"] == "Succeeded"
    left = pods_of(cluster, namespace, name)
    assert [p.metadata.labels["gc"] for p in left] == ["no"]

    # The selector also applies to the per-Pod strategies, and to labels from spec.podMetadata.
    gc = {
        "strategy": "OnPodCompletion",
        "labelSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["blue"]}]},
    }
    result, name = await finish(
        controller,
        pod_executor,
        wf(namespace, two_steps(), podGC=gc, podMetadata={"labels": {"team": "blue"}}),
    )
    assert result["status"]["phase"] == "Succeeded"
    assert pods_of(cluster, namespace, name) == []


async def test_delete_delay_duration_keeps_the_pod_for_a_while(
    controller: Controller, pod_executor: PodExecutor, namespace: str, cluster: KubeCluster
) -> None:
    gc = {"strategy": "OnPodCompletion", "deleteDelayDuration": "1500ms"}
    result = await controller.run(wf(namespace, [say("main", "hi")], podGC=gc))
    ended = time.monotonic()
    name = result["metadata"]["name"]
    assert result["status"]["phase"] == "Succeeded"
    assert len(pods_of(cluster, namespace, name)) == 1  # still there right after the step
    while pods_of(cluster, namespace, name):
        assert time.monotonic() - ended < 10, "the Pod was not deleted after its delay"
        await asyncio.sleep(0.2)
    assert time.monotonic() - ended >= 1.0
