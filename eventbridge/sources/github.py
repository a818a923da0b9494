"""The ``github`` event source: GitHub webhook deliveries, optionally registering the hooks.

Behaviour (Argo's, differences marked):

* The endpoint is ``webhook`` (``endpoint``, ``port``, ``method``, ``maxPayloadSize``); it serves
  on the shared router like the ``webhook`` source.
* Content types: ``application/json`` (the payload is the body) and
  ``application/x-www-form-urlencoded`` (the payload is the ``payload`` form field); anything else
  gets 400.
* ``webhookSecret``: the signature is read from ``X-Hub-Signature-256``, or from
  ``X-Hub-Signature`` when that is absent. Its prefix chooses the hash (``sha1=``, ``sha256=`` or
  ``sha512=``), the HMAC covers the raw body (also for form bodies) and is compared in constant
  time. A missing, malformed or wrong signature gets **401** (*difference*: Argo answers 400).
  Without ``webhookSecret`` nothing is checked (as Argo).
* The payload must be a JSON object. ``X-GitHub-Event`` and ``X-GitHub-Delivery`` (header values,
  ``""`` when absent) are added to it as keys of those exact names.
* Event data: ``{"headers": {Canonical-Name: [values]}, "body": <payload>, "metadata": {...}}``
  (``metadata`` left out when empty). Header names are canonicalised as Go does, so the event
  header key is ``X-Github-Event`` while the injected body key is ``X-GitHub-Event``.
* Event id: the ``X-GitHub-Delivery`` value (random when absent). GitHub keeps the delivery id on
  a redelivery, so the bus recognises it and stores nothing twice (*difference*: Argo publishes
  redeliveries again). The answer is 200 ``{"id": ...}`` in both cases.
* ``events`` is used only to register the hook. Deliveries of other types (e.g. the ``ping`` sent
  when a hook is created, or events of a hook configured by hand) are published too, as Argo does;
  filter on ``body.X-GitHub-Event`` in the Sensor.
* Hook management when ``apiToken`` and ``webhook.url`` are set: after a random 0-2 s delay, for
  each organisation (``/orgs/{org}/hooks``) and repository (``/repos/{owner}/{name}/hooks``) list
  the hooks; one whose ``config.url`` is ``webhook.url`` + ``endpoint`` with the same events (or
  ``*`` on both sides) is reused, otherwise one is created with ``name: web``, ``active``,
  ``events`` and ``config {url, content_type, insecure_ssl "0"/"1", secret}``. Re-checked every
  60 s, ten times. With ``deleteHookOnFinish`` the hooks are deleted when the source stops.
  Failures are logged (once per state change) and retried at the next check; the endpoint keeps
  serving. ``githubBaseURL`` points the API at GitHub Enterprise (e.g.
  ``https://ghe.example.com/api/v3/``). Note that ``active`` defaults to false, as in Argo:
  set ``active: true`` or GitHub creates the hook disabled.
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
* Hook management as a GitHub App (``githubApp: {privateKey, appID, installationID}``, used when
  ``apiToken`` is not set, as in Argo): eventbridge signs a JWT with the App's private key
  (RS256; ``iss`` = the App id, issued 60 s in the past against clock drift, valid 10 minutes),
  exchanges it for an installation access token at ``POST /app/installations/{id}/access_tokens``
  (under ``githubBaseURL`` for GitHub Enterprise) and calls the hook API with
  ``Authorization: token <installation token>``. The token is cached and fetched again one
  minute before its ``expires_at``. A private key that is not an RSA PEM key fails the start; a
  refused exchange is a hook-management failure (logged once, retried at the next check).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from eventbridge import jsontree
from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import GithubEventSource
from eventbridge.sources._gitwebhook import (
    ApiError,
    GitWebhookSource,
    HookSync,
    HookTarget,
    Parsed,
    Rejected,
    api_message,
    formatted_url,
)
from eventbridge.sources.base import SOURCE_TYPES

log = logging.getLogger(__name__)

EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
SIGNATURE_256_HEADER = "X-Hub-Signature-256"
SIGNATURE_HEADER = "X-Hub-Signature"
DEFAULT_API_URL = "https://api.github.com/"

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
_DIGEST_NAMES = {"sha1": "sha1", "sha256": "sha256", "sha512": "sha512"}


def sign(secret: bytes, body: bytes, algorithm: str = "sha256") -> str:
    """The signature header value GitHub sends for ``body``: ``sha256=<hex>``."""
    return f"{algorithm}=" + hmac.new(secret, body, _HASHES[algorithm]).hexdigest()


def check_signature(signature: str, body: bytes, secret: bytes) -> str | None:
    """``None`` when ``signature`` (``<algo>=<hex>``) is the HMAC of ``body``; else why not."""
    if not signature:
        return "missing signature: send X-Hub-Signature-256 (sha256=<hex HMAC of the body>)"
    algorithm, sep, hex_digest = signature.partition("=")
    if not sep:
        return "malformed signature: expected <algorithm>=<hex digest>"
    digest_name = _DIGEST_NAMES.get(algorithm)
    if digest_name is None:
        return f"unknown signature hash {algorithm!r}: use sha256"
    try:
        given = bytes.fromhex(hex_digest)
    except ValueError:
        return "malformed signature: the digest is not hexadecimal"
    expected = hmac.digest(secret, body, digest_name)  # the one-shot C path: no HMAC object
    if not hmac.compare_digest(expected, given):
        return "payload signature check failed"
    return None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class GithubAppAuth:
    """Installation access tokens of a GitHub App (see the module docstring)."""

    #: Fetch a new token this many seconds before the current one expires.
    refresh_margin: ClassVar[float] = 60.0
    #: JWT ``iat`` back-dating and lifetime (GitHub allows at most 10 minutes).
    jwt_backdate: ClassVar[int] = 60
    jwt_lifetime: ClassVar[int] = 600

    def __init__(
        self,
        api_base: str,
        app_id: int,
        installation_id: int,
        private_key_pem: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError):
            raise InvalidError("githubApp.privateKey is not a PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidError("githubApp.privateKey must be an RSA key (GitHub Apps sign with RS256)")
        self._key = key
        self.app_id = app_id
        self.installation_id = installation_id
        self.token_url = f"{api_base.rstrip('/')}/app/installations/{installation_id}/access_tokens"
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.exchanges = 0  # tokens fetched so far

    def app_jwt(self) -> str:
        """A fresh JWT authenticating as the App (RS256)."""
        now = int(self._clock())
        header = {"alg": "RS256", "typ": "JWT"}
        claims = {
            "iat": now - self.jwt_backdate,
            "exp": now - self.jwt_backdate + self.jwt_lifetime,
            "iss": str(self.app_id),
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def headers(self, session: aiohttp.ClientSession) -> dict[str, str]:
        """``Authorization`` with a valid installation token (fetched when missing or expiring)."""
        async with self._lock:
            if self._token is None or self._clock() >= self._expires - self.refresh_margin:
                await self._exchange(session)
            assert self._token is not None
            return {"Authorization": f"token {self._token}"}

    async def _exchange(self, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {self.app_jwt()}", "Accept": "application/vnd.github+json"}
        async with session.post(self.token_url, headers=headers) as response:
            text = await response.text()
            if response.status not in (200, 201):
                detail = api_message(text)
                raise ApiError(
                    response.status, f"installation token refused: {detail}" if detail else "installation token refused"
                )
        try:
            body = json.loads(text)
            token = body["token"]
        except (ValueError, KeyError, TypeError):
            raise ValueError("the installation token answer has no token") from None
        if not isinstance(token, str) or not token:
            raise ValueError("the installation token answer has no token")
        self._token = token
        self._expires = _expiry(body.get("expires_at"), self._clock() + 3600)
        self.exchanges += 1


def _expiry(value: Any, default: float) -> float:
    if not isinstance(value, str):
        return default
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


class GithubSource(GitWebhookSource):
    """One ``spec.github.<event name>`` endpoint."""

    spec_model: ClassVar[type[ArgoModel]] = GithubEventSource
    spec: GithubEventSource

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._secret: bytes | None = None
        self._api_token: str | None = None
        self.app_auth: GithubAppAuth | None = None

    def load_secrets(self) -> None:
        self._secret = self.delivery_secret(self.spec.webhook_secret, "webhookSecret")
        if not self.spec.manages_hooks():
            return
        if self.spec.api_token is not None:
            self._api_token = self.context.secret(self.spec.api_token)
            return
        app = self.spec.github_app
        assert app is not None and app.private_key is not None  # manages_hooks() and check_spec() say so
        assert app.app_id is not None and app.installation_id is not None
        self.app_auth = GithubAppAuth(
            self.spec.github_base_url or DEFAULT_API_URL,
            app.app_id,
            app.installation_id,
            self.context.secret(app.private_key),
        )

    def verify(self, request: web.BaseRequest, raw: bytes) -> None:
        if self._secret is None:
            return
        signature = request.headers.get(SIGNATURE_256_HEADER) or request.headers.get(SIGNATURE_HEADER) or ""
        problem = check_signature(signature, raw, self._secret)
        if problem:
            raise Rejected(401, problem)

    def parse(self, request: web.BaseRequest, raw: bytes) -> list[Parsed]:
        content_type = request.content_type
        if content_type == "application/json":
            payload = raw
        elif content_type == "application/x-www-form-urlencoded":
            try:
                form = parse_qs(raw.decode(), keep_blank_values=True)
            except UnicodeDecodeError:
                raise Rejected(400, "form body is not valid UTF-8") from None
            payload = (form.get("payload") or [""])[0].encode()
        else:
            raise Rejected(400, f"webhook request has unsupported Content-Type {content_type!r}")
        try:
            body = jsontree.loads(payload)
        except ValueError as exc:
            raise Rejected(400, f"payload is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Rejected(400, "payload must be a JSON object")
        event_type = request.headers.get(EVENT_HEADER, "")
        delivery = request.headers.get(DELIVERY_HEADER, "")
        body[EVENT_HEADER] = event_type
        body[DELIVERY_HEADER] = delivery
        return [Parsed(delivery or None, body)]

    def make_hook_sync(self) -> HookSync | None:
        if not self.spec.manages_hooks() or (self._api_token is None and self.app_auth is None):
            return None
        assert self.spec.webhook is not None
        url = formatted_url(self.spec.webhook.url, self.spec.webhook.endpoint)
        base = (self.spec.github_base_url or DEFAULT_API_URL).rstrip("/")
        targets = [
            HookTarget(f"organization {org}", f"{base}/orgs/{quote(org)}/hooks") for org in self.spec.organizations
        ]
        for repos in self.spec.owned_repositories():
            for name in repos.names:
                targets.append(
                    HookTarget(
                        f"repository {repos.owner}/{name}",
                        f"{base}/repos/{quote(repos.owner)}/{quote(name)}/hooks",
                    )
                )
        config: dict[str, Any] = {"url": url, "insecure_ssl": "1" if self.spec.insecure else "0"}
        if self.spec.content_type:
            config["content_type"] = self.spec.content_type
        if self._secret is not None:
            config["secret"] = self._secret.decode()
        events = list(self.spec.events)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self._api_token is not None:
            headers["Authorization"] = f"token {self._api_token}"

        def matches(hook: Any) -> bool:
            hook_config = hook.get("config") or {}
            if hook_config.get("url") != url:
                return False
            hook_events = list(hook.get("events") or [])
            return sorted(hook_events) == sorted(events) or ("*" in hook_events and "*" in events)

        return HookSync(
            what=f"github {self.event_name}",
            targets=targets,
            headers=headers,
            matches=matches,
            create_body={"name": "web", "active": self.spec.active, "events": events, "config": config},
            labels=self.labels,
            rechecks=10,
            auth=self.app_auth.headers if self.app_auth is not None else None,
        )


SOURCE_TYPES.register("github")(GithubSource)

__all__ = ["GithubAppAuth", "GithubSource", "check_signature", "sign"]
