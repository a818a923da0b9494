"""Shared HTTP servers for webhook-style sources: one aiohttp server per port, routes per path.

* Routes can be added and removed while the server runs (hot reload); matching is on the exact
  request path.
* Every port answers ``/health`` with 200 ``OK`` (any method, as Argo does).
* An unknown path gets 404 with a short JSON error; a handler that raises gets 500.
* Port ``0`` asks the OS for a free port; :meth:`HttpRouter.bound_port` tells which one.
* Back-pressure: with a ``pressure`` callable (the embedded bus's :meth:`SqliteBus.pressure`), a
  request to an endpoint while it returns a reason gets **503** with ``Retry-After`` (seconds,
  ``EVENTBRIDGE_RETRY_AFTER``, default 1) before its body is read, so a slow consumer or a slow
  disk makes senders back off instead of growing memory.
* A request body must arrive within ``body_timeout`` seconds (``EVENTBRIDGE_WEBHOOK_BODY_TIMEOUT``,
  default 30): a client that never finishes its body gets **408** and its connection is closed;
  other requests are not held up meanwhile.
* JSON bodies may nest at most :data:`MAX_JSON_DEPTH` levels (:func:`json_depth`); a body that
  is nested too deeply for the parser gets **400** from any endpoint, never a 500.
* aiohttp's own limits apply to request lines and headers (8190 bytes per line or field, at most
  128 header fields): a request over them gets 400 or 431 before any handler runs.
* HTTPS: a route added with a :class:`ServerTLS` (``serverCertSecret``/``serverKeySecret``) makes
  its port serve TLS 1.2+ with that certificate chain and key. TLS is per port, as in Argo, where the
  first endpoint of a port starts its server: every endpoint of one port must use the same
  certificate and key, or none; a route that disagrees with the port's running server is refused
  (ConflictError), unless the port has no routes left (a hot reload with a new certificate), in
  which case the port's server is restarted with it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from eventbridge import jsontree
from eventbridge.errors import ConflictError, InvalidError
from eventbridge.models.eventsource import SecretKeySelector, WebhookContext

log = logging.getLogger(__name__)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

HEALTH_PATH = "/health"

#: What replaces an ``Authorization`` header before the headers go into an event.
MASKED_AUTH = "*** Masked Auth Secret ***"

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@functools.lru_cache(maxsize=4096)
def canonical_header_name(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-github-event`` -> ``X-Github-Event``.

    Names with characters that are not valid in a header token are returned unchanged, as Go does.
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


def request_headers(request: web.BaseRequest) -> dict[str, list[str]]:
    """Headers as Go's ``http.Header``: canonical names, list of values, ``Host`` left out,
    ``Authorization`` masked."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        key = canonical_header_name(name)
        if key == "Host":
            continue
        headers.setdefault(key, []).append(value)
    if "Authorization" in headers:
        headers["Authorization"] = [MASKED_AUTH]
    return headers


#: Deepest nesting of a JSON body that webhook-style sources accept (deeper ones get 400): far
#: beyond real payloads, far below what would strain the engines' recursive code downstream.
MAX_JSON_DEPTH = 512

ENV_BODY_TIMEOUT = "EVENTBRIDGE_WEBHOOK_BODY_TIMEOUT"
ENV_RETRY_AFTER = "EVENTBRIDGE_RETRY_AFTER"
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_RETRY_AFTER = 1

#: Why a push-style source should refuse new events now (``None``: accept).
Pressure = Callable[[], str | None]


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise InvalidError(f"{name}={raw!r} must be more than 0")
    return value


def body_timeout_from_env() -> float:
    """Seconds a client has to send its whole body (``EVENTBRIDGE_WEBHOOK_BODY_TIMEOUT``, default 30)."""
    return _env_number(ENV_BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)


def json_depth(value: object) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0, ``[]`` and ``{}`` are 1); iterative."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class PayloadTooLarge(Exception):
    """The request body is larger than the endpoint's ``maxPayloadSize``."""


class BodyTimeout(Exception):
    """The client did not send its whole body in time."""


async def read_body(request: web.BaseRequest, limit: int, within: float | None = None) -> bytes:
    """The whole request body, or :class:`PayloadTooLarge` as soon as it exceeds ``limit`` bytes,
    or :class:`BodyTimeout` when it takes longer than ``within`` seconds (default: from the
    environment, see :func:`body_timeout_from_env`; sources read it once when they are made)."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge
    if request.content.is_eof():
        # The whole body has arrived already (a small request in one read): no timer to arm.
        body = request.content.read_nowait()
        if len(body) > limit:
            raise PayloadTooLarge
        return body
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within if within is not None else body_timeout_from_env()):
            async for chunk in request.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout from None
    return b"".join(chunks)


def json_answer(data: object, status: int = 200, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer of a source endpoint (encoded with orjson: ``web.json_response`` would use
    the standard library's encoder, a visible share of a webhook request)."""
    return web.Response(status=status, body=jsontree.dumps(data), content_type="application/json", headers=headers)


