"""The ``http`` trigger: one HTTP request per firing (Argo's HTTPTrigger), with aiohttp.

* ``parameters`` are applied to the trigger object itself first (e.g. ``dest: url``).
* The body is built from ``payload`` parameters (Argo's ConstructPayload: a JSON object, or the
  raw value of a parameter with an empty ``dest``); no ``payload`` means an empty body.
* ``method`` defaults to POST; ``headers``; ``dynamicHeaders`` (a parameter per header, ``dest``
  is the header name); ``secureHeaders`` and ``basicAuth`` read Secrets/ConfigMaps through
  :class:`eventbridge.models.base.References` (their values never appear in logs, errors,
  traces or ``sensor test`` output); ``host`` overrides the Host header; ``timeout`` in seconds
  (default 60); ``tls`` (CA, client certificate and key from Secrets, ``insecureSkipVerify``).
* Redirects are followed only to the same host (at most 5); a redirect to another host fails
  (secrets must not leak to it).

Status handling (differs from Argo on purpose): with ``policy.status.allow`` the response status
must be in the list, as in Argo, otherwise the firing fails permanently. **Without** a status
policy, Argo counts any response as success; eventbridge counts a 5xx response as a failure
(retried per ``retryStrategy``) so that a broken endpoint is visible and retried. 4xx and other
statuses succeed, as in Argo.
"""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from eventbridge.errors import PermanentError, TemporaryError
from eventbridge.models.sensor import HTTPTrigger
from eventbridge.triggers._secrets import REDACTED, secret_value, secure_header_value, ssl_context
from eventbridge.triggers.base import TRIGGERS, TriggerAction, TriggerCall, TriggerOutcome

DEFAULT_TIMEOUT = 60
MAX_REDIRECTS = 5


@TRIGGERS.register("http")
class HttpTrigger(TriggerAction):
    key = "http"
    _session: aiohttp.ClientSession | None = None

    def _spec(self, call: TriggerCall) -> HTTPTrigger:
        spec = call.template.http
        if spec is None:
            raise PermanentError(f"trigger {call.template.name}: http is not set")
        if spec.parameters:
            document = call.apply_params(spec.dump(), spec.parameters)
            spec = HTTPTrigger.model_validate(document)
        if not spec.url:
            raise PermanentError(f"trigger {call.template.name}: http.url is required")
        if urlsplit(spec.url).scheme not in ("http", "https") or not urlsplit(spec.url).hostname:
            raise PermanentError(f"trigger {call.template.name}: http.url {spec.url!r} must be an http(s) URL")
        return spec

    def _headers(self, call: TriggerCall, spec: HTTPTrigger, *, reveal: bool) -> dict[str, str]:
        headers: dict[str, str] = dict(spec.headers or {})
        for parameter in spec.dynamic_headers or []:
            value = call.resolve_value(parameter)
            if value is not None and parameter.dest:
                headers[parameter.dest] = value
        for header in spec.secure_headers or []:
            headers[header.name] = secure_header_value(self, header) if reveal else REDACTED
        if spec.host:
            headers["Host"] = spec.host
        return headers

    async def preview(self, call: TriggerCall) -> Any:
        spec = self._spec(call)
        body = call.build_payload(spec.payload) if spec.payload is not None else b""
        try:
            shown_body: Any = json.loads(body) if body else None
        except ValueError:
            shown_body = body.decode(errors="replace")
        preview: dict[str, Any] = {
            "method": (spec.method or "POST").upper(),
            "url": spec.url,
            "headers": self._headers(call, spec, reveal=False),
            "body": shown_body,
        }
        if spec.basic_auth is not None:
            preview["basicAuth"] = REDACTED
        return preview

    async def execute(self, call: TriggerCall) -> TriggerOutcome:
        spec = self._spec(call)
        method = (spec.method or "POST").upper()
        body = call.build_payload(spec.payload) if spec.payload is not None else b""
        headers = self._headers(call, spec, reveal=True)
        if body and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"
        if spec.basic_auth is not None:
            username = (
                secret_value(self, spec.basic_auth.username, "basicAuth.username") if spec.basic_auth.username else ""
            )
            password = (
                secret_value(self, spec.basic_auth.password, "basicAuth.password") if spec.basic_auth.password else ""
            )
            token = base64.b64encode(f"{username}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        tls = ssl_context(self, spec.tls)
        timeout = aiohttp.ClientTimeout(total=spec.timeout if spec.timeout and spec.timeout > 0 else DEFAULT_TIMEOUT)
        status = await self._send(method, spec.url, headers, body, tls, timeout)
        policy = call.trigger.policy.status if call.trigger.policy is not None else None
        described = f"{method} {spec.url} -> {status}"
        if policy is not None and policy.allow is not None:
            if status not in policy.allow:
                raise PermanentError(f"{described}: status {status} is not in policy.status.allow {policy.allow}")
        elif status >= 500:
            raise TemporaryError(f"{described}: server error (without a status policy a 5xx is a failure)", 1.0)
        return TriggerOutcome(described)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        tls: ssl.SSLContext | bool,
        client_timeout: aiohttp.ClientTimeout,
    ) -> int:
        if self._session is None or self._session.closed:
            # One session per trigger: its connections are kept alive and reused between firings.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        try:
            return await self._request(self._session, method, url, headers, body, tls, client_timeout)
        except aiohttp.ServerDisconnectedError:
            # A kept-alive connection the server had closed: once more, on a fresh connection.
            pass
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TemporaryError(f"{method} {url}: {type(err).__name__}: {err}", 1.0) from None
        try:
            return await self._request(self._session, method, url, headers, body, tls, client_timeout)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TemporaryError(f"{method} {url}: {type(err).__name__}: {err}", 1.0) from None

    @staticmethod
    async def _request(
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes,
        tls: ssl.SSLContext | bool,
        client_timeout: aiohttp.ClientTimeout,
    ) -> int:
        """Send, following redirects on the same host only; the final status."""
        host = urlsplit(url).hostname
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            async with session.request(
                method, current, headers=headers, data=body, ssl=tls, allow_redirects=False, timeout=client_timeout
            ) as response:
                await response.read()
                if response.status not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                    return response.status
                following = str(response.url.join(URL(response.headers["Location"])))
                if urlsplit(following).hostname != host:
                    raise PermanentError(f"{method} {url}: redirect to another host refused")
                current = following
                if response.status == 303:
                    method, body = "GET", b""
        raise PermanentError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
