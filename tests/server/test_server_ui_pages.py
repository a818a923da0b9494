"""The web UI over real HTTP without a browser: pages render from the real store, everything is
escaped, forms work without JavaScript, the graph is an SVG laid out on the server."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient
from server_helpers import steps_workflow, wait_phase, workflow

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.events import Event
from eventbridge.server.auth import Auth
from eventbridge.server.graph import layout
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

HTML = {"Accept": "text/html"}


async def page(client: TestClient, path: str, status: int = 200) -> str:
    response = await client.get(path, headers=HTML)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_pages_load_and_link_vendored_assets(client: TestClient) -> None:
    for path in ("/workflows", "/templates", "/cron", "/eventsources", "/sensors", "/events"):
        text = await page(client, path)
        assert "<nav" in text or "<header>" in text
        assert 'src="/static/htmx.min.js"' in text and "https://" not in text.split("<main>")[0]
    root = await client.get("/", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == "/workflows"
    js = await client.get("/static/htmx.min.js")
    assert js.status == 200 and "htmx" in await js.text()
    missing = await client.get("/workflows/default/nope", headers=HTML)
    assert missing.status == 404 and "text/html" in missing.headers["Content-Type"]


async def test_everything_from_objects_is_escaped(client: TestClient, store: SqliteStore) -> None:
    wf = workflow("xss")
    wf["status"] = {"phase": "Failed", "message": "<script>alert(1)</script>"}
    await store.create(wf)
    text = await page(client, "/workflows")
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    detail = await page(client, "/workflows/default/xss")
    assert "<script>alert(1)" not in detail


async def test_workflow_list_filters(client: TestClient, store: SqliteStore) -> None:
    await store.create(workflow("alpha", labels={"team": "a"}))
    await store.create(workflow("beta", labels={"team": "b"}))
    done = await store.create(workflow("gamma", labels={"team": "a"}))
    done["status"] = {"phase": "Succeeded"}
    await store.update(done)

    def rows(text: str) -> list[str]:
        return sorted(re.findall(r'<tr data-name="([^"]+)"', text))

    assert rows(await page(client, "/workflows")) == ["alpha", "beta", "gamma"]
    assert rows(await page(client, "/workflows?label=team%3Da")) == ["alpha", "gamma"]
    assert rows(await page(client, "/workflows?phase=Succeeded")) == ["gamma"]
    assert rows(await page(client, "/workflows?name=et")) == ["beta"]
    fragment = await page(client, "/workflows?label=team%3Db&fragment=table")
    assert rows(fragment) == ["beta"] and "<header>" not in fragment
    bad = await page(client, "/workflows?label=a+in+(")
    assert "parentheses" in bad


async def test_workflow_detail_graph_nodes_logs_and_actions_without_javascript(
    client: TestClient, store: SqliteStore, controller: Controller
) -> None:
    await store.create(steps_workflow("graphy"))
    await wait_phase(store, "graphy", {"Succeeded"})
    text = await page(client, "/workflows/default/graphy")
    svg = text[text.index("<svg") : text.index("</svg>")]
    obj = await store.get("Workflow", "default", "graphy")
    assert svg.count('<g class="node') == len(obj["status"]["nodes"])
    assert svg.count('class="edge"') == sum(len(n.get("children", [])) for n in obj["status"]["nodes"].values())
    assert ">first</text>" in svg and ">left</text>" in svg
    assert "m=l" in text  # node inputs
    assert "said one" in text  # logs rendered for reading without JavaScript

    response = await client.post("/workflows/default/graphy/resubmit", data={"go": "1"}, allow_redirects=False)
    assert response.status == 303
    new_name = response.headers["Location"].rsplit("/", 1)[1]
    assert new_name.startswith("graphy-")
    assert (await store.get("Workflow", "default", new_name))["metadata"]["name"] == new_name

    refused = await client.post("/workflows/default/graphy/suspend", data={}, allow_redirects=False)
    assert refused.status == 303 and "message=" in refused.headers["Location"]
    response = await client.post("/workflows/default/graphy/delete", data={}, allow_redirects=False)
    assert response.status == 303
    assert [o["metadata"]["name"] for o in await store.list("Workflow")] == [new_name]


def test_graph_layout_layers_steps() -> None:
    obj = {
        "metadata": {"name": "wf"},
        "status": {
            "nodes": {
                "wf": {"id": "wf", "name": "wf", "type": "Steps", "children": ["g0"]},
                "g0": {"id": "g0", "name": "wf[0]", "type": "StepGroup", "children": ["a", "b"]},
                "a": {"id": "a", "name": "wf[0].a", "displayName": "a", "type": "Pod", "children": ["g1"]},
                "b": {"id": "b", "name": "wf[0].b", "displayName": "b", "type": "Pod", "children": ["g1"]},
                "g1": {"id": "g1", "name": "wf[1]", "type": "StepGroup", "children": ["c"]},
                "c": {"id": "c", "name": "wf[1].c", "displayName": "c" * 40, "type": "Pod"},
            }
        },
    }
    graph = layout(obj)
    boxes = {b.id: b for b in graph.boxes}
    assert boxes["wf"].y < boxes["g0"].y < boxes["a"].y == boxes["b"].y < boxes["g1"].y < boxes["c"].y
    assert boxes["a"].x != boxes["b"].x
    assert len(graph.edges) == 6
    assert boxes["c"].label.endswith("…") and len(boxes["c"].label) <= 24
    assert all(b.x + b.width <= graph.width and b.y + b.height <= graph.height for b in graph.boxes)
    assert layout({"metadata": {"name": "x"}}).boxes == []
    cyclic = {"status": {"nodes": {"p": {"id": "p", "children": ["q"]}, "q": {"id": "q", "children": ["p"]}}}}
    assert len(layout(cyclic).boxes) == 2


async def test_template_submit_form_and_cron_page(client: TestClient, store: SqliteStore) -> None:
    await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": "greet", "namespace": "default"},
            "spec": {
                "entrypoint": "main",
                "arguments": {
                    "parameters": [{"name": "who", "value": "world"}, {"name": "how", "enum": ["loud", "soft"]}]
                },
                "templates": [{"name": "main", "container": {"image": "a", "command": ["echo"]}}],
            },
        }
    )
    text = await page(client, "/templates/default/greet")
    assert 'name="param.who" value="world"' in text and "<option" in text
    response = await client.post(
        "/templates/default/greet/submit", data={"param.who": "you", "param.how": "soft"}, allow_redirects=False
    )
    assert response.status == 303
    name = response.headers["Location"].rsplit("/", 1)[1]
    created = await store.get("Workflow", "default", name)
    assert created["spec"]["arguments"]["parameters"] == [
        {"name": "who", "value": "you"},
        {"name": "how", "value": "soft"},
    ]

    await store.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "CronWorkflow",
            "metadata": {"name": "hourly", "namespace": "default"},
            "spec": {"schedule": "0 * * * *", "workflowSpec": {"entrypoint": "main", "templates": []}},
        }
    )
    text = await page(client, "/cron")
    assert re.search(r'class="next-run">\d{4}-\d\d-\d\d \d\d:00:00 UTC<', text)
    response = await client.post("/cron/default/hourly/suspend", data={}, allow_redirects=False)
    assert response.status == 303
    assert (await store.get("CronWorkflow", "default", "hourly"))["spec"]["suspend"] is True
    assert "Resume" in await page(client, "/cron")


async def test_events_page_search_and_replay(client: TestClient, bus: SqliteBus) -> None:
    await bus.publish(Event(id="e1", source="hooks", subject="push", type="webhook", data={"msg": "<b>hi</b>"}))
    await bus.publish(Event(id="e2", source="hooks", subject="pull", type="webhook", data={"msg": "other"}))
    text = await page(client, "/events?subject=push")
    assert "e1" in text and "e2" not in text
    assert "<b>hi</b>" not in text
    response = await client.post("/events/1/replay", data={}, allow_redirects=False)
    assert response.status == 303 and "replayed=" in response.headers["Location"]
    assert len(await bus.list_events()) == 3
    assert "Replayed as event" in await page(client, response.headers["Location"])


async def test_cross_site_posts_are_refused(client: TestClient, store: SqliteStore) -> None:
    await store.create(workflow("victim"))
    response = await client.post(
        "/workflows/default/victim/delete", data={}, headers={"Origin": "http://evil.example"}, allow_redirects=False
    )
    assert response.status == 403
    assert await store.get("Workflow", "default", "victim")


async def test_ui_login_with_a_token_cookie(make_client) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = await make_client(auth=Auth.parse(["viewer-token-1 read name=viewer"]))
    response = await client.get("/workflows", headers=HTML, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login?next=/workflows")
    assert "Log in" in await page(client, "/login")
    bad = await client.post("/login", data={"token": "wrong-token", "next": "/workflows"}, allow_redirects=False)
    assert bad.status == 401
    good = await client.post("/login", data={"token": "viewer-token-1", "next": "//evil"}, allow_redirects=False)
    assert good.status == 303 and good.headers["Location"] == "/workflows"
    text = await page(client, "/workflows")
    assert "viewer" in text
    forbidden = await client.post("/workflows/default/x/delete", data={}, headers=HTML, allow_redirects=False)
    assert forbidden.status == 403
