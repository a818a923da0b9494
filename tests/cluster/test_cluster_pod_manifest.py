"""The Pod the PodExecutor creates for a step: Argo's labels, owner reference, pod-level fields."""

from __future__ import annotations

from typing import Any

import pytest

from eventbridge.errors import InvalidError
from eventbridge.executors.base import OutputParameter, StepSpec
from eventbridge.executors.pod import (
    ANNOTATION_NODE_ID,
    ANNOTATION_NODE_NAME,
    LABEL_WORKFLOW,
    WRAPPER_SH,
    build_pod,
    strategic_merge,
)


def workflow(template: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "wf", "namespace": "ns", "uid": "uid-1"},
        "spec": {"entrypoint": "main", "templates": [template], **spec},
        "status": {"nodes": {"wf-1": {"name": "wf[0].step"}}},
    }


def step(**extra: Any) -> StepSpec:
    values: dict[str, Any] = {
        "namespace": "ns",
        "workflow": "wf",
        "node_id": "wf-1",
        "pod_name": "wf-main-1",
        "argv": ["echo", "hi"],
        "template_name": "main",
        "env": {"A": "1"},
        **extra,
    }
    return StepSpec(**values)


def test_labels_annotations_owner_and_wrapper() -> None:
    pod = build_pod(step(), workflow({"name": "main", "container": {"image": "alpine"}}), wait_image="eb:1")
    meta = pod["metadata"]
    assert meta["name"] == "wf-main-1" and meta["namespace"] == "ns"
    assert meta["labels"][LABEL_WORKFLOW] == "wf"
    assert meta["annotations"][ANNOTATION_NODE_ID] == "wf-1"
    assert meta["annotations"][ANNOTATION_NODE_NAME] == "wf[0].step"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Workflow", "wf", "uid-1", True)
    main, wait = pod["spec"]["containers"]
    assert main["image"] == "alpine" and wait["image"] == "eb:1"
    assert main["command"] == ["/bin/sh", "-c", WRAPPER_SH, "eventbridge-wrapper", "echo", "hi"]
    assert {"name": "A", "value": "1"} in main["env"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert "serviceAccountName" not in pod["spec"]


def test_pod_level_fields_template_over_workflow() -> None:
    template = {
        "name": "main",
        "serviceAccountName": "tmpl-sa",
        "nodeSelector": {"disk": "ssd"},
        "activeDeadlineSeconds": 30,
        "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "container": {
            "image": "alpine",
            "resources": {"limits": {"memory": "64Mi"}},
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
    }
    pod = build_pod(
        step(outputs=[OutputParameter("out", "/tmp/out")]),
        workflow(
            template,
            serviceAccountName="wf-sa",
            nodeSelector={"disk": "hdd"},
            tolerations=[{"key": "k", "operator": "Exists"}],
            podMetadata={"labels": {"team": "wf", "env": "prod"}},
            volumes=[{"name": "shared", "emptyDir": {}}],
        ),
    )
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "tmpl-sa"
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert spec["activeDeadlineSeconds"] == 30
    assert [v["name"] for v in spec["volumes"]] == ["shared", "scratch", "eventbridge-var"]
    assert pod["metadata"]["labels"]["team"] == "a" and pod["metadata"]["labels"]["env"] == "prod"
    assert pod["metadata"]["annotations"]["note"] == "x"
    main = spec["containers"][0]
    assert main["resources"] == {"limits": {"memory": "64Mi"}}
    assert [m["mountPath"] for m in main["volumeMounts"]] == ["/scratch", "/var/run/eventbridge"]
    assert {"name": "EVENTBRIDGE_OUTPUT_PATHS", "value": "/tmp/out"} in main["env"]


def test_pod_spec_patch_merges_containers_by_name() -> None:
    template = {
        "name": "main",
        "podSpecPatch": '{"containers": [{"name": "main", "resources": {"limits": {"cpu": "1"}}}]}',
        "container": {"image": "alpine"},
    }
    pod = build_pod(step(), workflow(template, podSpecPatch="priorityClassName: high"))
    assert pod["spec"]["priorityClassName"] == "high"
    main = pod["spec"]["containers"][0]
    assert main["resources"] == {"limits": {"cpu": "1"}} and main["image"] == "alpine"
    assert len(pod["spec"]["containers"]) == 2
    with pytest.raises(InvalidError):
        build_pod(step(), workflow({**template, "podSpecPatch": "[1, 2]"}))


def test_timeout_becomes_active_deadline_and_script_goes_in_env() -> None:
    pod = build_pod(step(timeout=2.5, script="print(1)"), workflow({"name": "main", "script": {"image": "py"}}))
    assert pod["spec"]["activeDeadlineSeconds"] == 3
    assert {"name": "EVENTBRIDGE_SCRIPT", "value": "print(1)"} in pod["spec"]["containers"][0]["env"]


def test_strategic_merge() -> None:
    base = {"a": {"b": 1, "c": 2}, "list": [1, 2], "named": [{"name": "x", "v": 1}], "gone": 1}
    patch = {"a": {"c": 3}, "list": [3], "named": [{"name": "x", "w": 2}, {"name": "y"}], "gone": None}
    assert strategic_merge(base, patch) == {
        "a": {"b": 1, "c": 3},
        "list": [3],
        "named": [{"name": "x", "v": 1, "w": 2}, {"name": "y"}],
    }
