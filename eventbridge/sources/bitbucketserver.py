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
* Not supported yet (lint warns): managing hooks through the API (``accessToken``),
  ``skipBranchRefsChangedOnOpenPR``. Create the webhook in Bitbucket with
  the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any, ClassVar

from aiohttp import web

from eventbridge.errors import InvalidError
from eventbridge.models.base import ArgoModel
from eventbridge.models.eventsource import BitbucketServerEventSource
from eventbridge.sources._gitwebhook import GitWebhookSource, Parsed, Rejected
from eventbridge.sources.base import SOURCE_TYPES

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature"
EVENT_KEY_HEADER = "X-Event-Key"
REFS_CHANGED = "repo:refs_changed"


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

    def load_secrets(self) -> None:
        if self.spec.webhook_secret is not None:
            secret = self.context.secret(self.spec.webhook_secret)
            if not secret:
                raise InvalidError("webhookSecret is empty; refusing to accept unsigned deliveries")
            self._secret = secret.encode()

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
        expected = hmac.new(self._secret, raw, hashlib.sha256).digest()
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
