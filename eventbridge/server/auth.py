"""Bearer tokens for the API and the UI (embedded mode).

Tokens come from a file (one per line) and/or ``EVENTBRIDGE_AUTH_TOKENS`` (entries separated by
``;``). An entry is the token followed by optional words::

    s3cr3t-admin
    s3cr3t-viewer  read
    s3cr3t-team-a  write  namespaces=team-a,team-b  name=team-a-ci

``read`` tokens may only use GET/HEAD (and lint, which changes nothing); ``write`` (the default)
may do everything; ``namespaces=`` limits the token to those namespaces (cluster-scoped objects
such as ClusterWorkflowTemplates can then be read but not changed). Lines starting with ``#``
are comments. The server accepts ``Authorization: Bearer <token>`` (or the bare token, as the argo
CLI may send it) and, for the browser, the ``authorization`` cookie set by ``/login``.
Missing or unknown token: 401; not allowed: 403. Tokens are never logged.

The middleware works with any :class:`Authenticator`: :class:`Auth` (the token list above) or, in
cluster mode, :class:`eventbridge.server.auth_kube.KubeAuth` (TokenReview + SubjectAccessReview).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from eventbridge.errors import InvalidError

ENV_TOKENS = "EVENTBRIDGE_AUTH_TOKENS"
COOKIE = "authorization"
#: Paths anyone may fetch: health, metrics, the login page and static assets.
PUBLIC_PREFIXES = ("/static/", "/login", "/logout", "/metrics", "/healthz")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a token stands for and what it may do."""

    name: str
    write: bool = True
    namespaces: frozenset[str] | None = None  # None: every namespace
    groups: tuple[str, ...] = ()  # the identity's groups (cluster mode; shown by /api/v1/userinfo)

    def may_write_in(self, namespace: str | None) -> bool:
        if not self.write:
            return False
        if namespace is None:
            return self.namespaces is None
        return self.namespaces is None or namespace in self.namespaces

    def may_read_in(self, namespace: str | None) -> bool:
        return namespace is None or self.namespaces is None or namespace in self.namespaces


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AuthUnavailableError(Exception):
    """The authenticator could not decide (its back-end failed); the request gets 503."""


class Authenticator(Protocol):
    """What the auth middleware needs: who a token is, and whether they may make a request."""

    async def authenticate(self, token: str) -> Principal | None:
        """The token's principal; None for an unknown token (401). May raise AuthUnavailableError."""
        ...

    async def authorize(self, principal: Principal, request: web.Request) -> str | None:
        """None when ``principal`` may make ``request``; else why not (403). May raise AuthUnavailableError."""
        ...


class Auth:
    """A set of tokens (kept as SHA-256 digests) and what each may do (an :class:`Authenticator`)."""

    def __init__(self, entries: Mapping[str, Principal]) -> None:
        self._by_digest = {_digest(token): who for token, who in entries.items()}

    def __len__(self) -> int:
        return len(self._by_digest)

    def check(self, token: str) -> Principal | None:
        wanted = _digest(token)
        found: Principal | None = None
        for digest, who in self._by_digest.items():  # compare all, in constant time each
            if hmac.compare_digest(digest, wanted):
                found = who
        return found

    async def authenticate(self, token: str) -> Principal | None:
        return self.check(token)

    async def authorize(self, principal: Principal, request: web.Request) -> str | None:
        """Read tokens may read (and lint); write tokens may change; ``namespaces=`` confines both."""
        namespace = request_namespace(request)
        if _is_read(request):
            if not principal.may_read_in(namespace):
                return f"{principal.name} may not read namespace {namespace!r}"
        elif not principal.may_write_in(namespace):
            where = f"namespace {namespace!r}" if namespace else "cluster-scoped objects"
            what = "is read-only" if not principal.write else f"may not change {where}"
            return f"{principal.name} {what}"
        return None

    @classmethod
    def parse(cls, lines: Iterable[str], origin: str = "tokens") -> Auth:
        """Parse token entries; InvalidError names the entry number (never the token)."""
        entries: dict[str, Principal] = {}
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            token, *words = line.split()
            write = True
            namespaces: frozenset[str] | None = None
            name = f"token-{number}"
            for word in words:
                if word in ("read", "readonly", "read-only"):
                    write = False
                elif word in ("write", "admin"):
                    write = True
                elif word.startswith("namespaces="):
                    namespaces = frozenset(n for n in word.partition("=")[2].split(",") if n)
                elif word.startswith("name="):
                    name = word.partition("=")[2] or name
                else:
                    raise InvalidError(
                        f"{origin}: entry {number}: unknown word {word!r}; use read, write, namespaces=a,b or name=x"
                    )
            if len(token) < 8:
                raise InvalidError(f"{origin}: entry {number}: token is shorter than 8 characters")
            entries[token] = Principal(name, write, namespaces)
        return cls(entries)


def load_auth(path: Path | None = None, env: Mapping[str, str] | None = None) -> Auth | None:
    """Tokens from ``path`` and ``$EVENTBRIDGE_AUTH_TOKENS``; None when neither gives any."""
    environ = os.environ if env is None else env
    lines: list[str] = []
    if path is not None:
        lines += path.read_text("utf-8").splitlines()
    lines += environ.get(ENV_TOKENS, "").split(";")
    auth = Auth.parse(lines, str(path) if path else ENV_TOKENS)
    return auth if len(auth) else None


def request_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "").strip()
    if not header:
        header = request.cookies.get(COOKIE, "").strip()
    scheme, _, rest = header.partition(" ")
    if scheme.lower() == "bearer":
        return rest.strip()
    return header


def request_namespace(request: web.Request) -> str | None:
    """The namespace a request is about: the ``{namespace}`` path part, else ``?namespace=``; None: none/all."""
    return request.match_info.get("namespace") or request.query.get("namespace") or None


def _is_public(path: str) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p) for p in PUBLIC_PREFIXES)


def _is_read(request: web.Request) -> bool:
    return request.method in _READ_METHODS or request.path.endswith("/lint")


PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


#: The application's authenticator (set by build_app when auth is on), e.g. for the login page.
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator", Authenticator)


def middleware(
    auth: Authenticator, denied: Callable[[web.Request, int, str], web.StreamResponse]
) -> Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware enforcing ``auth``; ``denied`` renders 401/403 (and 503) answers."""

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if _is_public(request.path):
            return await handler(request)
        token = request_token(request)
        try:
            who = await auth.authenticate(token) if token else None
            if who is None:
                return denied(request, 401, "a valid bearer token is required (Authorization: Bearer <token>)")
            problem = await auth.authorize(who, request)
        except AuthUnavailableError as exc:
            return denied(request, 503, str(exc))
        if problem is not None:
            return denied(request, 403, problem)
        request[PRINCIPAL_KEY] = who
        return await handler(request)

    return check
