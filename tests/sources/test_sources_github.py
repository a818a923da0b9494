"""The github source over real HTTP: real @octokit/webhooks-examples payloads signed the way GitHub
signs them, a real SqliteBus, and hook management against a local REST server."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from realservers import FakeGitApi, octokit_examples
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources._gitwebhook import HookSync
from eventbridge.sources.manager import SourceManager

SECRET = "It's a Secret to Everybody"


def github_sign(body: bytes, algorithm: str = "sha256", secret: str = SECRET) -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def spec(**extra: Any) -> dict[str, Any]:
    return {
        "repositories": [{"owner": "Codertocat", "names": ["Hello-World"]}],
        "webhook": {"endpoint": "/github", "port": "0", "method": "POST"},
        "webhookSecret": {"name": "github", "key": "secret"},
        "events": ["push"],
        "metadata": {"pipeline": "ci"},
        **extra,
    }


@pytest.fixture
def refs(references: DictReferences) -> DictReferences:
    references.secrets[("team", "github", "secret")] = SECRET
    references.secrets[("team", "github", "token")] = "ghp_token"
    return references


@pytest.fixture
async def url(manager: SourceManager, refs: DictReferences) -> str:
    await manager.apply([make_eventsource("gh", github={"push": spec()})])
    assert [(s.state, s.error) for s in manager.status()] == [("running", None)]
    return f"http://127.0.0.1:{manager.router.bound_port(0)}/github"


def deliver_headers(event: str, delivery: str, signature: str | None, **extra: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    headers.update(extra)
    return headers


async def test_real_payloads_signed_like_github_are_published_in_argo_shape(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    examples = octokit_examples()
    sent: list[tuple[str, str, dict[str, Any]]] = []
    for name in ("push", "pull_request", "issues", "ping", "release"):
        for index, payload in enumerate(examples[name][:3]):
            body = json.dumps(payload, indent=2).encode()  # GitHub's exact bytes are what is signed
            delivery = f"{name}-{index}-0000-1111"
            async with client.post(url, data=body, headers=deliver_headers(name, delivery, github_sign(body))) as r:
                assert r.status == 200, await r.text()
                assert await r.json() == {"id": delivery}
            sent.append((name, delivery, payload))
    stored = await bus.list_events(limit=1000)
    assert len(stored) == len(sent)
    for delivery_record, (name, delivery, payload) in zip(stored, sent, strict=True):
        event = delivery_record.event
        assert (event.id, event.type, event.source, event.subject) == (delivery, "github", "gh", "push")
        data = event.data
        assert set(data) == {"headers", "body", "metadata"}
        assert data["metadata"] == {"pipeline": "ci"}
        assert data["headers"]["X-Github-Event"] == [name]  # Go-canonical header name
        assert data["headers"]["X-Hub-Signature-256"][0].startswith("sha256=")
        assert data["body"] == {**payload, "X-GitHub-Event": name, "X-GitHub-Delivery": delivery}
    push = stored[0].event.data["body"]
    assert push["repository"]["full_name"] and "head_commit" in push


async def test_signature_algorithms_and_header_fallback(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    body = json.dumps(octokit_examples()["push"][0]).encode()
    cases = [
        ("a1", {"X-Hub-Signature": github_sign(body, "sha1")}),  # old header only
        ("a2", {"X-Hub-Signature-256": github_sign(body, "sha512")}),  # prefix picks the hash
        ("a3", {"X-Hub-Signature-256": github_sign(body, "sha1")}),  # as go-github: sha1 in -256
        ("a4", {"X-Hub-Signature-256": github_sign(body), "X-Hub-Signature": "sha1=00"}),  # -256 wins
    ]
    for delivery, signature_headers in cases:
        headers = {**deliver_headers("push", delivery, None), **signature_headers}
        async with client.post(url, data=body, headers=headers) as response:
            assert response.status == 200, (delivery, await response.text())
    assert [d.event.id for d in await bus.list_events()] == ["a1", "a2", "a3", "a4"]


@pytest.mark.parametrize(
    ("signature_headers", "fragment"),
    [
        ({}, "missing signature"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "signature check failed"),
        ({"X-Hub-Signature-256": "md5=abcd"}, "unknown signature hash"),
        ({"X-Hub-Signature-256": "sha256=zz"}, "not hexadecimal"),
        ({"X-Hub-Signature-256": "deadbeef"}, "malformed"),
        ({"X-Hub-Signature-256": github_sign(b"other body")}, "signature check failed"),
        ({"X-Hub-Signature-256": github_sign(b'{"a": 1}', secret="wrong")}, "signature check failed"),
    ],
)
async def test_bad_signatures_get_401_and_publish_nothing(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus, signature_headers: dict[str, str], fragment: str
) -> None:
    body = b'{"a": 1}'
    headers = {**deliver_headers("push", "x", None), **signature_headers}
    async with client.post(url, data=body, headers=headers) as response:
        assert response.status == 401
        assert fragment in (await response.json())["error"]
    assert await bus.list_events() == []


async def test_form_encoded_delivery_is_checked_over_the_raw_body(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    payload = octokit_examples()["issues"][0]
    raw = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {
        **deliver_headers("issues", "form-1", github_sign(raw)),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    async with client.post(url, data=raw, headers=headers) as response:
        assert response.status == 200
    (stored,) = await bus.list_events()
    assert stored.event.data["body"] == {**payload, "X-GitHub-Event": "issues", "X-GitHub-Delivery": "form-1"}
    # the signature of the JSON alone does not cover the form body
    bad = {**headers, "X-Hub-Signature-256": github_sign(json.dumps(payload).encode())}
    async with client.post(url, data=raw, headers=bad) as response:
        assert response.status == 401


async def test_redelivery_is_stored_once(url: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    body = json.dumps(octokit_examples()["push"][1]).encode()
    for _ in range(3):
        async with client.post(url, data=body, headers=deliver_headers("push", "same-id", github_sign(body))) as r:
            assert r.status == 200
            assert await r.json() == {"id": "same-id"}
    assert [d.event.id for d in await bus.list_events()] == ["same-id"]


async def test_other_content_types_non_objects_wrong_method_and_size(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    body = b"ref=main"
    headers = {**deliver_headers("push", "t", github_sign(body)), "Content-Type": "text/plain"}
    async with client.post(url, data=body, headers=headers) as response:
        assert response.status == 400
        assert "unsupported Content-Type" in (await response.json())["error"]
    body = b"[1, 2]"
    async with client.post(url, data=body, headers=deliver_headers("push", "t", github_sign(body))) as response:
        assert response.status == 400
    async with client.get(url) as response:
        assert response.status == 405
    big = b'{"a": "' + b"x" * (1 << 20) + b'"}'
    headers = deliver_headers("push", "t", github_sign(big))
    async with client.post(url, data=io.BytesIO(big), headers=headers) as response:
        assert response.status == 413
    assert await bus.list_events() == []


async def test_without_secret_nothing_is_checked_and_missing_headers_are_empty(
    manager: SourceManager, refs: DictReferences, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    open_spec = spec()
    del open_spec["webhookSecret"]
    await manager.apply([make_eventsource("gh", github={"open": open_spec})])
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/github"
    async with client.post(url, json={"zen": "hi"}) as response:
        assert response.status == 200
        event_id = (await response.json())["id"]
    (stored,) = await bus.list_events()
    assert len(event_id) == 32 and stored.event.id == event_id  # random id without a delivery header
    assert stored.event.data["body"] == {"zen": "hi", "X-GitHub-Event": "", "X-GitHub-Delivery": ""}


# -- hook management against a local REST server ------------------------------------------------


@pytest.fixture(autouse=True)
def fast_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HookSync, "jitter", 0.0)
    monkeypatch.setattr(HookSync, "interval", 0.05)


def managed(api: FakeGitApi, **extra: Any) -> dict[str, Any]:
    return spec(
        apiToken={"name": "github", "key": "token"},
        githubBaseURL=api.url + "/api/v3/",
        githubUploadURL=api.url + "/api/uploads/",
        active=True,
        contentType="json",
        webhook={"endpoint": "/github", "port": "0", "method": "POST", "url": "https://ci.example.com/"},
        repositories=[{"owner": "octo", "names": ["one", "two"]}],
        **extra,
    )


async def test_hooks_are_created_reused_and_deleted(
    manager: SourceManager, refs: DictReferences, git_api: FakeGitApi
) -> None:
    # "two" already has our hook (same url and events): it is reused, not duplicated
    git_api.hooks["api/v3/repos/octo/two/hooks"] = [
        {"id": 7, "events": ["push"], "config": {"url": "https://ci.example.com/github"}},
        {"id": 8, "events": ["push"], "config": {"url": "https://elsewhere.example.com/github"}},
    ]
    es = make_eventsource("gh", github={"push": managed(git_api, deleteHookOnFinish=True)})
    await manager.apply([es])
    await wait_for(lambda: len(git_api.calls("GET")) >= 4)  # first sync and one re-check
    posts = git_api.calls("POST")
    assert [p.path for p in posts] == ["/api/v3/repos/octo/one/hooks"]
    created = posts[0]
    assert created.body == {
        "name": "web",
        "active": True,
        "events": ["push"],
        "config": {
            "url": "https://ci.example.com/github",
            "insecure_ssl": "0",
            "content_type": "json",
            "secret": SECRET,
        },
    }
    assert created.headers["Authorization"] == "token ghp_token"
    assert [s.state for s in manager.status()] == ["running"]

    await manager.apply([])  # stop: deleteHookOnFinish deletes both hooks it knows
    deletes = sorted(r.path for r in git_api.calls("DELETE"))
    assert deletes == ["/api/v3/repos/octo/one/hooks/100", "/api/v3/repos/octo/two/hooks/7"]
    assert git_api.hooks["api/v3/repos/octo/one/hooks"] == []
    assert [h["id"] for h in git_api.hooks["api/v3/repos/octo/two/hooks"]] == [8]


async def test_org_hooks_and_api_failures_are_retried_while_the_endpoint_serves(
    manager: SourceManager,
    refs: DictReferences,
    git_api: FakeGitApi,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    git_api.fail["api/v3/orgs/acme/hooks"] = 502
    org_spec = managed(git_api)
    del org_spec["repositories"]
    org_spec["organizations"] = ["acme"]
    with caplog.at_level(logging.ERROR, logger="eventbridge.sources._gitwebhook"):
        await manager.apply([make_eventsource("gh", github={"org": org_spec})])
        await wait_for(lambda: len(git_api.calls("GET")) >= 3)
    (status,) = manager.status()
    assert status.state == "retrying" and "organization acme" in (status.error or "")
    assert "HTTP 502" in (status.error or "")
    assert len([r for r in caplog.records if "cannot manage the hook" in r.getMessage()]) == 1  # once
    assert "ghp_token" not in caplog.text and SECRET not in caplog.text
    body = b'{"zen": "x"}'
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/github"
    async with client.post(url, data=body, headers=deliver_headers("ping", "p1", github_sign(body))) as r:
        assert r.status == 200
    del git_api.fail["api/v3/orgs/acme/hooks"]
    await wait_for(lambda: git_api.calls("POST"))
    assert git_api.calls("POST")[0].path == "/api/v3/orgs/acme/hooks"
    await wait_for(lambda: manager.status()[0].state == "running")


async def test_lint_findings_of_the_github_spec() -> None:
    es = make_eventsource(
        "gh",
        github={
            "a": {"webhook": {"endpoint": "/a", "port": "1", "method": "POST"}},
            "b": {**spec(), "organizations": ["x"], "contentType": "xml", "githubApp": {"appID": 1}},
            "c": {**spec(), "apiToken": {"name": "t", "key": "k"}, "events": [],
                  "webhook": {"endpoint": "/c", "port": "1", "method": "POST", "url": "http://x"}},
        },
    )  # fmt: skip
    found = {(f.path, f.message) for f in es.check()}
    assert ("spec.github.a.repositories", "either repositories or organizations is required") in found
    assert ("spec.github.b.organizations", "only one of repositories and organizations is allowed") in found
    assert ("spec.github.b.contentType", 'content type must be "json" or "form"') in found
    assert ("spec.github.c.events", "events must be defined to create a github webhook") in found
