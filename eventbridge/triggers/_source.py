"""Loading a trigger's ``source`` (Argo's ArtifactLocation): ``resource``, ``inline``, ``file``,
``url`` and ``configmap``. The result is a fresh ``dict`` the caller may change.

* ``resource``: the object as written in the Sensor.
* ``inline``: YAML (or JSON) text.
* ``file``: a YAML/JSON file read at firing time (relative paths from the working directory).
* ``url``: fetched with GET at firing time (redirects to another host are refused; 10 s timeout;
  ``verifyCert: false`` skips TLS verification).
* ``configmap``: the key of a ConfigMap, through :class:`eventbridge.models.base.References`.

Every source is limited to :data:`MAX_SOURCE_BYTES`. Errors are :class:`PermanentError`, except a
URL that cannot be reached right now (:class:`TemporaryError`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml
from yarl import URL

from eventbridge.errors import EventBridgeError, PermanentError, TemporaryError
from eventbridge.jsontree import clone
from eventbridge.models.base import References
from eventbridge.models.sensor import ArtifactLocation

MAX_SOURCE_BYTES = 1 << 20
URL_TIMEOUT = 10.0


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PermanentError(f"{what} is not YAML or JSON: {err}") from None
    if not isinstance(document, dict):
        raise PermanentError(f"{what} is not an object")
    return document


async def _fetch(url: str, verify: bool) -> str:
    host = urlsplit(url).hostname
    if urlsplit(url).scheme not in ("http", "https") or not host:
        raise PermanentError(f"source.url {url!r} must be an http(s) URL")
    timeout = aiohttp.ClientTimeout(total=URL_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            current = url
            for _hop in range(5):
                async with session.get(current, allow_redirects=False, ssl=verify) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        target = response.headers.get("Location", "")
                        following = str(response.url.join(URL(target)))
                        if urlsplit(following).hostname != host:
                            raise PermanentError(f"source.url {url!r} redirects to another host; refused")
                        current = following
                        continue
                    if response.status >= 500:
                        raise TemporaryError(f"source.url {url!r} answered {response.status}", 1.0)
                    if response.status >= 400:
                        raise PermanentError(f"source.url {url!r} answered {response.status}")
                    body = await response.content.read(MAX_SOURCE_BYTES + 1)
                    if len(body) > MAX_SOURCE_BYTES:
                        raise PermanentError(f"source.url {url!r} is larger than {MAX_SOURCE_BYTES} bytes")
                    return body.decode(errors="replace")
            raise PermanentError(f"source.url {url!r} redirects too often")
    except (TimeoutError, aiohttp.ClientError) as err:
        raise TemporaryError(f"source.url {url!r} could not be fetched: {err}", 1.0) from None


async def load_source(
    location: ArtifactLocation | None, *, namespace: str, references: References, what: str, copy: bool = True
) -> dict[str, Any]:
    """The object a trigger source describes; ``what`` names it in errors.

    ``copy=False`` may return the manifest's own ``source.resource``: only for a caller that copies
    it anyway before changing anything (parameters are applied to a copy)."""
    if location is None:
        raise PermanentError(f"{what}: source is required")
    if location.resource is not None:
        resource: dict[str, Any] = clone(location.resource) if copy else location.resource
        return resource
    if location.inline is not None:
        return _parse(location.inline, f"{what}: source.inline")
    if location.file is not None:
        path = Path(location.file.path)
        try:
            raw = await asyncio.to_thread(_read_file, path)
        except OSError as err:
            raise PermanentError(f"{what}: source.file {str(path)!r} cannot be read: {err.strerror}") from None
        if len(raw) > MAX_SOURCE_BYTES:
            raise PermanentError(f"{what}: source.file {str(path)!r} is larger than {MAX_SOURCE_BYTES} bytes")
        return _parse(raw.decode(errors="replace"), f"{what}: source.file {str(path)!r}")
    if location.url is not None:
        verify = location.url.verify_cert is not False
        text = await _fetch(location.url.path, verify)
        return _parse(text, f"{what}: source.url {location.url.path!r}")
    if location.configmap is not None:
        selector = location.configmap
        try:
            text = references.config_map(namespace, selector.name or "", selector.key or "")
        except EventBridgeError as err:
            raise PermanentError(f"{what}: source.configmap: {err}") from None
        return _parse(text, f"{what}: source.configmap {selector.name}/{selector.key}")
    raise PermanentError(
        f"{what}: set one of source.resource, inline, file, url or configmap (git and s3 are not supported)"
    )


def _read_file(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(MAX_SOURCE_BYTES + 1)
