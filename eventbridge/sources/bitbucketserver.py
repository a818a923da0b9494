"""The ``bitbucketserver`` event source: Bitbucket Server / Data Center webhook deliveries.

Behaviour (Argo's, differences marked):

* The endpoint is ``webhook`` (``endpoint``, ``port``, ``method``, ``maxPayloadSize``).
* ``webhookSecret``: ``X-Hub-Signature`` must be ``sha256=<hex HMAC-SHA256 of the raw body>``,
  compared in constant time; missing or wrong gets **401** (*difference*: Argo answers 400).
  Without ``webhookSecret`` nothing is checked.
* The body must be JSON; event data ``{"headers": {...}, "body": <JSON>, "metadata": {...}}``.
* ``oneEventPerChange``: a ``repo:refs_changed`` delivery (``X-Event-Key``) becomes one event per
  entry of ``changes``, each a copy of the body with ``changes`` holding that one entry
  (*difference*: Argo re-encodes a typed subset of the body; here every field is kept).
* Event id: ``X-Request-Id`` (``<id>:<n>`` per change when split), random when absent.
* Hook management when ``accessToken``, ``webhook.url`` and ``repositories`` (or the deprecated
  ``projectKey``/``repositorySlug``) or ``projects`` are set, as Argo: after a random 0-2 s
  delay, and again every ``checkInterval`` (Go duration, default 60 s) for as long as the source
  runs, the hooks of each repository are listed through the REST API
  (``{bitbucketserverBaseURL}/api/1.0/projects/{project}/repos/{repo}/webhooks``; the base URL
  includes ``/rest``, e.g. ``https://bitbucket.example.com/rest``). The hook whose ``url`` is
  ``webhook.url`` + ``endpoint`` is reused, and updated (``PUT .../webhooks/{id}``) when its
  ``events`` or secret differ; otherwise one is created: ``{"name": "Argo Events", "url", "active":
  true, "events", "configuration": {"secret"}}`` (``configuration`` left out without
  ``webhookSecret``). ``projects`` adds every repository of those projects (listed page by page at
  each check). Calls carry ``Authorization: Bearer <accessToken>``, ``X-Atlassian-Token:
  no-check`` and ``X-Requested-With: XMLHttpRequest``. With ``deleteHookOnFinish`` the hooks are
  deleted when the source stops. Failures are logged once per state change, shown as state
  ``retrying`` and retried at the next check; the endpoint keeps serving. Only the first page of
  a repository's hooks is read, as Argo does.
* Not supported yet (lint warns): ``skipBranchRefsChangedOnOpenPR``, and ``tls`` for the API calls
  (the system's CA store is used).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import BitbucketServerEventSource, parse_go_duration
from eventbridge.sources._gitwebhook import GitWebhookSource, HookSync, HookTarget, Parsed, Rejected, formatted_url
from eventbridge.sources.base import SOURCE_TYPES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_KEY_HEADER = "X-Event-Key"
REFS_CHANGED = "repo:refs_changed"
HOOK_NAME = "Argo Events"
DEFAULT_CHECK_INTERVAL = 60.0
#: Repositories asked for per page when listing a project's repositories (Argo's page size).
REPOS_PAGE_SIZE = 500


def _page_values(answer: Any) -> list[Any]:
    """The ``values`` of one page of a Bitbucket Server list answer."""
    if isinstance(answer, Mapping) and isinstance(answer.get("values"), list):
        return list(answer["values"])
    return []


def sign(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Bitbucket Server sends: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class BitbucketServerSource(GitWebhookSource):
    """One ``spec.bitbucketserver.<event name>`` endpoint."""

    spec_model: ClassVar[type[ArgoModel]] = BitbucketServerEventSource
    spec: BitbucketServerEventSource

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._secret: bytes | None = None
        self._access_token: str | None = None

    def load_secrets(self) -> None:
        self._secret = self.delivery_secret(self.spec.webhook_secret, "webhookSecret")
        if self.spec.manages_hooks():
            assert self.spec.access_token is not None
            self._access_token = self.context.secret(self.spec.access_token)
            if not self._access_token:
                raise InvalidError("accessToken is empty; cannot manage Bitbucket Server hooks")

    def _api(self) -> str:
        return f"{self.spec.bitbucketserver_base_url.rstrip('/')}/api/1.0"

    def _hooks_url(self, project: str, slug: str) -> str:
        return f"{self._api()}/projects/{quote(project, safe='')}/repos/{quote(slug, safe='')}/webhooks"

    def make_hook_sync(self) -> HookSync | None:
        if not self.spec.manages_hooks() or self._access_token is None:
            return None
        assert self.spec.webhook is not None
        url = formatted_url(self.spec.webhook.url, self.spec.webhook.endpoint)
        events = list(self.spec.events)
        secret = self._secret.decode() if self._secret is not None else ""
        body: dict[str, Any] = {"name": HOOK_NAME, "url": url, "active": True, "events": events}
        if secret:  # an empty secret makes Bitbucket Server answer 500 (Argo leaves it out too)
            body["configuration"] = {"secret": secret}
        targets = [
            HookTarget(
                f"repository {r.project_key}/{r.repository_slug}", self._hooks_url(r.project_key, r.repository_slug)
            )
            for r in self.spec.all_repositories()
        ]

        def matches(hook: Mapping[str, Any]) -> bool:
            return hook.get("url") == url

        def needs_update(hook: Mapping[str, Any]) -> bool:
            configuration = hook.get("configuration")
            current_secret = configuration.get("secret", "") if isinstance(configuration, Mapping) else ""
            return sorted(hook.get("events") or []) != sorted(events) or (current_secret or "") != secret

        interval = parse_go_duration(self.spec.check_interval) if self.spec.check_interval else DEFAULT_CHECK_INTERVAL
        hooks = HookSync(
            what=f"bitbucketserver {self.event_name}",
            targets=targets,
            headers={
                "Authorization": f"Bearer {self._access_token}",
                "X-Atlassian-Token": "no-check",
                "X-Requested-With": "XMLHttpRequest",
                "Accept": "application/json",
            },
            matches=matches,
            needs_update=needs_update,
            hook_list=_page_values,
            create_body=body,
            labels=self.labels,
            rechecks=None,
            interval=interval,
        )
        if self.spec.projects:

            async def project_repositories(session: aiohttp.ClientSession) -> list[HookTarget]:
                found: list[HookTarget] = []
                for project in self.spec.projects:
                    start = 0
                    while True:
                        page_url = (
                            f"{self._api()}/projects/{quote(project, safe='')}/repos"
                            f"?start={start}&limit={REPOS_PAGE_SIZE}"
                        )
                        page = await hooks.call(session, "GET", page_url)
                        for repo in _page_values(page):
                            slug = repo.get("slug") if isinstance(repo, Mapping) else None
                            key = (repo.get("project") or {}).get("key", project) if isinstance(repo, Mapping) else None
                            if isinstance(slug, str) and isinstance(key, str):
                                found.append(HookTarget(f"repository {key}/{slug}", self._hooks_url(key, slug)))
                        if not isinstance(page, Mapping) or page.get("isLastPage", True):
                            break
                        next_start = page.get("nextPageStart")
                        if not isinstance(next_start, int) or next_start <= start:
                            break
                        start = next_start
                return found

            hooks.discover = project_repositories
        return hooks

    def verify(self, request: web.BaseRequest, raw: bytes) -> None:
        if self._secret is None:
            return
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise Rejected(401, "missing signature header")
        algorithm, _, hex_digest = signature.partition("=")
        try:
            given = bytes.fromhex(hex_digest) if algorithm == "sha256" else b""
        except ValueError:
            given = b""
        expected = hmac.digest(self._secret, raw, "sha256")
        if not given or not hmac.compare_digest(expected, given):
            raise Rejected(401, "hmac verification failed")

    def parse(self, request: web.BaseRequest, raw: bytes) -> list[Parsed]:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise Rejected(400, f"request body is not valid JSON: {exc}") from None
        request_id = request.headers.get("X-Request-Id") or None
        if (
            self.spec.one_event_per_change
            and request.headers.get(EVENT_KEY_HEADER) == REFS_CHANGED
            and isinstance(body, dict)
            and isinstance(body.get("changes"), list)
        ):
            return [
                Parsed(f"{request_id}:{index}" if request_id else None, {**body, "changes": [change]})
                for index, change in enumerate(body["changes"])
            ]
        return [Parsed(request_id, body)]


SOURCE_TYPES.register("bitbucketserver")(BitbucketServerSource)

__all__ = ["BitbucketServerSource", "sign"]
