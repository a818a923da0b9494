"""The ``webhook`` event source: an HTTP endpoint that turns each request into one event.

Behaviour (Argo's, with the differences marked):

* The endpoint listens on ``port`` at the exact path ``endpoint``; every port also answers
  ``GET /health`` with ``OK``. Unknown paths get 404.
* ``authSecret``: the request must carry ``Authorization: Bearer <token>`` where the token is the
  Secret's value, compared in constant time; otherwise **401**. Any ``Authorization`` header is
  replaced by ``*** Masked Auth Secret ***`` before it goes into the event. If the Secret cannot
  be read the endpoint does not start (fail closed).
* The request method must equal ``method``; otherwise **405** with an ``Allow`` header
  (*difference*: Argo answers 400 "http method does not match").
* The body may be at most ``maxPayloadSize`` bytes (default 1 MiB); otherwise **413**
  (*difference*: Argo answers 400).
* Event ``body``:

  - ``GET``: the query parameters as ``{name: [values...]}``;
  - ``Content-Type: application/x-www-form-urlencoded``: the form fields as ``{name: [values...]}``;
  - anything else: the body parsed as JSON; an empty or invalid JSON body, or one nested deeper
    than 512 levels, gives **400**.

  *Difference*: ``PUT``, ``PATCH`` and ``DELETE`` endpoints read their body like ``POST``
  (Argo answers 400 "unsupported method" for them).
* Event data: ``{"header": {Name: [values...]}, "body": ..., "metadata": {...}}`` exactly as
  Argo; header names are canonicalised like Go (``content-type`` -> ``Content-Type``);
  ``metadata`` is left out when the endpoint has none.
* The answer comes only after the event is durable on the bus: **200** with
  ``{"id": "<event id>"}`` (*difference*: Argo answers ``success`` without the id), or **503**
  with a JSON error and ``Retry-After`` if it could not be stored (*difference*: Argo answers 500).
  Every error answer is ``{"error": "..."}`` and nothing is published on any error.
* Back-pressure and slow clients (:mod:`eventbridge.sources.http`): while too many accepted events
  wait for the sensors (``EVENTBRIDGE_MAX_BACKLOG``) or for the disk (``EVENTBRIDGE_MAX_INFLIGHT``)
  the endpoint answers **503** with ``Retry-After`` without reading the body; a body that does
  not arrive within ``EVENTBRIDGE_WEBHOOK_BODY_TIMEOUT`` seconds gets **408**.
* ``filter.expression`` (expr-lang over the event data, top-level ``-`` read as ``_``): a false
  result or an error drops the event and the caller still gets 200, with
  ``{"id": null, "filtered": true}``.
* Idempotent retries (*addition*): a sender that retries a request (after a timeout, a crash or a
  503) gets no second event when it names the request:

  - ``Idempotency-Key: "<key>"`` (IETF draft ``draft-ietf-httpapi-idempotency-key-header``; the
    Structured Field string form, or the bare value), otherwise
  - CloudEvents' ``ce-id`` header (binary content mode), otherwise
  - the ``id`` of a ``Content-Type: application/cloudevents+json`` body (structured mode)

  becomes the event id. The bus stores one event per (namespace, EventSource, event name, id):
  the embedded bus for as long as it keeps its log, the Kafka bus for the last 10,000 events a
  process published. A repeat is answered 200 with the same ``{"id": ...}`` as the first request
  and publishes nothing (its body is not compared: the first request's event stands). A key that
  is empty or longer than 255 characters gets **400**. Without any of these the id is random, as
  in Argo.
* TLS: with ``serverCertSecret`` and ``serverKeySecret`` (PEM certificate chain and private key in
  Secrets) the port serves HTTPS (TLS 1.2+). Every endpoint of one port must use the same pair or
  none (see :mod:`eventbridge.sources.http`); only one of the two set is an error (Argo silently
  serves plain HTTP then). A certificate or key that does not load fails the start.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.eventsource import WEBHOOK_METHODS, WebhookEventSource
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources.base import SOURCE_TYPES, SourceContext
from eventbridge.sources.http import (
    MASKED_AUTH,
    MAX_JSON_DEPTH,
    BodyTimeout,
    PayloadTooLarge,
    body_timeout_from_env,
    canonical_header_name,
    json_answer,
    json_depth,
    json_error,
    read_body,
    request_headers,
    server_tls,
)

log = logging.getLogger(__name__)

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
CLOUDEVENTS_JSON = "application/cloudevents+json"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
CE_ID_HEADER = "ce-id"
#: Longest idempotency key (or CloudEvents id) taken as an event id.
MAX_IDEMPOTENCY_KEY = 255


def _structured_string(value: str) -> str:
    """An RFC 8941 sf-string's content (``"a\\"b"`` -> ``a"b``); other values are taken as they are."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        inner, out, escaped = text[1:-1], [], False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return text


