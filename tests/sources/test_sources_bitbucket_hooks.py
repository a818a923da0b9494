"""Bitbucket Server hook management against a small local REST server that answers the webhook and
repository calls the way Bitbucket Server's REST API 1.0 does (paged lists, bearer tokens)."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.sources._gitwebhook import HookSync
from eventbridge.sources.bitbucketserver import sign
from eventbridge.sources.manager import SourceManager

TOKEN = "bbs-access-token"
SECRET = "bbs-hook-secret"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeBitbucketServer:
    """``/rest/api/1.0/projects/{p}/repos`` (paged, ``page_size`` at most) and
    ``/rest/api/1.0/projects/{p}/repos/{r}/webhooks[/{id}]`` (GET list, POST, PUT, DELETE).
    Requests without ``Authorization: Bearer TOKEN`` and ``X-Atlassian-Token: no-check`` get 401."""

    url: str = ""
    repos: dict[str, list[str]] = field(default_factory=dict)  # project -> slugs
    hooks: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    page_size: int = 2
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, method: str, suffix: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.endswith(suffix)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = json.loads(raw) if raw else None
        self.calls.append(Call(request.method, request.path, dict(request.query), dict(request.headers), body))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" or request.headers.get("X-Atlassian-Token") != (
            "no-check"
        ):
            return error(401, "Authentication failed. Please check your credentials and try again.")
        parts = request.path.removeprefix("/rest/api/1.0/").split("/")
        if len(parts) == 3 and parts[0] == "projects" and parts[2] == "repos" and request.method == "GET":
            return self.repo_page(parts[1], int(request.query.get("start", "0")), int(request.query["limit"]))
        if len(parts) < 5 or parts[0] != "projects" or parts[2] != "repos" or parts[4] != "webhooks":
            return error(404, "no such resource")
        project, slug = parts[1], parts[3]
        if slug not in self.repos.get(project, []):
            return error(404, f"Repository {project}/{slug} does not exist.")
        hooks = self.hooks.setdefault((project, slug), [])
        if len(parts) == 5 and request.method == "GET":
            return web.json_response({"size": len(hooks), "limit": 25, "isLastPage": True, "values": hooks, "start": 0})
        if len(parts) == 5 and request.method == "POST":
            created = {"id": next(self._ids), "createdDate": 1, "updatedDate": 1, "configuration": {}, **body}
            hooks.append(created)
            return web.json_response(created, status=201)
        hook_id = int(parts[5])
        found = next((h for h in hooks if h["id"] == hook_id), None)
        if found is None:
            return error(404, f"Webhook {hook_id} does not exist.")
        if request.method == "PUT":
            found.update(body, updatedDate=2)
            return web.json_response(found)
        if request.method == "DELETE":
            hooks.remove(found)
            return web.Response(status=204)
        return error(405, "method not allowed")

    def repo_page(self, project: str, start: int, limit: int) -> web.Response:
        slugs = self.repos.get(project, [])
        size = min(limit, self.page_size)
        page = slugs[start : start + size]
        last = start + size >= len(slugs)
        values = [{"slug": slug, "project": {"key": project}} for slug in page]
        answer: dict[str, Any] = {
            "size": len(page),
            "limit": size,
            "isLastPage": last,
            "values": values,
            "start": start,
        }
        if not last:
            answer["nextPageStart"] = start + size
        return web.json_response(answer)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"context": None, "message": message, "exceptionName": "x"}]}, status=status)


@pytest.fixture
async def bitbucket() -> AsyncIterator[FakeBitbucketServer]:
    server = FakeBitbucketServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server.url = f"http://127.0.0.1:{port}/rest"
    yield server
    await runner.cleanup()


@pytest.fixture(autouse=True)
def fast_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HookSync, "jitter", 0.0)


@pytest.fixture
def refs(references: DictReferences) -> DictReferences:
    references.secrets[("team", "bitbucket", "token")] = TOKEN
    references.secrets[("team", "bitbucket", "secret")] = SECRET
    return references


def spec(server: FakeBitbucketServer, **extra: Any) -> dict[str, Any]:
    return {
        "webhook": {"endpoint": "/bitbucket", "port": "0", "method": "POST", "url": "https://events.example.com/"},
        "bitbucketserverBaseURL": server.url,
        "accessToken": {"name": "bitbucket", "key": "token"},
        "webhookSecret": {"name": "bitbucket", "key": "secret"},
        "events": ["repo:refs_changed", "pr:merged"],
        "repositories": [
            {"projectKey": "ENG", "repositorySlug": "api"},
            {"projectKey": "ENG", "repositorySlug": "web"},
        ],
        "checkInterval": "50ms",
        **extra,
    }


HOOK_URL = "https://events.example.com/bitbucket"


async def test_hooks_are_created_reused_updated_and_deleted(
    manager: SourceManager, refs: DictReferences, bitbucket: FakeBitbucketServer, client: aiohttp.ClientSession
) -> None:
    bitbucket.repos["ENG"] = ["api", "web"]
    # "web" has our hook already, with old events: it is updated, not duplicated; a foreign hook stays
    bitbucket.hooks[("ENG", "web")] = [
        {"id": 50, "name": "Argo Events", "url": HOOK_URL, "active": True, "events": ["repo:refs_changed"],
         "configuration": {"secret": SECRET}},
        {"id": 51, "name": "CI", "url": "https://ci.example.com/hook", "active": True, "events": ["pr:opened"]},
    ]  # fmt: skip
    await manager.apply([make_eventsource("bb", bitbucketserver={"push": spec(bitbucket, deleteHookOnFinish=True)})])
    await wait_for(lambda: len(bitbucket.of("GET", "/webhooks")) >= 6)  # the first sync and re-checks
    (created,) = bitbucket.of("POST")
    assert created.path == "/rest/api/1.0/projects/ENG/repos/api/webhooks"
    assert created.body == {
        "name": "Argo Events",
        "url": HOOK_URL,
        "active": True,
        "events": ["repo:refs_changed", "pr:merged"],
        "configuration": {"secret": SECRET},
    }
    assert created.headers["X-Requested-With"] == "XMLHttpRequest"
    (updated,) = bitbucket.of("PUT")  # once: afterwards it matches
    assert updated.path == "/rest/api/1.0/projects/ENG/repos/web/webhooks/50"
    assert bitbucket.hooks[("ENG", "web")][0]["events"] == ["repo:refs_changed", "pr:merged"]
    assert [s.state for s in manager.status()] == ["running"]

    # the endpoint itself serves deliveries signed with the same secret
    body = b'{"eventKey": "repo:refs_changed", "changes": []}'
    port = manager.router.bound_port(0)
    headers = {"X-Hub-Signature": sign(SECRET.encode(), body), "X-Event-Key": "repo:refs_changed"}
    async with client.post(f"http://127.0.0.1:{port}/bitbucket", data=body, headers=headers) as response:
        assert response.status == 200

    await manager.apply([])  # deleteHookOnFinish: both hooks it manages are deleted, the foreign one stays
    assert sorted(c.path for c in bitbucket.of("DELETE")) == [
        "/rest/api/1.0/projects/ENG/repos/api/webhooks/1",
        "/rest/api/1.0/projects/ENG/repos/web/webhooks/50",
    ]
    assert bitbucket.hooks[("ENG", "api")] == [] and [h["id"] for h in bitbucket.hooks[("ENG", "web")]] == [51]


async def test_project_repositories_are_listed_page_by_page(
    manager: SourceManager, refs: DictReferences, bitbucket: FakeBitbucketServer
) -> None:
    bitbucket.repos["OPS"] = ["a", "b", "c", "d", "e"]
    without_secret = spec(bitbucket, repositories=[], projects=["OPS"])
    del without_secret["webhookSecret"]
    await manager.apply([make_eventsource("bb", bitbucketserver={"ops": without_secret})])
    await wait_for(lambda: len(bitbucket.of("POST")) == 5)
    pages = [c.query for c in bitbucket.of("GET", "/repos")]
    assert pages[:3] == [{"start": "0", "limit": "500"}, {"start": "2", "limit": "500"}, {"start": "4", "limit": "500"}]
    assert sorted(c.path.split("/")[-2] for c in bitbucket.of("POST")) == ["a", "b", "c", "d", "e"]
    assert all("configuration" not in c.body for c in bitbucket.of("POST"))  # no secret: left out, as Argo
    await wait_for(lambda: len(bitbucket.of("GET", "/webhooks")) >= 10)
    assert len(bitbucket.of("POST")) == 5 and bitbucket.of("PUT") == []  # re-checks reuse them
    await manager.apply([])
    assert bitbucket.of("DELETE") == []  # deleteHookOnFinish is off


async def test_api_failures_are_reported_once_and_retried(
    manager: SourceManager,
    refs: DictReferences,
    bitbucket: FakeBitbucketServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bitbucket.repos["ENG"] = ["api"]  # "web" does not exist (yet)
    refs.secrets[("team", "bitbucket", "token")] = "wrong-token"
    with caplog.at_level(logging.DEBUG, logger="eventbridge.sources"):
        await manager.apply([make_eventsource("bb", bitbucketserver={"push": spec(bitbucket)})])
        await wait_for(lambda: len(bitbucket.calls) >= 6)
    (status,) = manager.status()
    assert status.state == "retrying" and "HTTP 401: Authentication failed" in (status.error or "")
    assert len([r for r in caplog.records if "cannot manage the hook of repository ENG/api" in r.getMessage()]) == 1
    assert "wrong-token" not in caplog.text and SECRET not in caplog.text

    refs.secrets[("team", "bitbucket", "token")] = TOKEN  # a new token: the changed spec restarts the source
    await manager.apply([make_eventsource("bb", bitbucketserver={"push": spec(bitbucket, checkInterval="40ms")})])
    await wait_for(lambda: bitbucket.of("POST"))
    await wait_for(lambda: "ENG/web" in (manager.status()[0].error or ""))
    assert "does not exist" in (manager.status()[0].error or "")
    bitbucket.repos["ENG"].append("web")
    await wait_for(lambda: len(bitbucket.of("POST")) == 2)
    await wait_for(lambda: manager.status()[0].state == "running")


def test_lint_of_the_hook_settings() -> None:
    base = {"webhook": {"endpoint": "/b", "port": "1", "method": "POST", "url": "https://x"},
            "accessToken": {"name": "t", "key": "k"}, "repositories": [{"projectKey": "P"}]}  # fmt: skip
    es = make_eventsource("bb", bitbucketserver={"a": {**base, "checkInterval": "soon", "tls": {}}})
    found = {(f.path, f.severity) for f in es.check()}
    assert found == {
        ("spec.bitbucketserver.a.bitbucketserverBaseURL", "error"),
        ("spec.bitbucketserver.a.events", "error"),
        ("spec.bitbucketserver.a.tls", "warning"),
        ("spec.bitbucketserver.a.repositories.0", "error"),
        ("spec.bitbucketserver.a.checkInterval", "error"),
    }
    ok = {**base, "bitbucketserverBaseURL": "https://b/rest", "events": ["repo:refs_changed"],
          "repositories": [{"projectKey": "P", "repositorySlug": "r"}]}  # fmt: skip
    assert make_eventsource("bb", bitbucketserver={"a": ok}).check() == []