def json_error(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """The error answer of every source endpoint: ``{"error": "..."}``."""
    return json_answer({"error": message}, status, headers=headers)


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """A PEM certificate chain and private key to serve HTTPS with (the key never appears in reprs)."""

    cert_pem: str
    key_pem: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """Identifies this certificate and key (two endpoints of one port must agree on it)."""
        return hashlib.sha256(self.cert_pem.encode() + b"\0" + self.key_pem.encode()).hexdigest()

    def ssl_context(self) -> ssl.SSLContext:
        """A server context (TLS 1.2 or later); InvalidError when the PEM texts are not a matching
        certificate and key (the message names no secret content)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain reads files only: write both to a private folder that is removed at once
        with tempfile.TemporaryDirectory(prefix="eventbridge-tls-") as folder:
            cert_file, key_file = Path(folder, "tls.crt"), Path(folder, "tls.key")
            for path, text in ((cert_file, self.cert_pem), (key_file, self.key_pem)):
                path.touch(mode=0o600)
                path.write_text(text)
            try:
                context.load_cert_chain(cert_file, key_file)
            except ssl.SSLError as exc:
                raise InvalidError(
                    "serverCertSecret/serverKeySecret are not a PEM certificate and its private key "
                    f"({exc.reason or 'unreadable'})"
                ) from None
        return context


def server_tls(webhook: WebhookContext, secret: Callable[[SecretKeySelector], str]) -> ServerTLS | None:
    """The HTTPS certificate and key of an endpoint (``serverCertSecret``/``serverKeySecret`` read
    through ``secret``), ``None`` for plain HTTP; InvalidError when only one is set or one is empty."""
    if webhook.server_cert_secret is None and webhook.server_key_secret is None:
        return None
    if webhook.server_cert_secret is None or webhook.server_key_secret is None:
        raise InvalidError("serverCertSecret and serverKeySecret must be set together to serve HTTPS")
    cert, key = secret(webhook.server_cert_secret), secret(webhook.server_key_secret)
    if not cert.strip() or not key.strip():
        raise InvalidError("serverCertSecret or serverKeySecret is empty; refusing to serve HTTPS without them")
    tls = ServerTLS(cert, key)
    tls.ssl_context()  # fail at start, with a clear reason, rather than when the port opens
    return tls


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """One open endpoint: the configured port, the port actually bound, the path, its owner and
    whether the port serves HTTPS."""

    port: int
    bound_port: int
    path: str
    owner: str
    https: bool = False


@dataclass(slots=True)
class _Route:
    handler: Handler
    owner: str


@dataclass(slots=True)
class _PortServer:
    port: int
    bound_port: int
    runner: web.ServerRunner
    tls_fingerprint: str | None = None
    routes: dict[str, _Route] = field(default_factory=dict)


class HttpRouter:
    """Owns the listening sockets; sources register ``(port, path) -> handler``."""

    def __init__(
        self,
        host: str = "0.0.0.0",
        *,
        shutdown_timeout: float = 5.0,
        pressure: Pressure | None = None,
        retry_after: int | None = None,
    ) -> None:
        """``pressure``: see the module docstring; ``retry_after``: seconds for ``Retry-After``
        (default ``EVENTBRIDGE_RETRY_AFTER`` or 1)."""
        self.host = host
        self.shutdown_timeout = shutdown_timeout
        self.pressure = pressure
        self.retry_after = (
            retry_after if retry_after is not None else max(1, round(_env_number(ENV_RETRY_AFTER, DEFAULT_RETRY_AFTER)))
        )
        self.refused = 0  # requests answered 503 because of back-pressure
        self._servers: dict[int, _PortServer] = {}
        self._lock = asyncio.Lock()

    async def add_route(
        self, port: int, path: str, handler: Handler, *, owner: str = "", tls: ServerTLS | None = None
    ) -> int:
        """Serve ``path`` on ``port`` with ``handler``; starts the port's server if needed (HTTPS
        with ``tls``).

        Returns the bound port. Raises ConflictError if the path is taken or the port's server
        disagrees on TLS, InvalidError for a bad certificate or key, OSError if the port cannot be
        bound.
        """
        if not path.startswith("/"):
            raise InvalidError(f"endpoint {path!r} must start with '/'")
        if path == HEALTH_PATH:
            raise ConflictError(f"endpoint {HEALTH_PATH} is reserved for the health check")
        fingerprint = tls.fingerprint if tls is not None else None
        async with self._lock:
            server = self._servers.get(port)
            if server is not None and server.tls_fingerprint != fingerprint:
                if server.routes:
                    raise ConflictError(_tls_conflict(port, server, tls))
                del self._servers[port]  # idle: restart it with the new TLS setting
                await server.runner.cleanup()
                server = None
            if server is None:
                server = await self._start_server(port, tls)
                self._servers[port] = server
            taken = server.routes.get(path)
            if taken is not None:
                raise ConflictError(
                    f"port {port} endpoint {path} is already served by {taken.owner or 'another source'}"
                )
            server.routes[path] = _Route(handler, owner)
            return server.bound_port

    def remove_route(self, port: int, path: str, *, owner: str | None = None) -> None:
        """Stop serving ``path`` (later requests get 404); the server keeps running (:meth:`close_idle`).

        With ``owner``, the route is removed only if that owner registered it.
        """
        server = self._servers.get(port)
        if server is None:
            return
        route = server.routes.get(path)
        if route is not None and (owner is None or route.owner == owner):
            del server.routes[path]

    async def close_idle(self) -> None:
        """Stop the servers of ports that have no routes left."""
        async with self._lock:
            for port in [p for p, s in self._servers.items() if not s.routes]:
                server = self._servers.pop(port)
                await server.runner.cleanup()
                log.info("closed webhook port %d", server.bound_port, extra={"port": server.bound_port})

    async def stop(self) -> None:
        """Stop every server (in-flight requests get ``shutdown_timeout`` to finish)."""
        async with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            for server in servers:
                await server.runner.cleanup()

    def bound_port(self, port: int) -> int | None:
        """The port actually listening for configured ``port`` (differs only for 0)."""
        server = self._servers.get(port)
        return server.bound_port if server else None

    def routes(self) -> list[RouteInfo]:
        """Every open endpoint, by port then path."""
        return [
            RouteInfo(server.port, server.bound_port, path, route.owner, server.tls_fingerprint is not None)
            for server in sorted(self._servers.values(), key=lambda s: s.port)
            for path, route in sorted(server.routes.items())
        ]

    async def _start_server(self, port: int, tls: ServerTLS | None = None) -> _PortServer:
        ssl_context = tls.ssl_context() if tls is not None else None  # before binding: a bad key binds nothing
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        bound_port = int(sock.getsockname()[1])
        holder: dict[str, _PortServer] = {}

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            return await self._dispatch(holder["server"], request, self)

        runner = web.ServerRunner(web.Server(handle, access_log=None), shutdown_timeout=self.shutdown_timeout)
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        server = _PortServer(port, bound_port, runner, tls.fingerprint if tls is not None else None)
        holder["server"] = server
        log.info(
            "listening for webhooks on %s:%d (%s)",
            self.host,
            bound_port,
            "HTTPS" if tls is not None else "HTTP",
            extra={"port": bound_port},
        )
        return server

    @staticmethod
    async def _dispatch(server: _PortServer, request: web.BaseRequest, router: HttpRouter) -> web.StreamResponse:
        route = server.routes.get(request.path)
        if route is None:
            if request.path == HEALTH_PATH:
                return web.Response(text="OK")
            return json_error(404, f"no endpoint {request.path} on this port")
        if router.pressure is not None:
            reason = router.pressure()
            if reason is not None:
                router.refused += 1
                if router.refused == 1 or router.refused % 1000 == 0:
                    log.warning(
                        "webhook requests refused with 503 (%d so far): %s",
                        router.refused,
                        reason,
                        extra={"endpoint": request.path},
                    )
                return json_error(
                    503,
                    "too many events are waiting; retry later",
                    headers={"Retry-After": str(router.retry_after)},
                )
        try:
            return await route.handler(request)
        except BodyTimeout:
            return _body_timeout_answer()
        except RecursionError:
            return json_error(400, "request body is nested too deeply")
        except web.HTTPException:
            raise
        except Exception:
            log.exception("webhook handler for %s failed", request.path, extra={"endpoint": request.path})
            return json_error(500, "internal error")


def _tls_conflict(port: int, server: _PortServer, tls: ServerTLS | None) -> str:
    serving = "HTTPS" if server.tls_fingerprint is not None else "plain HTTP"
    if tls is None:
        wanted = "plain HTTP"
    elif server.tls_fingerprint is None:
        wanted = "HTTPS"
    else:
        wanted = "HTTPS with another certificate"
    return (
        f"port {port} already serves {serving} for other endpoints and cannot also serve {wanted}; "
        "give every endpoint of one port the same serverCertSecret/serverKeySecret, or use another port"
    )


def _body_timeout_answer() -> web.Response:
    response = json_error(408, "the request body did not arrive in time")
    response.force_close()
    return response
