"""What the git-hosting webhook sources (github, gitlab, bitbucketserver) share.

* :class:`GitWebhookSource`: opens ``spec.<type>.<event>.webhook`` on the shared router and runs
  one request through ``method check -> size limit -> verify -> parse -> filter -> dispatch ->
  answer``. Subclasses implement :meth:`GitWebhookSource.verify` and
  :meth:`GitWebhookSource.parse`.
* :class:`HookSync`: registers the webhook in the hosting service through its REST API (list the
  hooks of each repository/group, reuse the one pointing at our URL, updating it when it differs,
  otherwise create one), re-checks periodically, and deletes what it registered on stop when
  asked to. Authentication is fixed headers, or per-call headers from an ``auth`` callable (a
  GitHub App's installation token, refreshed before it expires).

Answers: **200** ``{"id": "<event id>"}`` once the event is durable (``{"id": null, "filtered":
true}`` when ``filter.expression`` dropped it; ``{"ids": [...]}`` when one request makes several
events, ``null`` for dropped ones), **401** for a bad or missing signature/token, **405** for the
wrong method, **413** over ``maxPayloadSize``, **400** for a body that cannot be read, **503**
with ``Retry-After`` if the event could not be stored. Nothing is published on any error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp
import yarl
from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import SecretKeySelector, WebhookContext
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources._retry import describe
from eventbridge.sources.base import SourceContext, validated_spec
from eventbridge.sources.http import (
    PayloadTooLarge,
    body_timeout_from_env,
    json_answer,
    json_error,
    read_body,
    request_headers,
    server_tls,
)

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A request that must not become an event; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Parsed:
    """One event made from a request: its stable id (``None``: random) and its ``body``."""

    event_id: str | None
    body: Any


def formatted_url(url: str, endpoint: str) -> str:
    """Argo's ``FormattedURL``: ``url`` without trailing ``/`` + ``endpoint`` with a leading ``/``."""
    return url.rstrip("/") + ("" if endpoint.startswith("/") else "/") + endpoint


