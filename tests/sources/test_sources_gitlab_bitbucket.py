"""The gitlab and bitbucketserver sources over real HTTP, with GitLab hook management against a
local REST server."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp
import pytest
from realservers import FakeGitApi
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources._gitwebhook import HookSync
from eventbridge.sources.gitlab import api_base, hook_flag
from eventbridge.sources.manager import SourceManager

PUSH = {"object_kind": "push", "ref": "refs/heads/main", "project": {"path_with_namespace": "g/p"}}


@pytest.fixture(autouse=True)
def fast_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HookSync, "jitter", 0.0)
    monkeypatch.setattr(HookSync, "interval", 0.05)


@pytest.fixture
def refs(references: DictReferences) -> DictReferences:
    references.secrets[("team", "gitlab", "secret")] = "gl-secret"
    references.secrets[("team", "gitlab", "token")] = "glpat-xyz"
    references.secrets[("team", "bitbucket", "secret")] = "bb-secret"
    return references


def webhook(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "port": "0", "method": "POST", **extra}


async def test_gitlab_token_checked_in_constant_time_and_event_id_from_idempotency_key(
    manager: SourceManager, refs: DictReferences, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    await manager.apply(
        [
            make_eventsource(
                "gl",
                gitlab={
                    "push": {
                        "webhook": webhook("/gitlab"),
                        "projects": ["g/p"],
                        "events": ["PushEvents"],
                        "secretToken": {"name": "gitlab", "key": "secret"},
                        "metadata": {"k": "v"},
                    }
                },
            )
        ]
    )
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/gitlab"
    good = {"X-Gitlab-Token": "gl-secret", "X-Gitlab-Event": "Push Hook", "Idempotency-Key": "idem-1"}
    for headers, status in [
        ({}, 401),
        ({"X-Gitlab-Token": "gl-secreT"}, 401),
        (good, 200),
        (good, 200),  # GitLab retry with the same key: stored once
    ]:
        async with client.post(url, json=PUSH, headers=headers) as response:
            assert response.status == status, await response.text()
    async with client.post(url, data=b"not json", headers=good) as response:
        assert response.status == 400
    (stored,) = await bus.list_events()
    assert stored.event.id == "idem-1" and stored.event.type == "gitlab"
    assert stored.event.data["body"] == PUSH
    assert stored.event.data["metadata"] == {"k": "v"}
    assert stored.event.data["headers"]["X-Gitlab-Event"] == ["Push Hook"]


def test_gitlab_helpers() -> None:
    assert hook_flag("MergeRequestsEvents") == "merge_requests_events"
    assert hook_flag("PushEvents") == "push_events"
    assert api_base("") == "https://gitlab.com/api/v4"
    assert api_base("https://gl.example.com/") == "https://gl.example.com/api/v4"
    assert api_base("https://gl.example.com/api/v4/") == "https://gl.example.com/api/v4"


async def test_gitlab_hooks_are_created_for_projects_and_groups_and_deleted(
    manager: SourceManager, refs: DictReferences, git_api: FakeGitApi
) -> None:
    git_api.hooks["api/v4/projects/7/hooks"] = [{"id": 3, "url": "https://ci.example.com/gitlab"}]
    spec = {
        "webhook": webhook("/gitlab", url="https://ci.example.com"),
        "projects": ["g/p", "7"],
        "groups": ["team"],
        "events": ["PushEvents", "MergeRequestsEvents", "ReleasesEvents"],
        "accessToken": {"name": "gitlab", "key": "token"},
        "secretToken": {"name": "gitlab", "key": "secret"},
        "gitlabBaseURL": git_api.url,
        "enableSSLVerification": True,
        "deleteHookOnFinish": True,
    }
    await manager.apply([make_eventsource("gl", gitlab={"push": spec})])
    await wait_for(lambda: len(git_api.calls("GET")) >= 6)
    posts = {p.path: p for p in git_api.calls("POST")}
    assert sorted(posts) == ["/api/v4/groups/team/hooks", "/api/v4/projects/g%2Fp/hooks"]
    body = posts["/api/v4/projects/g%2Fp/hooks"].body
    assert body["url"] == "https://ci.example.com/gitlab" and body["token"] == "gl-secret"
    assert body["enable_ssl_verification"] is True
    assert body["push_events"] is True and body["merge_requests_events"] is True
    assert body["releases_events"] is True and body["issues_events"] is False
    assert posts["/api/v4/groups/team/hooks"].headers["PRIVATE-TOKEN"] == "glpat-xyz"
    await manager.apply([])
    assert sorted(r.path for r in git_api.calls("DELETE")) == [
        "/api/v4/groups/team/hooks/100",
        "/api/v4/projects/7/hooks/3",
        "/api/v4/projects/g%2Fp/hooks/101",
    ]


def test_gitlab_unknown_event_is_a_lint_error() -> None:
    es = make_eventsource("gl", gitlab={"x": {"webhook": webhook("/x"), "events": ["PushEvent"]}})
    assert [(f.path, f.severity) for f in es.check()] == [("spec.gitlab.x.events.0", "error")]


REFS_CHANGED = {
    "eventKey": "repo:refs_changed",
    "repository": {"slug": "app", "project": {"key": "PRJ"}},
    "changes": [
        {"ref": {"id": "refs/tags/v1"}, "toHash": "abc", "type": "ADD"},
        {"ref": {"id": "refs/tags/v1-latest"}, "toHash": "abc", "type": "ADD"},
    ],
}


async def test_bitbucketserver_hmac_and_one_event_per_change(
    manager: SourceManager, refs: DictReferences, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    spec = {
        "webhook": webhook("/bb"),
        "webhookSecret": {"name": "bitbucket", "key": "secret"},
        "oneEventPerChange": True,
        "repositories": [{"projectKey": "PRJ", "repositorySlug": "app"}],
    }
    await manager.apply([make_eventsource("bb", bitbucketserver={"refs": spec})])
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/bb"
    raw = json.dumps(REFS_CHANGED).encode()
    signature = "sha256=" + hmac.new(b"bb-secret", raw, hashlib.sha256).hexdigest()
    base = {"Content-Type": "application/json", "X-Event-Key": "repo:refs_changed", "X-Request-Id": "r1"}
    for extra, status in [
        ({}, 401),
        ({"X-Hub-Signature": "sha256=" + "0" * 64}, 401),
        ({"X-Hub-Signature": "sha1=" + hmac.new(b"bb-secret", raw, hashlib.sha1).hexdigest()}, 401),
        ({"X-Hub-Signature": signature}, 200),
    ]:
        async with client.post(url, data=raw, headers={**base, **extra}) as response:
            assert response.status == status
            if status == 200:
                assert await response.json() == {"ids": ["r1:0", "r1:1"]}
    stored = [d.event for d in await bus.list_events()]
    assert [e.id for e in stored] == ["r1:0", "r1:1"]
    assert [e.data["body"]["changes"] for e in stored] == [[c] for c in REFS_CHANGED["changes"]]
    assert all(e.data["body"]["repository"] == REFS_CHANGED["repository"] for e in stored)
    # other event keys are one event with the whole body
    pr = json.dumps({"eventKey": "pr:opened", "changes": [1, 2]}).encode()
    sig = "sha256=" + hmac.new(b"bb-secret", pr, hashlib.sha256).hexdigest()
    headers = {**base, "X-Event-Key": "pr:opened", "X-Request-Id": "r2", "X-Hub-Signature": sig}
    async with client.post(url, data=pr, headers=headers) as response:
        assert await response.json() == {"id": "r2"}


@pytest.mark.parametrize(
    ("source_type", "field"),
    [("github", "webhookSecret"), ("gitlab", "secretToken"), ("bitbucketserver", "webhookSecret")],
)
async def test_an_empty_delivery_secret_refuses_to_start(
    manager: SourceManager, refs: DictReferences, client: aiohttp.ClientSession, source_type: str, field: str
) -> None:
    """A Secret that exists but is empty would make every signature or token check meaningless:
    the endpoint does not start, and says which field is empty; the other endpoint still runs."""
    refs.secrets[("team", "empty", "value")] = ""
    specs = {"github": {"repositories": [{"owner": "o", "names": ["r"]}]}, "gitlab": {"projects": ["g/p"]},
             "bitbucketserver": {"repositories": [{"projectKey": "P", "repositorySlug": "r"}]}}  # fmt: skip
    endpoint = {**specs[source_type], "webhook": webhook(f"/{source_type}"), field: {"name": "empty", "key": "value"}}
    await manager.apply(
        [
            make_eventsource("git", **{source_type: {"push": endpoint}}),
            make_eventsource("gl", gitlab={"push": {"webhook": webhook("/other"), "projects": ["g/p"]}}),
        ]
    )
    by_key = {status.key: status for status in manager.status()}
    failed = [status for status in by_key.values() if status.state == "failed"]
    assert len(failed) == 1 and f"{field} is empty; refusing to accept unauthenticated deliveries" in (
        failed[0].error or ""
    )
    assert sum(status.state == "running" for status in by_key.values()) == 1
    async with client.post(f"http://127.0.0.1:{manager.router.bound_port(0)}/other", json=PUSH) as response:
        assert response.status == 200
