"""HTTPS on webhook ports (``serverCertSecret``/``serverKeySecret``): certificates made with the
``cryptography`` package, real aiohttp clients that trust (or do not trust) them, a real SqliteBus."""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
import pytest
from sources_helpers import DictReferences, make_eventsource, self_signed_cert

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.bitbucketserver import sign as bitbucket_sign
from eventbridge.sources.github import sign as github_sign
from eventbridge.sources.manager import SourceManager


def make_cert() -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key, both PEM."""
    return self_signed_cert()


def trusting(cert_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=cert_pem)


TLS_REFS = {"serverCertSecret": {"name": "tls", "key": "tls.crt"}, "serverKeySecret": {"name": "tls", "key": "tls.key"}}


@pytest.fixture
def cert(references: DictReferences) -> str:
    cert_pem, key_pem = make_cert()
    references.secrets[("team", "tls", "tls.crt")] = cert_pem
    references.secrets[("team", "tls", "tls.key")] = key_pem
    return cert_pem


def hook(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"port": "0", "endpoint": endpoint, "method": "POST", **TLS_REFS, **extra}


async def test_webhook_serves_https_with_the_secret_certificate(
    manager: SourceManager, cert: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    await manager.apply([make_eventsource("secure", webhook={"push": hook("/push")})])
    assert [(s.state, s.error) for s in manager.status()] == [("running", None)]
    port = manager.router.bound_port(0)
    async with client.post(f"https://127.0.0.1:{port}/push", json={"ref": "main"}, ssl=trusting(cert)) as response:
        assert response.status == 200
        event_id = (await response.json())["id"]
    (stored,) = await bus.list_events()
    assert stored.event.id == event_id and stored.event.data["body"] == {"ref": "main"}
    async with client.get(f"https://127.0.0.1:{port}/health", ssl=trusting(cert)) as response:
        assert response.status == 200 and await response.text() == "OK"
    assert [r.https for r in manager.router.routes()] == [True]

    # a client that does not trust the certificate fails the handshake; plain HTTP gets no answer
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with client.post(f"https://127.0.0.1:{port}/push", json={}):
            pass
    other_cert, _ = make_cert()
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with client.post(f"https://127.0.0.1:{port}/push", json={}, ssl=trusting(other_cert)):
            pass
    with pytest.raises(aiohttp.ClientError):
        async with client.post(f"http://127.0.0.1:{port}/push", json={}) as response:
            await response.read()
    assert len(await bus.list_events()) == 1


async def test_git_sources_share_one_https_port(
    manager: SourceManager, cert: str, references: DictReferences, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    references.secrets[("team", "hooks", "secret")] = "shh"
    secret = {"name": "hooks", "key": "secret"}
    es = make_eventsource(
        "git",
        github={
            "gh": {"repositories": [{"owner": "o", "names": ["r"]}], "webhook": hook("/gh"), "webhookSecret": secret}
        },
        gitlab={"gl": {"projects": ["1"], "webhook": hook("/gl"), "secretToken": secret}},
        bitbucketserver={"bb": {"webhook": hook("/bb"), "webhookSecret": secret}},
    )
    await manager.apply([es])
    assert [s.state for s in manager.status()] == ["running"] * 3
    base = f"https://127.0.0.1:{manager.router.bound_port(0)}"
    context = trusting(cert)
    body = json.dumps({"zen": "x"}).encode()
    requests = [
        (
            "/gh",
            {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d1", "X-Hub-Signature-256": github_sign(b"shh", body)},
        ),
        ("/gl", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "shh"}),
        ("/bb", {"X-Event-Key": "repo:refs_changed", "X-Hub-Signature": bitbucket_sign(b"shh", body)}),
    ]
    for path, headers in requests:
        headers = {**headers, "Content-Type": "application/json"}
        async with client.post(base + path, data=body, headers=headers, ssl=context) as response:
            assert response.status == 200, (path, await response.text())
    assert sorted(d.event.type for d in await bus.list_events()) == ["bitbucketserver", "github", "gitlab"]
    assert {r.https for r in manager.router.routes()} == {True}


async def test_mixing_tls_and_plain_http_on_one_port_is_refused(
    manager: SourceManager, cert: str, references: DictReferences, client: aiohttp.ClientSession
) -> None:
    other_cert, other_key = make_cert()
    references.secrets[("team", "tls2", "tls.crt")] = other_cert
    references.secrets[("team", "tls2", "tls.key")] = other_key
    other = {
        "serverCertSecret": {"name": "tls2", "key": "tls.crt"},
        "serverKeySecret": {"name": "tls2", "key": "tls.key"},
    }
    plain = {"port": "0", "endpoint": "/plain", "method": "POST"}
    es = make_eventsource(
        "mixed",
        webhook={"a": hook("/a"), "b": plain, "c": {**plain, "endpoint": "/c", **other}, "d": hook("/d")},
    )
    await manager.apply([es])
    states = {s.key.event_name: (s.state, s.error or "") for s in manager.status()}
    assert states["a"] == ("running", "") and states["d"] == ("running", "")
    assert states["b"][0] == "failed" and "already serves HTTPS" in states["b"][1]
    assert "cannot also serve plain HTTP" in states["b"][1]
    assert states["c"][0] == "failed" and "HTTPS with another certificate" in states["c"][1]
    for _, error in states.values():
        assert "PRIVATE KEY" not in error


async def test_a_new_certificate_is_served_after_a_reload(
    manager: SourceManager, cert: str, references: DictReferences, client: aiohttp.ClientSession
) -> None:
    es = make_eventsource("secure", webhook={"push": hook("/push", port="0")})
    await manager.apply([es])
    port = manager.router.bound_port(0)
    async with client.post(f"https://127.0.0.1:{port}/push", json={}, ssl=trusting(cert)) as response:
        assert response.status == 200
    new_cert, new_key = make_cert()
    references.secrets[("team", "tls", "tls.crt")] = new_cert
    references.secrets[("team", "tls", "tls.key")] = new_key
    # the spec changes (metadata), so the source restarts and reads the rotated Secret
    await manager.apply([make_eventsource("secure", webhook={"push": hook("/push", metadata={"v": "2"})})])
    assert [s.state for s in manager.status()] == ["running"]
    port = manager.router.bound_port(0)
    async with client.post(f"https://127.0.0.1:{port}/push", json={}, ssl=trusting(new_cert)) as response:
        assert response.status == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with client.post(f"https://127.0.0.1:{port}/push", json={}, ssl=trusting(cert)):
            pass


@pytest.mark.parametrize(
    ("secrets", "extra", "fragment"),
    [
        ({"tls.crt": "not a certificate", "tls.key": "junk"}, {}, "not a PEM certificate and its private key"),
        ({"tls.crt": "", "tls.key": ""}, {}, "is empty"),
        ({}, {"serverKeySecret": None}, "must be set together"),
        ("mismatch", {}, "not a PEM certificate and its private key"),
    ],
)
async def test_bad_tls_settings_fail_the_start_without_leaking_the_key(
    manager: SourceManager,
    references: DictReferences,
    client: aiohttp.ClientSession,
    secrets: Any,
    extra: dict[str, Any],
    fragment: str,
) -> None:
    cert_pem, key_pem = make_cert()
    if secrets == "mismatch":
        _, other_key = make_cert()
        secrets = {"tls.crt": cert_pem, "tls.key": other_key}
    elif not secrets:
        secrets = {"tls.crt": cert_pem, "tls.key": key_pem}
    for key, value in secrets.items():
        references.secrets[("team", "tls", key)] = value
    spec = {k: v for k, v in hook("/push", **extra).items() if v is not None}
    await manager.apply([make_eventsource("secure", webhook={"push": spec})])
    ((state, error),) = [(s.state, s.error or "") for s in manager.status()]
    assert state == "failed" and fragment in error
    assert "PRIVATE KEY" not in error and "junk" not in error
    assert manager.router.routes() == []


def test_half_tls_config_is_a_lint_error() -> None:
    es = make_eventsource("x", webhook={"a": {"port": "1", "endpoint": "/a", "method": "POST", **TLS_REFS}})
    assert es.check() == []
    half = {"port": "1", "endpoint": "/a", "method": "POST", "serverCertSecret": {"name": "tls", "key": "c"}}
    [finding] = make_eventsource("x", webhook={"a": half}).check()
    assert (finding.path, finding.severity) == ("spec.webhook.a.serverKeySecret", "error")