def idempotency_key(headers: Mapping[str, str], content_type: str, body: Any) -> str | None:
    """The sender's name for this request (see the module docstring), ``None`` when it gives none.

    Raises ValueError for an empty or too long key.
    """
    raw = headers.get(IDEMPOTENCY_KEY_HEADER)
    what = IDEMPOTENCY_KEY_HEADER
    if raw is not None:
        key: str | None = _structured_string(raw)
    elif headers.get(CE_ID_HEADER) is not None:
        key, what = headers[CE_ID_HEADER].strip(), CE_ID_HEADER
    elif content_type == CLOUDEVENTS_JSON and isinstance(body, dict) and "id" in body:
        key, what = body["id"] if isinstance(body["id"], str) else None, "the CloudEvent id"
        if key is None:
            raise ValueError("the CloudEvent id must be a string")
    else:
        return None
    if not key:
        raise ValueError(f"{what} is empty")
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"{what} is longer than {MAX_IDEMPOTENCY_KEY} characters")
    return key


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def _parse_json(raw: bytes) -> Any:
    """Strict JSON (no ``NaN``/``Infinity``): orjson, and :mod:`json` for the error message."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw, parse_constant=_reject_constant)


class WebhookSource:
    """One ``spec.webhook.<event name>`` endpoint."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        if not isinstance(spec, WebhookEventSource):
            spec = WebhookEventSource.model_validate(spec)
        findings = [f for f in spec.check_context(f"spec.webhook.{event_name}") if f.severity == "error"]
        if findings:
            raise InvalidError("; ".join(f"{f.path}: {f.message}" for f in findings))
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.method = spec.method.upper()
        self.port = spec.port_number() or 0
        self.endpoint = spec.endpoint
        self.bound_port: int | None = None
        self._token: bytes | None = None
        self._filter: EventFilter | None = None
        self._labels = context.labels(event_name)
        self._owner = f"{context.eventsource.namespace}/{context.eventsource.name}/{event_name}"
        self._body_timeout = body_timeout_from_env()

    async def start(self) -> None:
        """Read the auth Secret, then open the route (binding the port if it is the first)."""
        if self.spec.auth_secret is not None:
            token = self.context.secret(self.spec.auth_secret)
            if not token:
                raise InvalidError(
                    f"authSecret {self.spec.auth_secret.name}/{self.spec.auth_secret.key} is empty; "
                    "refusing to open the endpoint without a token"
                )
            self._token = token.encode()
        self._filter = EventFilter(self.spec.filter, log, self._labels)
        tls = server_tls(self.spec, self.context.secret)
        self.bound_port = await self.context.router.add_route(
            self.port, self.endpoint, self.handle, owner=self._owner, tls=tls
        )
        log.info(
            "webhook %s %s listening on port %d (%s)",
            self.method,
            self.endpoint,
            self.bound_port,
            "HTTPS" if tls is not None else "HTTP",
            extra=self._labels,
        )

    async def stop(self) -> None:
        if self.bound_port is not None:
            self.context.router.remove_route(self.port, self.endpoint, owner=self._owner)
            self.bound_port = None

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Check, parse, publish durably, then answer (see the module docstring)."""
        if self._token is not None:
            problem = self._check_auth(request.headers.get("Authorization", ""))
            if problem:
                return json_error(401, problem, headers={"WWW-Authenticate": "Bearer"})
        if request.method != self.method:
            return json_error(
                405,
                f"method {request.method} is not allowed; this endpoint accepts {self.method}",
                headers={"Allow": self.method},
            )
        try:
            body = await self._body(request)
        except PayloadTooLarge:
            return json_error(413, f"request body is larger than maxPayloadSize ({self.spec.max_payload_size} bytes)")
        except BodyTimeout:
            raise  # the router answers 408 and closes the connection
        except ValueError as exc:
            return json_error(400, str(exc))
        try:
            event_id = idempotency_key(request.headers, request.content_type, body)
        except ValueError as exc:
            return json_error(400, str(exc))
        data: dict[str, Any] = {"header": request_headers(request), "body": body}
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        if self._filter is not None and not self._filter.accepts(data):
            return json_answer({"id": None, "filtered": True})
        try:
            event = await self.context.dispatch(self.event_name, data, event_id=event_id)
        except Exception as exc:  # noqa: BLE001
            log.error("failed to record webhook event: %s", exc, extra=self._labels)
            return json_error(503, "failed to record the event; retry later", headers={"Retry-After": "1"})
        return json_answer({"id": event.id})

    def _check_auth(self, header: str) -> str | None:
        assert self._token is not None
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return "missing or invalid Authorization header; send 'Authorization: Bearer <token>'"
        if not hmac.compare_digest(given.strip().encode(), self._token):
            return "invalid auth token"
        return None

    async def _body(self, request: web.BaseRequest) -> Any:
        if request.method == "GET":
            return {key: request.query.getall(key) for key in request.query}
        raw = await self._read_limited(request)
        if request.content_type == FORM_CONTENT_TYPE:
            try:
                text = raw.decode()
            except UnicodeDecodeError as exc:
                raise ValueError("form body is not valid UTF-8") from exc
            return parse_qs(text, keep_blank_values=True)
        if not raw.strip():
            raise ValueError("request body is empty; send a JSON document")
        try:
            body = _parse_json(raw)
        except RecursionError:
            raise ValueError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels") from None
        except ValueError as exc:
            raise ValueError(f"request body is not valid JSON: {exc}") from exc
        if json_depth(body) > MAX_JSON_DEPTH:
            raise ValueError(f"request body is nested deeper than {MAX_JSON_DEPTH} levels")
        return body

    async def _read_limited(self, request: web.BaseRequest) -> bytes:
        return await read_body(request, self.spec.max_payload_size, self._body_timeout)


SOURCE_TYPES.register("webhook")(WebhookSource)

__all__ = [
    "MASKED_AUTH",
    "WEBHOOK_METHODS",
    "WebhookSource",
    "canonical_header_name",
    "idempotency_key",
    "request_headers",
]
