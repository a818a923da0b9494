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
* Not supported yet: ``githubApp`` authentication (lint warns).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import GithubEventSource
from eventbridge.sources._gitwebhook import (
    GitWebhookSource,
    HookSync,
    HookTarget,
    Parsed,
    Rejected,
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
    hash_function = _HASHES.get(algorithm)
    if hash_function is None:
        return f"unknown signature hash {algorithm!r}: use sha256"
    try:
        given = bytes.fromhex(hex_digest)
    except ValueError:
        return "malformed signature: the digest is not hexadecimal"
    expected = hmac.new(secret, body, hash_function).digest()
    if not hmac.compare_digest(expected, given):
        return "payload signature check failed"
    return None


class GithubSource(GitWebhookSource):
    """One ``spec.github.<event name>`` endpoint."""

    spec_model: ClassVar[type[ArgoModel]] = GithubEventSource
    spec: GithubEventSource

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._secret: bytes | None = None
        self._api_token: str | None = None

    def load_secrets(self) -> None:
        if self.spec.webhook_secret is not None:
            secret = self.context.secret(self.spec.webhook_secret)
            if not secret:
                raise InvalidError("webhookSecret is empty; refusing to accept unsigned deliveries")
            self._secret = secret.encode()
        if self.spec.manages_hooks():
            if self.spec.api_token is None:
                raise InvalidError("githubApp authentication is not supported yet; set apiToken")
            self._api_token = self.context.secret(self.spec.api_token)

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
            body = json.loads(payload)
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
        if not self.spec.manages_hooks() or self._api_token is None:
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

        def matches(hook: Any) -> bool:
            hook_config = hook.get("config") or {}
            if hook_config.get("url") != url:
                return False
            hook_events = list(hook.get("events") or [])
            return sorted(hook_events) == sorted(events) or ("*" in hook_events and "*" in events)

        return HookSync(
            what=f"github {self.event_name}",
            targets=targets,
            headers={
                "Authorization": f"token {self._api_token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            matches=matches,
            create_body={"name": "web", "active": self.spec.active, "events": events, "config": config},
            labels=self.labels,
            rechecks=10,
        )


SOURCE_TYPES.register("github")(GithubSource)

__all__ = ["GithubSource", "check_signature", "sign"]
