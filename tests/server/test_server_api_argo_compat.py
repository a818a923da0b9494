"""What the argo CLI relies on, checked without the CLI: Go's null members, the ``@latest`` alias,
watches by name, and argo's pod names in log lines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from server_helpers import read_sse, steps_workflow, wait_phase, workflow

from eventbridge.server.api_workflows import pod_name, without_nulls
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

Client = TestClient[web.Request, web.Application]


def test_without_nulls_drops_null_members_at_every_depth() -> None:
    sent = {"metadata": {"name": "a", "creationTimestamp": None}, "spec": {"xs": [{"v": None, "w": 1}, None]}}
    assert without_nulls(sent) == {"metadata": {"name": "a"}, "spec": {"xs": [{"w": 1}, None]}}


def test_pod_names_are_argos_v2_names() -> None:
    # FNV-1a 32 of "foobar" is 0xbf9cf968 (the published test vector); the root node of a one-pod
    # workflow is the workflow itself
    assert pod_name("wf", {"id": "wf-1", "name": "foobar", "templateName": "say"}) == "wf-say-3214735720"
    assert pod_name("wf", {"id": "wf", "name": "wf", "templateName": "main"}) == "wf"
    via_ref = {"id": "x", "name": "n", "templateName": "", "templateRef": {"name": "lib", "template": "t"}}
    assert pod_name("wf", via_ref).startswith("wf-t-")
    assert pod_name("wf", {"podName": "given", "name": "n"}) == "given"
    long_name = "w" * 300
    assert len(pod_name(long_name, {"name": "n", "templateName": "t"}).rsplit("-", 1)[0]) == 253 - 10 - 1


async def test_go_nulls_in_a_created_workflow_are_not_kept(
    client: Client, store: SqliteStore, controller: Controller
) -> None:
    wf = workflow("go-client")
    wf["metadata"]["creationTimestamp"] = None
    wf["status"] = {"startedAt": None, "finishedAt": None}
    response = await client.post("/api/v1/workflows/default", json={"workflow": wf, "createOptions": {}})
    assert response.status == 200, await response.text()
    created = await response.json()
    assert "status" not in created and created["metadata"]["creationTimestamp"]
    done = await wait_phase(store, "go-client", {"Succeeded"})
    assert done["status"]["startedAt"] and done["status"]["finishedAt"]


async def test_latest_alias_and_missing_names(client: Client, store: SqliteStore) -> None:
    response = await client.get("/api/v1/workflows/default/@latest")
    assert response.status == 404 and (await response.json())["code"] == 5
    for name in ("older", "newer"):
        assert (await client.post("/api/v1/workflows/default", json={"workflow": workflow(name)})).status == 200
        await asyncio.sleep(1.05)  # creationTimestamp has whole seconds, as in Kubernetes
    latest = await (await client.get("/api/v1/workflows/default/@latest")).json()
    assert latest["metadata"]["name"] == "newer"
    assert (await client.put("/api/v1/workflows/default/@latest/suspend")).status == 200
    assert (await store.get("Workflow", "default", "newer"))["spec"]["suspend"] is True
    assert (await client.get("/api/v1/workflows/default/@other")).status == 400


async def test_watch_by_name_needs_the_workflow_and_resolves_latest(client: Client) -> None:
    missing = await client.get(
        "/api/v1/workflow-events/default",
        params={"listOptions.fieldSelector": "metadata.name=nope", "listOptions.resourceVersion": "0"},
        headers={"Accept": "text/event-stream"},
    )
    assert missing.status == 404
    assert (await missing.json())["code"] == 5
    for name in ("first", "second"):
        await client.post("/api/v1/workflows/default", json={"workflow": workflow(name)})
        await asyncio.sleep(1.05)
    query = "listOptions.fieldSelector=metadata.name%3D%40latest&listOptions.resourceVersion=0"
    messages = await read_sse(client, f"/api/v1/workflow-events/default?{query}", 1)
    assert messages[0]["result"]["type"] == "ADDED"
    assert messages[0]["result"]["object"]["metadata"]["name"] == "second"


async def test_log_lines_carry_argo_pod_names(client: Client, store: SqliteStore, controller: Controller) -> None:
    await client.post("/api/v1/workflows/default", json={"workflow": steps_workflow("podnames")})
    done = await wait_phase(store, "podnames", {"Succeeded"})
    pods = {n["id"]: n for n in done["status"]["nodes"].values() if n["type"] == "Pod"}
    response = await client.get("/api/v1/workflows/default/podnames/log")
    lines = [json.loads(line)["result"] for line in (await response.text()).splitlines()]
    expected = {f"podnames-say-{node_id.rsplit('-', 1)[1]}" for node_id in pods}
    assert {line["podName"] for line in lines} == expected
    one = sorted(expected)[0]
    only = await (await client.get(f"/api/v1/workflows/default/podnames/{one}/log")).text()
    assert {json.loads(line)["result"]["podName"] for line in only.splitlines()} == {one}


async def test_updates_take_the_name_from_the_body_when_the_path_has_none(client: Client) -> None:
    metadata: dict[str, Any] = {"name": "tpl", "namespace": "default"}
    template = {
        "metadata": metadata,
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "a", "command": ["true"]}}],
        },
    }
    assert (await client.post("/api/v1/workflow-templates/default", json={"template": template})).status == 200
    metadata["labels"] = {"changed": "yes"}
    response = await client.put(
        "/api/v1/workflow-templates/default/", json={"namespace": "default", "template": template}
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["metadata"]["labels"] == {"changed": "yes"}
    metadata.pop("name")
    response = await client.put("/api/v1/workflow-templates/default/", json={"template": template})
    assert response.status == 400


async def test_dry_run_names_a_generated_name_and_creates_nothing(client: Client, store: SqliteStore) -> None:
    body = {"workflow": workflow(), "serverDryRun": True}
    answer = await (await client.post("/api/v1/workflows/default", json=body)).json()
    assert answer["metadata"]["name"].startswith("test-") and len(answer["metadata"]["name"]) == len("test-") + 5
    assert await store.list("Workflow", "default") == []
