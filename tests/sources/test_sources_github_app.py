"""GitHub App authentication for hook management: a real RS256 JWT (verified by the local GitHub
REST server with the App's public key), installation tokens that expire and are fetched again."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from realservers import FakeGithubApp, fake_github_app
from sources_helpers import DictReferences, make_eventsource, wait_for

from eventbridge.errors import InvalidError
from eventbridge.sources._gitwebhook import HookSync
from eventbridge.sources.github import GithubAppAuth
from eventbridge.sources.manager import SourceManager

APP_ID = 4242
INSTALLATION_ID = 777


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def api(app_key: rsa.RSAPrivateKey) -> AsyncIterator[FakeGithubApp]:
    public = app_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with fake_github_app(public.decode(), APP_ID, INSTALLATION_ID) as server:
        yield server


@pytest.fixture(autouse=True)
def fast_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(HookSync, "jitter", 0.0)
    monkeypatch.setattr(HookSync, "interval", 0.05)


@pytest.fixture
def refs(references: DictReferences, app_key: rsa.RSAPrivateKey) -> DictReferences:
    references.secrets[("team", "github-app", "key")] = pem(app_key)  # as GitHub hands it out (PKCS#1)
    references.secrets[("team", "github", "secret")] = "hook-secret"
    return references


def app_spec(api: FakeGithubApp, **extra: Any) -> dict[str, Any]:
    return {
        "repositories": [{"owner": "octo", "names": ["one"]}],
        "webhook": {"endpoint": "/github", "port": "0", "method": "POST", "url": "https://ci.example.com"},
        "webhookSecret": {"name": "github", "key": "secret"},
        "events": ["push"],
        "active": True,
        "githubBaseURL": api.url + "/api/v3/",
        "githubUploadURL": api.url + "/api/uploads/",
        "githubApp": {
            "privateKey": {"name": "github-app", "key": "key"},
            "appID": APP_ID,
            "installationID": INSTALLATION_ID,
        },
        "deleteHookOnFinish": True,
        **extra,
    }


def token_calls(api: FakeGithubApp) -> list[str]:
    return [r.path for r in api.calls("POST") if r.path.endswith("/access_tokens")]


async def test_hooks_are_managed_with_an_installation_token(
    manager: SourceManager, refs: DictReferences, api: FakeGithubApp
) -> None:
    await manager.apply([make_eventsource("gh", github={"push": app_spec(api)})])
    await wait_for(lambda: len(api.calls("GET")) >= 3)  # first sync and re-checks
    assert token_calls(api) == [f"/api/v3/app/installations/{INSTALLATION_ID}/access_tokens"]  # cached
    (claims,) = api.jwts
    assert claims["iss"] == str(APP_ID) and claims["exp"] - claims["iat"] == 600
    assert claims["iat"] <= time.time() - 59
    created = [r for r in api.calls("POST") if r.path.endswith("/hooks")]
    assert [r.path for r in created] == ["/api/v3/repos/octo/one/hooks"]
    assert created[0].headers["Authorization"] == "token ghs_100"
    assert created[0].body["config"]["url"] == "https://ci.example.com/github"
    assert all(r.headers["Authorization"] == "token ghs_100" for r in api.calls("GET"))
    assert [s.state for s in manager.status()] == ["running"]

    await manager.apply([])  # deleteHookOnFinish: deleted with the App's token too
    (delete,) = api.calls("DELETE")
    assert delete.path == "/api/v3/repos/octo/one/hooks/101"
    assert delete.headers["Authorization"] == "token ghs_100"
    assert api.hooks["api/v3/repos/octo/one/hooks"] == []


async def test_an_expiring_token_is_exchanged_again(
    manager: SourceManager, refs: DictReferences, api: FakeGithubApp
) -> None:
    api.token_ttl = GithubAppAuth.refresh_margin + 0.3  # every token is "about to expire" after 0.3 s
    await manager.apply([make_eventsource("gh", github={"push": app_spec(api)})])
    await wait_for(lambda: len(token_calls(api)) >= 3, within=15)
    await wait_for(lambda: manager.status()[0].state == "running")
    last_token = max(api.tokens, key=lambda t: api.tokens[t])
    await wait_for(lambda: api.calls("GET")[-1].headers["Authorization"] == f"token {last_token}")
    assert len(api.jwts) == len(token_calls(api))  # each exchange signed a new JWT


async def test_a_key_github_does_not_know_is_refused_and_retried(
    manager: SourceManager, refs: DictReferences, api: FakeGithubApp, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    refs.secrets[("team", "github-app", "key")] = wrong
    with caplog.at_level(logging.DEBUG):
        await manager.apply([make_eventsource("gh", github={"push": app_spec(api)})])
        await wait_for(lambda: len(token_calls(api)) >= 3)
    (status,) = manager.status()
    assert status.state == "retrying"
    assert "HTTP 401: installation token refused: A JSON web token could not be decoded" in (status.error or "")
    assert [r for r in api.calls("POST") if r.path.endswith("/hooks")] == []
    assert len([r for r in caplog.records if "cannot manage the hook" in r.getMessage()]) == 1
    assert "PRIVATE KEY" not in caplog.text and wrong[40:80] not in caplog.text


async def test_api_token_wins_over_the_app(manager: SourceManager, refs: DictReferences, api: FakeGithubApp) -> None:
    api.tokens["ghp_personal"] = time.time() + 3600
    refs.secrets[("team", "github", "token")] = "ghp_personal"
    spec = app_spec(api, apiToken={"name": "github", "key": "token"})
    await manager.apply([make_eventsource("gh", github={"push": spec})])
    await wait_for(lambda: [r for r in api.calls("POST") if r.path.endswith("/hooks")])
    assert token_calls(api) == []
    assert api.calls("POST")[0].headers["Authorization"] == "token ghp_personal"


def test_jwt_shape_and_bad_keys(app_key: rsa.RSAPrivateKey) -> None:
    auth = GithubAppAuth("https://ghe.example.com/api/v3/", APP_ID, 5, pem(app_key), clock=lambda: 1_700_000_000)
    assert auth.token_url == "https://ghe.example.com/api/v3/app/installations/5/access_tokens"
    header, claims, signature = auth.app_jwt().split(".")

    def decode(part: str) -> Any:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))

    assert decode(header) == {"alg": "RS256", "typ": "JWT"}
    assert decode(claims) == {"iat": 1_699_999_940, "exp": 1_700_000_540, "iss": str(APP_ID)}
    assert "=" not in signature and len(base64.urlsafe_b64decode(signature + "==")) == 256
    with pytest.raises(InvalidError, match="not a PEM private key"):
        GithubAppAuth("https://api.github.com", 1, 2, "-----BEGIN RSA PRIVATE KEY-----\nnope\n")
    with pytest.raises(InvalidError, match="must be an RSA key"):
        GithubAppAuth("https://api.github.com", 1, 2, pem(ec.generate_private_key(ec.SECP256R1())))


def test_lint_of_the_github_app_spec() -> None:
    base = {"repositories": [{"owner": "o", "names": ["r"]}], "events": ["push"],
            "webhook": {"endpoint": "/a", "port": "1", "method": "POST", "url": "https://x"}}  # fmt: skip
    es = make_eventsource("gh", github={"a": {**base, "githubApp": {"privateKey": {"name": "k", "key": "k"}}}})
    found = {(f.path, f.severity) for f in es.check()}
    assert found == {("spec.github.a.githubApp.appID", "error"), ("spec.github.a.githubApp.installationID", "error")}
    full = {"privateKey": {"name": "k", "key": "k"}, "appID": 1, "installationID": 2}
    assert make_eventsource("gh", github={"a": {**base, "githubApp": full}}).check() == []
