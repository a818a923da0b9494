"""The ``gitlab`` event source: GitLab webhook deliveries, optionally registering the hooks.

Behaviour (Argo's, differences marked):

* The endpoint is ``webhook`` (``endpoint``, ``port``, ``method``, ``maxPayloadSize``).
* ``secretToken``: the ``X-Gitlab-Token`` header must equal the Secret's value, compared in
  constant time; otherwise **401** (*differences*: Argo compares with ``!=`` and answers 400, and
  Argo only reads ``secretToken`` when it manages hooks, so without ``accessToken`` it accepts any
  token; eventbridge always checks a configured token).
* The body must be JSON; event data ``{"headers": {...}, "body": <JSON>, "metadata": {...}}``.
* Event id: the ``Idempotency-Key`` header (kept by GitLab on retries), else
  ``X-Gitlab-Event-UUID``, else random; a retried delivery is therefore stored once.
* ``events`` (``PushEvents``, ``MergeRequestsEvents``...) are only used to register the hook;
  every delivery that reaches the endpoint is published (filter on ``headers.X-Gitlab-Event`` or
  ``body.object_kind`` in the Sensor).
* Hook management when ``accessToken`` and ``webhook.url`` are set: for each group
  (``/api/v4/groups/{id}/hooks``) and project (``/api/v4/projects/{id or url-encoded path}/hooks``)
  the hook whose ``url`` is ``webhook.url`` + ``endpoint`` is reused, otherwise one is created
  with ``url``, ``token`` (the secret token), ``enable_ssl_verification`` and one
  ``<name>_events`` flag per known event (true for the listed ones, false for the rest). The API
  base is ``gitlabBaseURL`` (default ``https://gitlab.com``) + ``/api/v4``; the token goes in
  ``PRIVATE-TOKEN``. After a random 0-2 s delay, re-checked every 60 s while running; with
  ``deleteHookOnFinish`` the hooks are deleted when the source stops.
* ``filter.expression``: evaluated over the event data before publishing; false or an error drops
  the event (see ``_filtering``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any, ClassVar
from urllib.parse import quote

from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import GITLAB_HOOK_EVENTS, GitlabEventSource
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

TOKEN_HEADER = "X-Gitlab-Token"  # noqa: S105 - a header name
DEFAULT_BASE_URL = "https://gitlab.com"

#: The hook flags Argo always sends (false unless listed in ``events``).
_DEFAULT_FLAGS = (
    "ConfidentialNoteEvents", "PushEvents", "IssuesEvents", "ConfidentialIssuesEvents",
    "MergeRequestsEvents", "TagPushEvents", "NoteEvents", "JobEvents", "PipelineEvents",
    "WikiPageEvents", "EmojiEvents",
)  # fmt: skip


def hook_flag(event: str) -> str:
    """``MergeRequestsEvents`` -> ``merge_requests_events`` (GitLab's API field)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", event).lower()


def api_base(base_url: str) -> str:
    """``https://gitlab.example.com`` -> ``https://gitlab.example.com/api/v4`` (as go-gitlab)."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    return base if base.endswith("/api/v4") else f"{base}/api/v4"


class GitlabSource(GitWebhookSource):
    """One ``spec.gitlab.<event name>`` endpoint."""

    spec_model: ClassVar[type[ArgoModel]] = GitlabEventSource
    spec: GitlabEventSource

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token: bytes | None = None
        self._access_token: str | None = None

    def load_secrets(self) -> None:
        self._token = self.delivery_secret(self.spec.secret_token, "secretToken")
        if self.spec.manages_hooks():
            assert self.spec.access_token is not None
            self._access_token = self.context.secret(self.spec.access_token)

    def verify(self, request: web.BaseRequest, raw: bytes) -> None:
        if self._token is None:
            return
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not given:
            raise Rejected(401, f"missing {TOKEN_HEADER} header")
        if not hmac.compare_digest(given, self._token):
            raise Rejected(401, "token mismatch")

    def parse(self, request: web.BaseRequest, raw: bytes) -> list[Parsed]:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise Rejected(400, f"request body is not valid JSON: {exc}") from None
        event_id = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
        return [Parsed(event_id or None, body)]

    def make_hook_sync(self) -> HookSync | None:
        if not self.spec.manages_hooks() or self._access_token is None:
            return None
        assert self.spec.webhook is not None
        url = formatted_url(self.spec.webhook.url, self.spec.webhook.endpoint)
        base = api_base(self.spec.gitlab_base_url)
        targets = [HookTarget(f"group {g}", f"{base}/groups/{quote(g, safe='')}/hooks") for g in self.spec.groups]
        targets += [
            HookTarget(f"project {p}", f"{base}/projects/{quote(p, safe='')}/hooks") for p in self.spec.all_projects()
        ]
        body: dict[str, Any] = {"url": url, "enable_ssl_verification": self.spec.enable_ssl_verification}
        for flag in _DEFAULT_FLAGS:
            body[hook_flag(flag)] = False
        for event in self.spec.events:
            if event not in GITLAB_HOOK_EVENTS:
                raise InvalidError(f"unknown event {event}")
            body[hook_flag(event)] = True
        if self._token is not None:
            body["token"] = self._token.decode()
        return HookSync(
            what=f"gitlab {self.event_name}",
            targets=targets,
            headers={"PRIVATE-TOKEN": self._access_token},
            matches=lambda hook: hook.get("url") == url,
            create_body=body,
            labels=self.labels,
            rechecks=None,
        )


SOURCE_TYPES.register("gitlab")(GitlabSource)

__all__ = ["GitlabSource", "api_base", "hook_flag"]
