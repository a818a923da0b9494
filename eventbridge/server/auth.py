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
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

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


class Auth:
    """A set of tokens (kept as SHA-256 digests) and what each may do."""

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


def _is_public(path: str) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p) for p in PUBLIC_PREFIXES)


def _is_read(request: web.Request) -> bool:
    return request.method in _READ_METHODS or request.path.endswith("/lint")


PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("principal", Principal)


def middleware(
    auth: Auth, denied: Callable[[web.Request, int, str], web.StreamResponse]
) -> Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[web.StreamResponse]]:
    """An aiohttp middleware enforcing ``auth``; ``denied`` renders 401/403 answers."""

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if _is_public(request.path):
            return await handler(request)
        token = request_token(request)
        who = auth.check(token) if token else None
        if who is None:
            return denied(request, 401, "a valid bearer token is required (Authorization: Bearer <token>)")
        namespace = request.match_info.get("namespace") or request.query.get("namespace") or None
        if _is_read(request):
            if not who.may_read_in(namespace):
                return denied(request, 403, f"{who.name} may not read namespace {namespace!r}")
        elif not who.may_write_in(namespace):
            where = f"namespace {namespace!r}" if namespace else "cluster-scoped objects"
            what = "is read-only" if not who.write else f"may not change {where}"
            return denied(request, 403, f"{who.name} {what}")
        request[PRINCIPAL_KEY] = who
        return await handler(request)

    return check