class GitWebhookSource:
    """Base of one ``spec.<type>.<event name>`` endpoint of a git-hosting service."""

    #: The spec model of the subclass.
    spec_model: ClassVar[type[ArgoModel]]

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        spec = validated_spec(self.spec_model, spec, context, event_name)
        webhook = spec.webhook
        assert isinstance(webhook, WebhookContext)
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.webhook = webhook
        self.method = webhook.method.upper()
        self.port = webhook.port_number() or 0
        self.endpoint = webhook.endpoint
        self.bound_port: int | None = None
        self.metadata: dict[str, str] | None = getattr(spec, "metadata", None)
        self.labels = context.labels(event_name)
        self.hooks: HookSync | None = None
        self._filter: EventFilter | None = None
        self._owner = f"{context.eventsource.namespace}/{context.eventsource.name}/{event_name}"
        self._body_timeout = body_timeout_from_env()

    # -- subclass hooks -------------------------------------------------------------------------

    def load_secrets(self) -> None:
        """Read the Secrets the endpoint needs (raise to refuse to start)."""

    def delivery_secret(self, selector: SecretKeySelector | None, field: str) -> bytes | None:
        """The Secret that authenticates deliveries (``webhookSecret``, ``secretToken``), or None
        when ``field`` is not set; an empty one refuses to start rather than accept anything."""
        if selector is None:
            return None
        secret = self.context.secret(selector)
        if not secret:
            raise InvalidError(f"{field} is empty; refusing to accept unauthenticated deliveries")
        return secret.encode()

    def make_hook_sync(self) -> HookSync | None:
        """The hook registration to run, if the spec asks for it."""
        return None

    def verify(self, request: web.BaseRequest, raw: bytes) -> None:
        """Raise :class:`Rejected` if the request is not authentic."""
        raise NotImplementedError  # abstract: each git source (github, gitlab...) implements it

    def parse(self, request: web.BaseRequest, raw: bytes) -> list[Parsed]:
        """The events of an authentic request (raise :class:`Rejected` for a bad body)."""
        raise NotImplementedError  # abstract: each git source implements it

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read secrets, open the route, then start hook registration in the background."""
        self.load_secrets()
        self._filter = EventFilter(getattr(self.spec, "filter", None), log, self.labels)
        tls = server_tls(self.webhook, self.context.secret)
        self.bound_port = await self.context.router.add_route(
            self.port, self.endpoint, self.handle, owner=self._owner, tls=tls
        )
        log.info(
            "%s %s %s listening on port %d (%s)",
            self.context.type_key,
            self.method,
            self.endpoint,
            self.bound_port,
            "HTTPS" if tls is not None else "HTTP",
            extra=self.labels,
        )
        self.hooks = self.make_hook_sync()
        if self.hooks is not None:
            self.hooks.start()

    async def stop(self) -> None:
        if self.bound_port is not None:
            self.context.router.remove_route(self.port, self.endpoint, owner=self._owner)
            self.bound_port = None
        hooks, self.hooks = self.hooks, None
        if hooks is not None:
            await hooks.stop(delete=bool(getattr(self.spec, "delete_hook_on_finish", False)))

    @property
    def problem(self) -> str | None:
        """Why hook registration currently fails (the endpoint itself still serves)."""
        return self.hooks.problem if self.hooks is not None else None

    # -- requests -------------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != self.method:
            return json_error(
                405,
                f"method {request.method} is not allowed; this endpoint accepts {self.method}",
                headers={"Allow": self.method},
            )
        try:
            raw = await read_body(request, self.webhook.max_payload_size, self._body_timeout)
        except PayloadTooLarge:
            return json_error(
                413, f"request body is larger than maxPayloadSize ({self.webhook.max_payload_size} bytes)"
            )
        try:
            self.verify(request, raw)
            parsed = self.parse(request, raw)
        except Rejected as exc:
            log.info("rejected a %s request: %s", self.context.type_key, exc.message, extra=self.labels)
            return json_error(exc.status, exc.message)
        headers = request_headers(request)
        ids: list[str | None] = []
        try:
            for item in parsed:
                data: dict[str, Any] = {"headers": headers, "body": item.body}
                if self.metadata:
                    data["metadata"] = dict(self.metadata)
                if self._filter is not None and not self._filter.accepts(data):
                    ids.append(None)
                    continue
                event = await self.context.dispatch(self.event_name, data, event_id=item.event_id)
                ids.append(event.id)
        except Exception as exc:  # noqa: BLE001
            log.error("failed to record %s event: %s", self.context.type_key, exc, extra=self.labels)
            return json_error(503, "failed to record the event; retry later", headers={"Retry-After": "1"})
        if len(parsed) == 1:
            answer: dict[str, Any] = {"id": ids[0]}
            if ids[0] is None:
                answer["filtered"] = True
            return json_answer(answer)
        return json_answer({"ids": ids})


@dataclass(frozen=True, slots=True)
class HookTarget:
    """One repository/organisation/project/group whose hooks are managed."""

    label: str
    hooks_url: str


#: Per-call authentication: the headers to add, given the session (which it may use to fetch a token).
AuthHeaders = Callable[[aiohttp.ClientSession], Awaitable[Mapping[str, str]]]


def _plain_list(answer: Any) -> list[Any]:
    return answer if isinstance(answer, list) else []


class HookSync:
    """Registers one webhook per target through a REST API (see the module docstring).

    ``matches(hook)`` says whether an existing hook (as listed) is ours; ``create_body`` is what
    is POSTed to create one; the created hook's ``id`` is remembered for deletion. Optional
    parts for APIs that need them: ``needs_update(hook)`` says whether our existing hook must be
    PUT again (at ``<hooks_url>/<id>``, with ``create_body``); ``hook_list(answer)`` takes the hooks
    out of a list answer (default: the answer is the list); ``discover(session)`` adds targets found
    at each sync (e.g. the repositories of a project); ``auth`` adds per-call headers; ``interval``
    overrides the pause between re-checks. Failures are logged once per state change per target;
    :attr:`problem` holds the latest one.
    """

    #: Random delay before the first registration (Argo: 0-2 s against replica races).
    jitter: ClassVar[float] = 2.0
    #: Pause between re-checks (Argo: 60 s).
    interval: ClassVar[float] = 60.0

    def __init__(
        self,
        *,
        what: str,
        targets: Sequence[HookTarget],
        headers: Mapping[str, str],
        matches: Callable[[Mapping[str, Any]], bool],
        create_body: Mapping[str, Any],
        labels: Mapping[str, str],
        rechecks: int | None,
        logger: logging.Logger = log,
        needs_update: Callable[[Mapping[str, Any]], bool] | None = None,
        hook_list: Callable[[Any], list[Any]] = _plain_list,
        discover: Callable[[aiohttp.ClientSession], Awaitable[list[HookTarget]]] | None = None,
        auth: AuthHeaders | None = None,
        interval: float | None = None,
    ) -> None:
        self.what = what
        self.targets = list(targets)
        self.headers = dict(headers)
        self.matches = matches
        self.create_body = dict(create_body)
        self.labels = dict(labels)
        self.rechecks = rechecks
        self.log = logger
        self.needs_update = needs_update
        self.hook_list = hook_list
        self.discover = discover
        self.auth = auth
        self._interval = interval
        self._discovered: list[HookTarget] = []
        self.hook_ids: dict[str, Any] = {}
        self.problem: str | None = None
        self._problems: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()

    def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers=self.headers, timeout=aiohttp.ClientTimeout(total=10), raise_for_status=False
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.what} hooks")

    async def stop(self, *, delete: bool) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if delete:
                await self._delete_all(session)
        finally:
            await session.close()

    async def _run(self) -> None:
        await asyncio.sleep(random.uniform(0, self.jitter))  # noqa: S311 - not crypto
        await self.sync_once()
        count = 0
        while self.rechecks is None or count < self.rechecks:
            await asyncio.sleep(self._interval if self._interval is not None else self.interval)
            await self.sync_once()
            count += 1

    def all_targets(self) -> list[HookTarget]:
        """The fixed targets and those found by ``discover`` at the last sync."""
        return self.targets + [t for t in self._discovered if t not in self.targets]

    async def sync_once(self) -> None:
        """List each target's hooks; reuse ours (updating it if needed) or create it."""
        assert self._session is not None
        if self.discover is not None:
            try:
                self._discovered = await self.discover(self._session)
                self._ok(_DISCOVERY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._failed(_DISCOVERY, describe(exc))  # keep the targets found before
        for target in self.all_targets():
            try:
                hooks = self.hook_list(await self.call(self._session, "GET", target.hooks_url))
                found = next((h for h in hooks if isinstance(h, Mapping) and self.matches(h)), None)
                if found is not None:
                    self.hook_ids[target.label] = found.get("id")
                    if self.needs_update is not None and self.needs_update(found):
                        hook_url = f"{target.hooks_url}/{found.get('id')}"
                        await self.call(self._session, "PUT", hook_url, json=self.create_body)
                        self.log.info(
                            "%s: hook %s updated for %s", self.what, found.get("id"), target.label, extra=self.labels
                        )
                    self._ok(target)
                    continue
                self.log.info("%s: no hook for %s, creating one", self.what, target.label, extra=self.labels)
                created = await self.call(self._session, "POST", target.hooks_url, json=self.create_body)
                if not isinstance(created, Mapping) or "id" not in created:
                    raise ValueError("the API answered without a hook id")
                self.hook_ids[target.label] = created["id"]
                self.log.info("%s: hook %s created for %s", self.what, created["id"], target.label, extra=self.labels)
                self._ok(target)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._failed(target, describe(exc))
        self.synced.set()

    async def _delete_all(self, session: aiohttp.ClientSession) -> None:
        for target in self.all_targets():
            hook_id = self.hook_ids.get(target.label)
            if hook_id is None:
                self.log.warning(
                    "%s: no known hook for %s, nothing to delete", self.what, target.label, extra=self.labels
                )
                continue
            try:
                await self.call(session, "DELETE", f"{target.hooks_url}/{hook_id}")
                self.hook_ids.pop(target.label, None)
                self.log.info("%s: hook %s deleted for %s", self.what, hook_id, target.label, extra=self.labels)
            except Exception as exc:  # noqa: BLE001
                self.log.error(
                    "%s: failed to delete hook for %s: %s",
                    self.what,
                    target.label,
                    describe(exc),
                    extra=self.labels,
                )

    async def call(self, session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
        """One API call (with the ``auth`` headers); the JSON answer, ``None`` for an empty one;
        :class:`ApiError` for an error status."""
        if self.auth is not None:
            kwargs["headers"] = dict(await self.auth(session))
        response_cm = session.request(method, yarl.URL(url, encoded=True), **kwargs)  # keep %2F in GitLab paths
        async with response_cm as response:
            text = await response.text()
            if response.status >= 300:
                raise ApiError(response.status, api_message(text))
            if not text.strip():
                return None
            return await _json(response)

    def _ok(self, target: HookTarget) -> None:
        if self._problems.pop(target.label, None) is not None:
            self.log.info("%s: hook for %s is in place again", self.what, target.label, extra=self.labels)
        self.problem = next(iter(self._problems.values()), None)

    def _failed(self, target: HookTarget, reason: str) -> None:
        if self._problems.get(target.label) != reason:
            self.log.error("%s: cannot manage the hook of %s: %s", self.what, target.label, reason, extra=self.labels)
        self._problems[target.label] = reason
        self.problem = f"{target.label}: {reason}"


_DISCOVERY = HookTarget("the list of repositories", "")


class ApiError(Exception):
    """The hosting service's API answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status


def api_message(text: str) -> str:
    """The ``message`` (or ``error``, or Bitbucket's ``errors[0].message``) of an API's JSON error
    answer, else the start of the text."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200]
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error") or ""
        errors = body.get("errors")
        if not message and isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            message = errors[0].get("message") or ""
        return str(message)[:200]
    return ""


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json(content_type=None)
