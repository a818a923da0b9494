"""Workflow operations (suspend, resume, set, stop, terminate, retry, resubmit, submit --from) through
the real SqliteStore, with a real Controller running the workflows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from workflow_helpers import Obj, by_display, finished, node_running, phase, sh, step, steps, wait_for, wf

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow import operations as ops
from eventbridge.workflow.controller import Controller
from eventbridge.workflow.operations import retry_status


def approval_workflow() -> Obj:
    return wf(
        [
            steps(
                "main",
                [step("approve", "approve")],
                [
                    step(
                        "use",
                        "echo",
                        arguments={
                            "parameters": [{"name": "m", "value": "{{steps.approve.outputs.parameters.answer}}"}]
                        },
                    )
                ],
            ),
            {
                "name": "approve",
                "suspend": {},
                "outputs": {
                    "parameters": [
                        {"name": "answer", "valueFrom": {"supplied": {}}, "globalName": "answer"},
                        {"name": "reason", "valueFrom": {"supplied": {}, "default": "none given"}},
                    ]
                },
            },
            sh("echo", "echo {{inputs.parameters.m}}", inputs={"parameters": [{"name": "m"}]}),
        ]
    )


async def test_workflow_level_suspend_holds_new_steps_until_resumed(controller: Controller, store: SqliteStore) -> None:
    manifest = wf(
        [
            steps("main", [step("a", "quick")], [step("b", "quick")]),
            sh("quick", "echo hi"),
        ],
        suspend=True,
    )
    created = await store.create(manifest)
    name = created["metadata"]["name"]
    await asyncio.sleep(0.4)
    held = await store.get("Workflow", "default", name)
    assert phase(held) == "Running"
    assert not [n for n in by_display(held).values() if n["type"] == "Pod"]
    await ops.resume(store, "default", name)
    done = await wait_for(store, name, finished)
    assert phase(done) == "Succeeded"
    assert "suspend" not in done["spec"]


async def test_suspend_while_running_stops_the_next_step_from_starting(
    controller: Controller, store: SqliteStore
) -> None:
    manifest = wf(
        [steps("main", [step("a", "slow")], [step("b", "slow")]), sh("slow", "sleep 0.3")],
    )
    name = (await store.create(manifest))["metadata"]["name"]
    await wait_for(store, name, node_running("a"))
    await ops.suspend(store, "default", name)
    await wait_for(store, name, lambda o: by_display(o).get("a", {}).get("phase") == "Succeeded")
    await asyncio.sleep(0.5)
    held = await store.get("Workflow", "default", name)
    assert "b" not in by_display(held)
    assert phase(held) == "Running"
    await ops.resume(store, "default", name)
    assert phase(await wait_for(store, name, finished)) == "Succeeded"


async def test_resume_supplies_suspend_outputs_and_defaults(controller: Controller, store: SqliteStore) -> None:
    name = (await store.create(approval_workflow()))["metadata"]["name"]
    waiting = await wait_for(store, name, node_running("approve"))
    node = by_display(waiting)["approve"]
    assert [p["name"] for p in node["outputs"]["parameters"]] == ["answer", "reason"]
    with pytest.raises(InvalidError, match="has not been set and has no default"):
        await ops.resume(store, "default", name)
    with pytest.raises(InvalidError, match="not expecting output parameter 'bogus'"):
        await ops.resume(store, "default", name, output_parameters={"bogus": "x"})
    await ops.resume(store, "default", name, output_parameters={"answer": "yes"})
    done = await wait_for(store, name, finished)
    assert phase(done) == "Succeeded", done["status"]
    nodes = by_display(done)
    assert {p["name"]: p["value"] for p in nodes["approve"]["outputs"]["parameters"]} == {
        "answer": "yes",
        "reason": "none given",
    }
    assert nodes["use"]["outputs"]["result"] == "yes"
    assert done["status"]["outputs"]["parameters"] == [{"name": "answer", "value": "yes"}]


async def test_resume_with_node_selector_resumes_only_matching_nodes(
    controller: Controller, store: SqliteStore
) -> None:
    manifest = wf(
        [
            steps("main", [step("first", "wait"), step("second", "wait")]),
            {"name": "wait", "suspend": {}},
        ]
    )
    name = (await store.create(manifest))["metadata"]["name"]
    await wait_for(store, name, lambda o: node_running("first")(o) and node_running("second")(o))
    await ops.resume(store, "default", name, node_field_selector="displayName=first")
    partly = await wait_for(store, name, lambda o: by_display(o)["first"]["phase"] == "Succeeded")
    assert by_display(partly)["second"]["phase"] == "Running"
    with pytest.raises(InvalidError, match="no active suspend node"):
        await ops.resume(store, "default", name, node_field_selector="displayName=first")
    await ops.resume(store, "default", name, node_field_selector="displayName!=first,templateName=wait")
    assert phase(await wait_for(store, name, finished)) == "Succeeded"


async def test_set_node_outputs_then_phase(controller: Controller, store: SqliteStore) -> None:
    name = (await store.create(approval_workflow()))["metadata"]["name"]
    await wait_for(store, name, node_running("approve"))
    await ops.set_node(store, "default", name, "displayName=approve", output_parameters={"answer": "set"})
    with pytest.raises(InvalidError, match="already set"):
        await ops.set_node(store, "default", name, "displayName=approve", output_parameters={"answer": "x"})
    await asyncio.sleep(0.2)  # the running controller keeps the supplied value in its own writes
    still = await store.get("Workflow", "default", name)
    assert by_display(still)["approve"]["phase"] == "Running"
    assert by_display(still)["approve"]["outputs"]["parameters"][0] == {
        "name": "answer",
        "value": "set",
        "globalName": "answer",
    }
    await ops.set_node(store, "default", name, "displayName=approve", phase="Succeeded", message="ok")
    done = await wait_for(store, name, finished)
    assert phase(done) == "Succeeded"
    assert by_display(done)["use"]["outputs"]["result"] == "set"
    assert by_display(done)["approve"]["message"] == "ok"


async def test_stop_runs_exit_handler_and_terminate_does_not(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    names = {}
    for strategy in ("stop", "terminate"):
        marker = shared_dir / strategy
        manifest = wf(
            [
                steps("main", [step("long", "long")]),
                sh("long", "sleep 30"),
                sh("exit", f"echo ran > {marker}"),
            ],
            onExit="exit",
        )
        names[strategy] = (await store.create(manifest))["metadata"]["name"]
    for strategy, name in names.items():
        await wait_for(store, name, node_running("long"))
        await (ops.stop if strategy == "stop" else ops.terminate)(store, "default", name)
    for strategy, name in names.items():
        done = await wait_for(store, name, finished)
        assert phase(done) == "Failed"
        assert done["status"]["message"] == f"Stopped with strategy '{strategy.capitalize()}'"
        assert (shared_dir / strategy).exists() is (strategy == "stop")
    with pytest.raises(InvalidError, match="already finished"):
        await ops.terminate(store, "default", names["stop"])


async def test_stop_with_node_selector_fails_the_suspend_node(controller: Controller, store: SqliteStore) -> None:
    name = (await store.create(approval_workflow()))["metadata"]["name"]
    await wait_for(store, name, node_running("approve"))
    await ops.stop(store, "default", name, node_field_selector="displayName=approve", message="rejected")
    done = await wait_for(store, name, finished)
    assert phase(done) == "Failed"
    assert by_display(done)["approve"]["message"] == "rejected"


def counting_workflow(shared: Path) -> Obj:
    """a counts its runs; b fails until the file ``shared/ok`` exists."""
    return wf(
        [
            steps("main", [step("a", "count")], [step("b", "gate")]),
            sh("count", f"echo x >> {shared}/a-runs"),
            sh("gate", f"echo x >> {shared}/b-runs; test -e {shared}/ok"),
        ]
    )


async def test_retry_reruns_only_failed_nodes(controller: Controller, store: SqliteStore, shared_dir: Path) -> None:
    name = (await store.create(counting_workflow(shared_dir)))["metadata"]["name"]
    failed = await wait_for(store, name, finished)
    assert phase(failed) == "Failed"
    with pytest.raises(NotFoundError):
        await ops.retry(store, "default", "no-such-workflow")
    (shared_dir / "ok").touch()
    await ops.retry(store, "default", name)
    done = await wait_for(store, name, lambda o: phase(o) == "Succeeded")
    assert (shared_dir / "a-runs").read_text().count("x") == 1
    assert (shared_dir / "b-runs").read_text().count("x") == 2
    assert "finishedAt" in done["status"]
    with pytest.raises(InvalidError, match="restart_successful and a node field selector"):
        await ops.retry(store, "default", name)
    await ops.retry(store, "default", name, restart_successful=True, node_field_selector="displayName=a")
    await wait_for(
        store, name, lambda o: phase(o) == "Succeeded" and (shared_dir / "a-runs").read_text().count("x") == 2
    )
    # b came after a, so it ran again too
    assert (shared_dir / "b-runs").read_text().count("x") == 3


async def test_resubmit_plain_and_memoized(controller: Controller, store: SqliteStore, shared_dir: Path) -> None:
    name = (await store.create(counting_workflow(shared_dir)))["metadata"]["name"]
    assert phase(await wait_for(store, name, finished)) == "Failed"
    (shared_dir / "ok").touch()
    memo = await ops.resubmit(store, "default", name, memoized=True)
    memo_done = await wait_for(store, memo["metadata"]["name"], finished)
    assert phase(memo_done) == "Succeeded", memo_done["status"]
    assert memo_done["metadata"]["labels"][ops.LABEL_RESUBMITTED_FROM] == name
    assert by_display(memo_done)["a"]["phase"] == "Skipped"
    assert (shared_dir / "a-runs").read_text().count("x") == 1
    plain = await ops.resubmit(store, "default", name)
    assert phase(await wait_for(store, plain["metadata"]["name"], finished)) == "Succeeded"
    assert (shared_dir / "a-runs").read_text().count("x") == 2
    with pytest.raises(InvalidError, match="Failed or Error"):
        await ops.resubmit(store, "default", plain["metadata"]["name"], memoized=True)


async def test_submit_from_templates_and_cron(controller: Controller, store: SqliteStore) -> None:
    template = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "greet", "namespace": "default"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [sh("main", "echo hello {{workflow.parameters.who}}")],
        },
    }
    await store.create(template)
    cluster = {**template, "kind": "ClusterWorkflowTemplate", "metadata": {"name": "cluster-greet"}}
    await store.create(cluster)
    cron = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {
            "schedules": ["0 1 * * *"],
            "workflowMetadata": {"labels": {"team": "ops"}},
            "workflowSpec": template["spec"],
        },
    }
    await store.create(cron)
    from_template = await ops.submit_from(store, "WorkflowTemplate", "default", "greet", {"who": "eb"}, {"x": "1"})
    from_cluster = await ops.submit_from(store, "clusterworkflowtemplate", "default", "cluster-greet")
    from_cron = await ops.submit_from(store, "CronWorkflow", "default", "nightly", {"who": "cron"})
    assert from_template["spec"]["workflowTemplateRef"] == {"name": "greet"}
    assert from_template["metadata"]["labels"] == {"x": "1", ops.LABEL_WORKFLOW_TEMPLATE: "greet"}
    assert from_cluster["spec"]["workflowTemplateRef"] == {"name": "cluster-greet", "clusterScope": True}
    assert from_cron["metadata"]["labels"] == {"team": "ops", ops.LABEL_CRON_WORKFLOW: "nightly"}
    assert from_cron["metadata"]["name"].startswith("nightly-")
    results = {}
    for created in (from_template, from_cluster, from_cron):
        done = await wait_for(store, created["metadata"]["name"], finished)
        assert phase(done) == "Succeeded", done["status"]
        results[created["metadata"]["name"]] = next(
            n["outputs"]["result"] for n in by_display(done).values() if n["type"] == "Pod"
        )
    assert sorted(results.values()) == ["hello cron", "hello eb", "hello world"]
    with pytest.raises(InvalidError, match="cannot submit from"):
        await ops.submit_from(store, "Sensor", "default", "x")


def test_field_selector_parsing() -> None:
    assert ops.parse_field_selector("a=b, c!=d,e==f") == [
        ("a", True, "b"),
        ("c", False, "d"),
        ("e", True, "f"),
    ]
    for bad in ("", "novalue", ","):
        with pytest.raises(InvalidError):
            ops.parse_field_selector(bad)
    node = {"displayName": "x", "inputs": {"parameters": [{"name": "p", "value": "1"}]}}
    assert ops.selector_matches(ops.parse_field_selector("inputs.parameters.p.value=1"), node)
    assert not ops.selector_matches(ops.parse_field_selector("displayName=x,phase=Running"), node)


def test_retry_status_removes_failed_nodes_and_what_followed_them() -> None:
    def node(
        nid: str,
        name: str,
        kind: str,
        status: str,
        boundary: str | None = None,
        children: list[str] | None = None,
    ) -> Obj:
        data: Obj = {"id": nid, "name": name, "displayName": name, "type": kind, "phase": status}
        if boundary:
            data["boundaryID"] = boundary
        if children:
            data["children"] = children
        return data

    status = {
        "phase": "Failed",
        "finishedAt": "x",
        "nodes": {
            "w": node("w", "w", "DAG", "Failed", children=["a"]),
            "a": node("a", "w.a", "Pod", "Succeeded", "w", ["b", "c"]),
            "b": node("b", "w.b", "Retry", "Failed", "w", ["b0", "d"]),
            "b0": node("b0", "w.b(0)", "Pod", "Failed", "b"),
            "c": node("c", "w.c", "Pod", "Succeeded", "w"),
            "d": node("d", "w.d", "Skipped", "Omitted", "w"),
            "x": node("x", "w.onExit", "Pod", "Succeeded"),
        },
    }
    fresh = retry_status("w", status)
    assert sorted(fresh["nodes"]) == ["a", "c", "w"]
    assert fresh["nodes"]["w"]["phase"] == "Running"
    assert fresh["phase"] == "Running" and "finishedAt" not in fresh


async def test_stopping_a_suspended_workflow_still_runs_its_exit_handler(
    controller: Controller, store: SqliteStore, shared_dir: Path
) -> None:
    manifest = wf(
        [steps("main", [step("a", "quick")]), sh("quick", "true"), sh("exit", f"touch {shared_dir}/exit")],
        suspend=True,
        onExit="exit",
    )
    name = (await store.create(manifest))["metadata"]["name"]
    await wait_for(store, name, lambda o: phase(o) == "Running")
    await ops.stop(store, "default", name)
    done = await wait_for(store, name, finished)
    assert phase(done) == "Failed"
    assert (shared_dir / "exit").exists()
    assert "a" not in by_display(done)
