"""argo-server's workflow API over real HTTP, a real SqliteStore and (where steps run) a real Controller."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from server_helpers import phase, read_sse, steps_workflow, wait_phase, workflow

from eventbridge.server.app import ApiContext, build_app
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


async def wait_suspended(store: SqliteStore, name: str) -> None:
    """Until workflow ``name`` has a running Suspend node."""
    async with asyncio.timeout(10):
        while True:
            nodes = ((await store.get("Workflow", "default", name)).get("status") or {}).get("nodes", {})
            if any(n.get("type") == "Suspend" and n.get("phase") == "Running" for n in nodes.values()):
                return
            await asyncio.sleep(0.05)


async def create(client: TestClient, wf: dict, namespace: str = "default") -> dict:
    wf["metadata"]["namespace"] = namespace
    response = await client.post(f"/api/v1/workflows/{namespace}", json={"workflow": wf})
    assert response.status == 200, await response.text()
    return await response.json()


# --------------------------------------------------------------------------- misc


async def test_version_info_userinfo_have_argo_server_shapes(client: TestClient) -> None:
    version = await (await client.get("/api/v1/version")).json()
    assert version["version"].startswith("v") and {"gitCommit", "platform", "goVersion"} <= set(version)
    info = await (await client.get("/api/v1/info")).json()
    assert info["managedNamespace"] == "" and info["links"] == [] and info["modals"] == {}
    user = await (await client.get("/api/v1/userinfo")).json()
    assert user["subject"] == ""


async def test_openapi_lists_what_is_served(client: TestClient) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    assert "put" in paths["/api/v1/workflows/{namespace}/{name}/suspend"]
    assert {"get", "post"} <= set(paths["/api/v1/workflows/{namespace}"])
    assert "get" in paths["/api/v1/workflow-events/{namespace}"]
    assert "post" in paths["/api/v1/event-log/{offset}/replay"]
    assert "put" in paths["/api/v1/cron-workflows/{namespace}/{name}/resume"]
    assert paths["/api/v1/workflows/{namespace}/{name}"]["get"]["parameters"][0]["in"] == "path"


# --------------------------------------------------------------------------- bad input


async def test_bad_input_gets_json_errors_with_grpc_codes(client: TestClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status == 404
    assert (await response.json())["code"] == 5

    response = await client.post(
        "/api/v1/workflows/default", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    body = await response.json()
    assert body["code"] == 3 and "not valid JSON" in body["message"]

    response = await client.post("/api/v1/workflows/default", json=["a", "list"])
    assert response.status == 400

    response = await client.post("/api/v1/workflows/default", json={"workflow": {**workflow("x"), "kind": "Pod"}})
    assert response.status == 400 and "kind must be Workflow" in (await response.json())["message"]

    wf = workflow("x")
    wf["metadata"]["namespace"] = "other"
    response = await client.post("/api/v1/workflows/default", json={"workflow": wf})
    assert response.status == 400 and "does not match" in (await response.json())["message"]

    for bad in ("Upper", "a..b%2F..", "-dash", "x" * 300):
        response = await client.get(f"/api/v1/workflows/default/{bad}")
        assert response.status in (400, 404), bad
        assert "code" in await response.json()

    response = await client.get("/api/v1/workflows/default/does-not-exist")
    assert response.status == 404 and (await response.json())["code"] == 5

    response = await client.patch("/api/v1/workflows/default/x")
    assert response.status == 405 and "GET" in response.headers["Allow"]


async def test_path_traversal_names_are_rejected(client: TestClient) -> None:
    response = await client.get("/api/v1/workflows/default/..%2F..%2Fetc")
    assert response.status == 400
    assert "RFC 1123" in (await response.json())["message"]


async def test_bodies_over_the_limit_get_413(make_client) -> None:  # type: ignore[no-untyped-def]
    client = await make_client(max_body_bytes=10_000)
    wf = workflow("big")
    wf["metadata"]["annotations"] = {"x": "y" * 20_000}
    response = await client.post("/api/v1/workflows/default", json={"workflow": wf})
    assert response.status == 413
    assert (await response.json())["code"] == 8


async def test_unknown_body_fields_are_tolerated_like_argo_server(client: TestClient) -> None:
    response = await client.post(
        "/api/v1/workflows/default", json={"workflow": workflow("tolerant"), "instanceID": "", "somethingNew": 1}
    )
    assert response.status == 200


async def test_duplicate_name_is_409(client: TestClient) -> None:
    await create(client, workflow("twice"))
    response = await client.post("/api/v1/workflows/default", json={"workflow": workflow("twice")})
    assert response.status == 409 and (await response.json())["code"] == 6


# --------------------------------------------------------------------------- CRUD, selectors


async def test_create_get_delete_and_server_dry_run(client: TestClient, store: SqliteStore) -> None:
    dry = await client.post("/api/v1/workflows/default", json={"workflow": workflow("dry"), "serverDryRun": True})
    assert dry.status == 200
    assert await store.list("Workflow") == []
    created = await create(client, workflow(labels={"app": "ci"}))
    name = created["metadata"]["name"]
    assert name.startswith("test-") and created["metadata"]["uid"]
    got = await (await client.get(f"/api/v1/workflows/default/{name}")).json()
    assert got["metadata"]["labels"] == {"app": "ci"}
    projected = await (
        await client.get(f"/api/v1/workflows/default/{name}?fields=metadata.name,spec.entrypoint")
    ).json()
    assert projected == {"metadata": {"name": name}, "spec": {"entrypoint": "main"}}
    assert (await client.delete(f"/api/v1/workflows/default/{name}")).status == 200
    assert (await client.get(f"/api/v1/workflows/default/{name}")).status == 404


async def test_list_label_and_field_selectors(client: TestClient, store: SqliteStore) -> None:
    await create(client, workflow("a1", labels={"app": "ci", "env": "prod"}))
    await create(client, workflow("a2", labels={"app": "ci", "env": "dev"}))
    await create(client, workflow("b1", labels={"app": "web"}))
    await create(client, workflow("other-ns", labels={"app": "ci"}), namespace="team-b")
    finished = await store.get("Workflow", "default", "b1")
    finished["status"] = {"phase": "Succeeded"}
    await store.update(finished)

    async def names(query: str, path: str = "/api/v1/workflows/default") -> list[str]:
        response = await client.get(f"{path}?{query}")
        assert response.status == 200, await response.text()
        return sorted(item["metadata"]["name"] for item in (await response.json())["items"])

    assert await names("listOptions.labelSelector=app%3Dci") == ["a1", "a2"]
    assert await names("listOptions.labelSelector=app%3D%3Dci,env!%3Dprod") == ["a2"]
    assert await names("listOptions.labelSelector=env+in+(prod,staging)") == ["a1"]
    assert await names("listOptions.labelSelector=env+notin+(prod)") == ["a2", "b1"]
    assert await names("listOptions.labelSelector=env") == ["a1", "a2"]
    assert await names("listOptions.labelSelector=!env") == ["b1"]
    assert await names("listOptions.fieldSelector=metadata.name%3Da2") == ["a2"]
    assert await names("listOptions.fieldSelector=status.phase%3DSucceeded") == ["b1"]
    assert await names("listOptions.fieldSelector=status.phase!%3DSucceeded") == ["a1", "a2"]
    assert await names("listOptions.labelSelector=app%3Dci", "/api/v1/workflows/") == ["a1", "a2", "other-ns"]
    assert await names("listOptions.fieldSelector=metadata.namespace%3Dteam-b", "/api/v1/workflows/") == ["other-ns"]

    bad = await client.get("/api/v1/workflows/default?listOptions.labelSelector=app+in+(x")
    assert bad.status == 400 and "parentheses" in (await bad.json())["message"]


async def test_list_pages_with_limit_and_continue_and_projects_fields(client: TestClient) -> None:
    for index in range(5):
        await create(client, workflow(f"page-{index}"))
    seen: list[str] = []
    token = ""
    while True:
        query = "listOptions.limit=2" + (f"&listOptions.continue={token}" if token else "")
        body = await (await client.get(f"/api/v1/workflows/default?{query}")).json()
        seen += [item["metadata"]["name"] for item in body["items"]]
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert sorted(seen) == [f"page-{i}" for i in range(5)] and len(seen) == 5
    body = await (await client.get("/api/v1/workflows/default?fields=-items.spec,-items.metadata.uid")).json()
    assert all("spec" not in item and "uid" not in item["metadata"] for item in body["items"])
    assert all(item["metadata"]["name"] for item in body["items"])


async def test_lint_reports_problems_and_echoes_a_valid_workflow(client: TestClient, store: SqliteStore) -> None:
    good = await client.post("/api/v1/workflows/default/lint", json={"workflow": workflow("lint-me")})
    assert good.status == 200 and (await good.json())["metadata"]["name"] == "lint-me"
    broken = workflow("broken")
    broken["spec"]["entrypoint"] = "missing"
    bad = await client.post("/api/v1/workflows/default/lint", json={"workflow": broken})
    assert bad.status == 400 and "missing" in (await bad.json())["message"]
    assert await store.list("Workflow") == []


# --------------------------------------------------------------------------- running workflows


async def test_workflow_runs_and_its_logs_stream_as_ndjson_and_sse(
    client: TestClient, store: SqliteStore, controller: Controller
) -> None:
    created = await create(client, workflow("logged", script="echo line-one; echo line-two"))
    await wait_phase(store, created["metadata"]["name"], {"Succeeded"})
    response = await client.get("/api/v1/workflows/default/logged/log?logOptions.container=main")
    lines = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [entry["result"]["content"] for entry in lines] == ["line-one", "line-two"]
    pod = lines[0]["result"]["podName"]
    messages = await read_sse(client, f"/api/v1/workflows/default/logged/{pod}/log?grep=two", 1)
    assert messages == [{"result": {"content": "line-two", "podName": pod}}]
    tail = await client.get("/api/v1/workflows/default/logged/log?logOptions.tailLines=1")
    assert [json.loads(x)["result"]["content"] for x in (await tail.text()).splitlines()] == ["line-two"]


async def test_follow_streams_lines_while_the_step_runs(
    client: TestClient, store: SqliteStore, controller: Controller
) -> None:
    await create(client, workflow("follow", script="echo first; sleep 0.6; echo second"))
    await wait_phase(store, "follow", {"Running"})
    contents: list[str] = []
    async with asyncio.timeout(15):
        async with client.get(
            "/api/v1/workflows/default/follow/log?logOptions.follow=true", headers={"Accept": "text/event-stream"}
        ) as response:
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    contents.append(json.loads(line[6:])["result"]["content"])
                    if len(contents) == 1:
                        # the first line arrives before the step has finished
                        assert phase(await store.get("Workflow", "default", "follow")) == "Running"
    assert contents == ["first", "second"]


async def test_watch_sends_existing_then_changes_as_server_sent_events(
    client: TestClient, store: SqliteStore, controller: Controller
) -> None:
    await create(client, workflow("watched"))
    await wait_phase(store, "watched", {"Succeeded"})
    path = "/api/v1/workflow-events/default?listOptions.fieldSelector=metadata.name%3Dwatched"
    first = await read_sse(client, path, 1)
    assert first[0]["result"]["type"] == "ADDED"
    assert first[0]["result"]["object"]["metadata"]["name"] == "watched"

    async def later() -> list[dict]:
        return await read_sse(client, path + "&listOptions.resourceVersion=1", 1)

    task = asyncio.create_task(later())
    await asyncio.sleep(0.3)
    obj = await store.get("Workflow", "default", "watched")
    obj["metadata"].setdefault("labels", {})["touched"] = "yes"
    await store.update(obj)
    changed = await task
    assert changed[0]["result"]["type"] == "MODIFIED"
    assert changed[0]["result"]["object"]["metadata"]["labels"]["touched"] == "yes"


async def test_suspend_resume_stop_through_the_api(
    client: TestClient, store: SqliteStore, controller: Controller
) -> None:
    wf = steps_workflow("held")
    wf["spec"]["templates"][1]["container"]["command"] = ["sh", "-c", "sleep 0.3; echo {{inputs.parameters.m}}"]
    await create(client, wf)
    response = await client.put("/api/v1/workflows/default/held/suspend", json={"name": "held", "namespace": "default"})
    assert response.status == 200 and (await response.json())["spec"]["suspend"] is True
    await asyncio.sleep(1.0)
    assert phase(await store.get("Workflow", "default", "held")) == "Running"
    response = await client.put("/api/v1/workflows/default/held/resume", json={})
    assert response.status == 200 and "suspend" not in (await response.json())["spec"]
    done = await wait_phase(store, "held", {"Succeeded", "Failed", "Error"})
    assert phase(done) == "Succeeded"
    again = await client.put("/api/v1/workflows/default/held/stop", json={})
    assert again.status == 400 and "already finished" in (await again.json())["message"]

    await create(client, workflow("long", script="sleep 30"))
    await wait_phase(store, "long", {"Running"})
    response = await client.put("/api/v1/workflows/default/long/terminate", json={})
    assert response.status == 200 and (await response.json())["spec"]["shutdown"] == "Terminate"
    assert phase(await wait_phase(store, "long", {"Failed", "Error", "Succeeded"})) == "Failed"


async def test_retry_resubmit_and_set(client: TestClient, store: SqliteStore, controller: Controller) -> None:
    await create(client, workflow("flaky", script="exit 3"))
    await wait_phase(store, "flaky", {"Failed"})
    retried = await client.put("/api/v1/workflows/default/flaky/retry", json={"parameters": []})
    assert retried.status == 200 and phase(await retried.json()) == "Running"
    await wait_phase(store, "flaky", {"Failed"})
    resubmitted = await client.put("/api/v1/workflows/default/flaky/resubmit", json={"memoized": False})
    assert resubmitted.status == 200
    new = await resubmitted.json()
    assert new["metadata"]["name"].startswith("flaky-")
    assert new["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == "flaky"

    approval = workflow("approval")
    approval["spec"]["templates"] = [
        {"name": "main", "steps": [[{"name": "approve", "template": "wait"}]]},
        {"name": "wait", "suspend": {}, "outputs": {"parameters": [{"name": "ok", "valueFrom": {"supplied": {}}}]}},
    ]
    await create(client, approval)
    await wait_suspended(store, "approval")
    response = await client.put(
        "/api/v1/workflows/default/approval/set",
        json={"nodeFieldSelector": "displayName=approve", "phase": "Succeeded", "outputParameters": '{"ok": "yes"}'},
    )
    assert response.status == 200, await response.text()
    done = await wait_phase(store, "approval", {"Succeeded", "Failed"})
    assert phase(done) == "Succeeded"
    missing = await client.put("/api/v1/workflows/default/approval/set", json={})
    assert missing.status == 400


async def test_submit_from_a_workflow_template(client: TestClient, store: SqliteStore) -> None:
    template = {
        "metadata": {"name": "greet"},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "who", "value": "world"}]},
            "templates": [
                {"name": "main", "container": {"image": "a", "command": ["echo", "{{workflow.parameters.who}}"]}}
            ],
        },
    }
    assert (await client.post("/api/v1/workflow-templates/default", json={"template": template})).status == 200
    response = await client.post(
        "/api/v1/workflows/default/submit",
        json={
            "namespace": "default",
            "resourceKind": "WorkflowTemplate",
            "resourceName": "greet",
            "submitOptions": {"parameters": ["who=you"], "labels": "team=a,x=y"},
        },
    )
    assert response.status == 200, await response.text()
    created = await response.json()
    assert created["spec"]["workflowTemplateRef"] == {"name": "greet"}
    assert created["spec"]["arguments"]["parameters"] == [{"name": "who", "value": "you"}]
    assert created["metadata"]["labels"]["team"] == "a"
    missing = await client.post(
        "/api/v1/workflows/default/submit", json={"resourceKind": "WorkflowTemplate", "resourceName": "nope"}
    )
    assert missing.status == 404
    bad = await client.post("/api/v1/workflows/default/submit", json={"resourceKind": "Pod", "resourceName": "x"})
    assert bad.status == 400


async def test_archived_workflows_are_the_finished_ones(client: TestClient, store: SqliteStore) -> None:
    done = await create(client, workflow("done", labels={"team": "a"}))
    await create(client, workflow("running"))
    obj = await store.get("Workflow", "default", "done")
    obj["status"] = {"phase": "Succeeded"}
    await store.update(obj)
    listed = await (await client.get("/api/v1/archived-workflows?namespace=default")).json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["done"]
    uid = done["metadata"]["uid"]
    got = await (await client.get(f"/api/v1/archived-workflows/{uid}")).json()
    assert got["metadata"]["name"] == "done"
    keys = await (await client.get("/api/v1/archived-workflows-label-keys")).json()
    assert "team" in keys["items"]
    values = await (await client.get("/api/v1/archived-workflows-label-values?listOptions.labelSelector=team")).json()
    assert values["items"] == ["a"]
    assert (await client.delete(f"/api/v1/archived-workflows/{uid}")).status == 200
    assert (await client.get(f"/api/v1/archived-workflows/{uid}")).status == 404


async def test_shutdown_ends_open_watch_and_follow_streams_promptly(
    store: SqliteStore,
    executor,
    controller: Controller,  # type: ignore[no-untyped-def]
) -> None:
    app = build_app(ApiContext(store=store, executor=executor, heartbeat_seconds=30, log_poll_seconds=0.05))
    runner = web.AppRunner(app, shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await store.create(workflow("endless", script="sleep 30"))
    await wait_phase(store, "endless", {"Running"})
    async with aiohttp.ClientSession() as session:
        sse = {"Accept": "text/event-stream"}
        watch = await session.get(f"http://127.0.0.1:{port}/api/v1/workflow-events/default", headers=sse)
        logs = await session.get(
            f"http://127.0.0.1:{port}/api/v1/workflows/default/endless/log?logOptions.follow=true", headers=sse
        )
        assert watch.status == 200 and logs.status == 200
        await watch.content.readline()
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 5
        watch.close()
        logs.close()
