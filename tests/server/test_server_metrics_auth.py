"""/metrics with Argo's names, and bearer-token auth (401/403, read-only, per-namespace)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import workflow

from eventbridge import metrics
from eventbridge.errors import InvalidError
from eventbridge.server.auth import Auth, load_auth
from eventbridge.store.sqlite import SqliteStore


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def test_metrics_use_argo_names_and_labels(client: TestClient, store: SqliteStore) -> None:
    metrics.event_sent("ns-m", "github", "push")
    metrics.event_sent("ns-m", "github", "push")
    metrics.event_sent_failed("ns-m", "github", "push")
    metrics.event_processing_duration("ns-m", "github", "push", 12.5)
    with metrics.timed_action("ns-m", "ci", "build"):
        pass
    with pytest.raises(RuntimeError), metrics.timed_action("ns-m", "ci", "deploy"):
        raise RuntimeError("boom")
    metrics.event_filtered("ns-m", "ci", "push-dep")
    metrics.set_queue_depth("workflow_queue", 3)
    await store.create(workflow("m1"))
    done = await store.create(workflow("m2"))
    done["status"] = {"phase": "Succeeded"}
    await store.update(done)

    response = await client.get("/metrics")
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
    found = samples(await response.text())
    source = (("event_name", "push"), ("eventsource_name", "github"), ("namespace", "ns-m"))
    assert found[("argo_events_events_sent_total", source)] == 2
    assert found[("argo_events_events_sent_failed_total", source)] == 1
    assert found[("argo_events_events_processing_failed_total", source)] == 1
    assert found[("argo_events_event_processing_duration_milliseconds_count", source)] == 1
    assert found[("argo_events_event_processing_duration_milliseconds_sum", source)] == 12.5
    build = (("namespace", "ns-m"), ("sensor_name", "ci"), ("trigger_name", "build"))
    deploy = (("namespace", "ns-m"), ("sensor_name", "ci"), ("trigger_name", "deploy"))
    assert found[("argo_events_action_triggered_total", build)] == 1
    assert found[("argo_events_action_failed_total", deploy)] == 1
    assert found[("argo_events_action_duration_milliseconds_count", deploy)] == 1
    dep = (("dependency_name", "push-dep"), ("namespace", "ns-m"), ("sensor_name", "ci"))
    assert found[("eventbridge_sensor_events_filtered_total", dep)] == 1
    assert found[("argo_workflows_queue_depth_count", (("queue_name", "workflow_queue"),))] == 3
    assert found[("argo_workflows_count", (("status", "Pending"),))] == 1
    assert found[("argo_workflows_count", (("status", "Succeeded"),))] == 1
    assert found[("argo_workflows_count", (("status", "Failed"),))] == 0


def test_metrics_module_imports_nothing_from_eventbridge_but_errors() -> None:
    source = Path(metrics.__file__).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all("eventbridge" not in line or "eventbridge.errors" in line for line in imports), imports


# --------------------------------------------------------------------------- auth


TOKENS = """
# comment
admin-token-1
viewer-token-1 read name=viewer
team-a-token-1 write namespaces=team-a name=team-a
"""


@pytest.fixture
async def secured(make_client) -> TestClient:  # type: ignore[no-untyped-def]
    return await make_client(auth=Auth.parse(TOKENS.splitlines()))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_or_wrong_token_is_401_json(secured: TestClient) -> None:
    response = await secured.get("/api/v1/workflows/default")
    assert response.status == 401
    assert (await response.json())["code"] == 16
    response = await secured.get("/api/v1/workflows/default", headers=bearer("not-a-token"))
    assert response.status == 401
    # metrics and health stay open for scrapers
    assert (await secured.get("/metrics")).status == 200
    assert (await secured.get("/healthz")).status == 200


async def test_tokens_read_only_and_namespaces(secured: TestClient) -> None:
    body = {"workflow": workflow("w")}
    assert (await secured.get("/api/v1/workflows/default", headers=bearer("admin-token-1"))).status == 200
    assert (await secured.post("/api/v1/workflows/default", json=body, headers=bearer("admin-token-1"))).status == 200
    # the bare token (no scheme) works too, as the argo CLI may send it
    assert (await secured.get("/api/v1/workflows/default", headers={"Authorization": "admin-token-1"})).status == 200

    assert (await secured.get("/api/v1/workflows/default", headers=bearer("viewer-token-1"))).status == 200
    denied = await secured.post(
        "/api/v1/workflows/default", json={"workflow": workflow("v")}, headers=bearer("viewer-token-1")
    )
    assert denied.status == 403 and (await denied.json())["code"] == 7
    assert "read-only" in (await denied.json())["message"]
    lint = await secured.post("/api/v1/workflows/default/lint", json=body, headers=bearer("viewer-token-1"))
    assert lint.status == 200

    team = bearer("team-a-token-1")
    assert (await secured.get("/api/v1/workflows/default", headers=team)).status == 403
    wf = workflow("t")
    wf["metadata"]["namespace"] = "team-a"
    assert (await secured.post("/api/v1/workflows/team-a", json={"workflow": wf}, headers=team)).status == 200
    everywhere = await (await secured.get("/api/v1/workflows/", headers=team)).json()
    assert [i["metadata"]["namespace"] for i in everywhere["items"]] == ["team-a"]
    cluster = await secured.post("/api/v1/cluster-workflow-templates", json={"template": {}}, headers=team)
    assert cluster.status == 403
    user = await (await secured.get("/api/v1/userinfo", headers=team)).json()
    assert user["subject"] == "team-a"


def test_token_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("file-token-1 read\n")
    auth = load_auth(path, {"EVENTBRIDGE_AUTH_TOKENS": "env-token-1;env-token-2 namespaces=a"})
    assert auth is not None
    assert auth.check("file-token-1") is not None and not auth.check("file-token-1").write  # type: ignore[union-attr]
    assert auth.check("env-token-2").namespaces == frozenset({"a"})  # type: ignore[union-attr]
    assert auth.check("nope") is None
    assert load_auth(None, {}) is None
    with pytest.raises(InvalidError, match="entry 1") as caught:
        Auth.parse(["short"])
    assert "short" not in str(caught.value).replace("shorter", "")
    with pytest.raises(InvalidError, match="unknown word"):
        Auth.parse(["long-enough-token sudo"])
