"""What the HTTP handlers share: the :class:`ApiContext`, errors in argo-server's shape, input checks.

Errors are short JSON objects in grpc-gateway's shape, as argo-server sends them:
``{"code": <grpc code>, "error": "...", "message": "..."}`` with the matching HTTP status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from aiohttp import web

from eventbridge.bus.base import Delivery
from eventbridge.errors import InvalidError
from eventbridge.events import Event
from eventbridge.executors.base import Executor
from eventbridge.models.eventsource import EventSource
from eventbridge.models.sensor import Sensor
from eventbridge.server.auth import PRINCIPAL_KEY, Auth
from eventbridge.sources.manager import EndpointInfo, SourceStatus
from eventbridge.store.base import Object, Store

MAX_BODY_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_UID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

# grpc codes used by argo-server's gateway
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 500: 13, 501: 12, 503: 14}


class EventLog(Protocol):
    """The read side of the bus the event log view needs (the SQLite bus has it)."""

    @property
    def head(self) -> int: ...

    async def list_events(
        self,
        *,
        after: int = 0,
        limit: int = 100,
        namespace: str | None = None,
        source: str | None = None,
        subject: str | None = None,
    ) -> list[Delivery]: ...

    async def publish(self, event: Event) -> bool: ...


class SourcesView(Protocol):
    """What the API reads from the running event sources (the SourceManager has it)."""

    def status(self) -> list[SourceStatus]: ...

    def endpoints(self) -> list[EndpointInfo]: ...


class TraceLog(Protocol):
    """Sensor decisions kept for "why did it (not) fire": newest first.

    Items may be dataclasses or mappings; they are returned as JSON objects. The method may be
    synchronous or a coroutine.
    """

    def traces(self, namespace: str, sensor: str, limit: int = 100) -> Any: ...


@dataclass(frozen=True)
class ApiContext:
    """What the API and UI need from the running process. Only ``store`` and ``executor`` are required.

    * ``bus``: the event log (search, replay); without it the events endpoints answer 501.
    * ``eventsources`` / ``sensors``: callables returning the loaded EventSources / Sensors.
    * ``sources``: the SourceManager (running state and endpoints of each event).
    * ``traces``: the sensors' TraceLog.
    * ``cron_next``: ``(namespace, name) -> next run time`` from the running CronScheduler; without
      it next times are computed from the schedule.
    * ``auth``: bearer tokens; None means no authentication.
    """

    store: Store
    executor: Executor
    bus: EventLog | None = None
    eventsources: Callable[[], Sequence[EventSource]] | None = None
    sensors: Callable[[], Sequence[Sensor]] | None = None
    sources: SourcesView | None = None
    traces: TraceLog | None = None
    cron_next: Callable[[str, str], datetime | None] | None = None
    auth: Auth | None = None
    managed_namespace: str = ""
    links: Sequence[Mapping[str, str]] = field(default_factory=tuple)
    ui: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    log_poll_seconds: float = 0.5
    heartbeat_seconds: float = 15.0


CONTEXT: web.AppKey[ApiContext] = web.AppKey("context", ApiContext)
#: Set when the application shuts down: streaming handlers (watch, log follow) end at once.
CLOSING: web.AppKey[asyncio.Event] = web.AppKey("closing", asyncio.Event)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def error(status: int, message: str) -> web.Response:
    code = _GRPC.get(status, 2)
    return web.json_response({"code": code, "error": message, "message": message}, status=status)


def name_param(request: web.Request, key: str) -> str:
    """A path parameter that must be an RFC 1123 name (this also rules out path traversal)."""
    return check_name(request.match_info[key], key)


def check_name(value: str, what: str = "name") -> str:
    if not _NAME.match(value):
        raise InvalidError(f"invalid {what} {value!r}: must be a lowercase RFC 1123 name")
    return value


def uid_param(request: web.Request) -> str:
    value = request.match_info["uid"]
    if not _UID.match(value):
        raise InvalidError(f"invalid uid {value!r}")
    return value


def namespace_param(request: web.Request) -> str | None:
    """The ``{namespace}`` path part, or None when the path lists every namespace."""
    value = request.match_info.get("namespace", "")
    return check_name(value, "namespace") if value else None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``); InvalidError otherwise."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidError("request body is nested too deeply") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, or an integer too long to convert
        raise InvalidError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidError("request body must be a JSON object")
    return body


def query_bool(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("true", "1", "yes")


def query_int(request: web.Request, key: str, default: int, *, minimum: int = 0, maximum: int = 10_000) -> int:
    text = request.query.get(key, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidError(f"{key} must be an integer, not {text!r}") from None
    if not minimum <= value <= maximum:
        raise InvalidError(f"{key} must be between {minimum} and {maximum}")
    return value


def jsonable(value: Any) -> Any:
    """Plain JSON values from dataclasses, mappings, datetimes, tuples and sets."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    dump = getattr(value, "dump", None)
    if callable(dump):
        return jsonable(dump())
    return str(value)


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def list_response(items: list[Object], *, continue_token: str = "", resource_version: str = "") -> web.Response:
    metadata: dict[str, str] = {}
    if continue_token:
        metadata["continue"] = continue_token
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return web.json_response({"metadata": metadata, "items": items})


def allowed_namespaces(request: web.Request) -> frozenset[str] | None:
    """The namespaces the caller may see (None: all). Set by the auth middleware."""
    who = request.get(PRINCIPAL_KEY)
    return who.namespaces if who is not None else None


def may_see(request: web.Request, namespace: str) -> bool:
    allowed = allowed_namespaces(request)
    return allowed is None or namespace in allowed


def event_json(delivery: Delivery) -> dict[str, Any]:
    """One logged event for the API: its offset plus the CloudEvent."""
    return {"offset": delivery.offset, "event": delivery.event.to_cloudevent()}
