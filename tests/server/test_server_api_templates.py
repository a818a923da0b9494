"""Workflow templates, cluster workflow templates and cron workflows over real HTTP and a real SqliteStore."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from eventbridge.store.sqlite import SqliteStore


def template(name: str, command: str = "echo hi") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "a", "command": ["sh", "-c", command]}}],
        },
    }


def cron(name: str, schedule: str = "*/5 * * * *") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "workflowSpec": {
                "entrypoint": "main",
                "templates": [{"name": "main", "container": {"image": "a", "command": ["true"]}}],
            },
        },
    }


async def test_workflow_template_crud_and_lint(client: TestClient, store: SqliteStore) -> None:
    created = await client.post(
        "/api/v1/workflow-templates/default", json={"namespace": "default", "template": template("t1")}
    )
    assert created.status == 200, await created.text()
    body = await created.json()
    assert body["kind"] == "WorkflowTemplate" and body["metadata"]["namespace"] == "default"
    listed = await (await client.get("/api/v1/workflow-templates/default")).json()
    assert [t["metadata"]["name"] for t in listed["items"]] == ["t1"]
    assert (await (await client.get("/api/v1/workflow-templates/default?namePattern=zz")).json())["items"] == []

    updated = template("t1", "echo changed")
    response = await client.put("/api/v1/workflow-templates/default/t1", json={"template": updated})
    assert response.status == 200, await response.text()
    got = await (await client.get("/api/v1/workflow-templates/default/t1")).json()
    assert got["spec"]["templates"][0]["container"]["command"][-1] == "echo changed"
    assert got["metadata"]["uid"] == body["metadata"]["uid"]

    stale = template("t1")
    stale["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
    conflict = await client.put("/api/v1/workflow-templates/default/t1", json={"template": stale})
    assert conflict.status == 409

    broken = template("bad")
    broken["spec"]["entrypoint"] = "nowhere"
    lint = await client.post("/api/v1/workflow-templates/default/lint", json={"template": broken})
    assert lint.status == 400
    assert (
        await client.post("/api/v1/workflow-templates/default/lint", json={"template": template("ok")})
    ).status == 200

    assert (await client.delete("/api/v1/workflow-templates/default/t1")).status == 200
    assert (await client.get("/api/v1/workflow-templates/default/t1")).status == 404
    assert await store.list("WorkflowTemplate") == []


async def test_cluster_workflow_templates_have_no_namespace(client: TestClient) -> None:
    response = await client.post("/api/v1/cluster-workflow-templates", json={"template": template("shared")})
    assert response.status == 200, await response.text()
    assert "namespace" not in (await response.json())["metadata"]
    again = await client.post("/api/v1/cluster-workflow-templates", json={"template": template("shared")})
    assert again.status == 409
    got = await (await client.get("/api/v1/cluster-workflow-templates/shared")).json()
    assert got["kind"] == "ClusterWorkflowTemplate" and "namespace" not in got["metadata"]
    listed = await (await client.get("/api/v1/cluster-workflow-templates")).json()
    assert [t["metadata"]["name"] for t in listed["items"]] == ["shared"]
    update = await client.put(
        "/api/v1/cluster-workflow-templates/shared", json={"template": template("shared", "echo 2")}
    )
    assert update.status == 200
    submitted = await client.post(
        "/api/v1/workflows/team-a/submit",
        json={"resourceKind": "ClusterWorkflowTemplate", "resourceName": "shared"},
    )
    assert submitted.status == 200
    assert (await submitted.json())["spec"]["workflowTemplateRef"] == {"name": "shared", "clusterScope": True}
    assert (
        await client.post("/api/v1/cluster-workflow-templates/lint", json={"template": template("x")})
    ).status == 200
    assert (await client.delete("/api/v1/cluster-workflow-templates/shared")).status == 200
    assert (await client.get("/api/v1/cluster-workflow-templates/shared")).status == 404


async def test_cron_workflows_crud_suspend_resume(client: TestClient, store: SqliteStore) -> None:
    response = await client.post(
        "/api/v1/cron-workflows/default", json={"namespace": "default", "cronWorkflow": cron("nightly")}
    )
    assert response.status == 200, await response.text()
    listed = await (await client.get("/api/v1/cron-workflows/default")).json()
    assert [c["metadata"]["name"] for c in listed["items"]] == ["nightly"]
    suspended = await client.put("/api/v1/cron-workflows/default/nightly/suspend", json={})
    assert (await suspended.json())["spec"]["suspend"] is True
    assert (await store.get("CronWorkflow", "default", "nightly"))["spec"]["suspend"] is True
    resumed = await client.put("/api/v1/cron-workflows/default/nightly/resume", json={})
    assert (await resumed.json())["spec"]["suspend"] is False
    bad = await client.post("/api/v1/cron-workflows/default/lint", json={"cronWorkflow": cron("bad", "not a schedule")})
    assert bad.status == 400
    submitted = await client.post(
        "/api/v1/workflows/default/submit", json={"resourceKind": "cronwf", "resourceName": "nightly"}
    )
    assert submitted.status == 200
    assert (await submitted.json())["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"
    assert (await client.delete("/api/v1/cron-workflows/default/nightly")).status == 200
    assert (await client.get("/api/v1/cron-workflows/default/nightly")).status == 404
