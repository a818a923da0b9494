"""The ``minio`` event source: MinIO bucket notifications through its ListenBucketNotification API.

Behaviour (Argo's, differences marked):

* The source holds one long-lived, SigV4-signed ``GET /{bucket}?events=...&prefix=...&suffix=...&ping=10``
  on ``endpoint`` (``host:port``; HTTPS unless ``insecure: true``, ``caCertificate`` adds a CA),
  the request MinIO's Go client sends. MinIO streams one JSON document per line: ``{"Records":
  [...]}`` per notification and ``{"Records": null}`` every 10 s as a keep-alive. ``accessKey`` and
  ``secretKey`` come from Secrets. The signing region is ``region``, else the bucket's location
  (``GET /{bucket}?location``, as the Go client asks), else ``us-east-1``.
* ``events`` are MinIO event names (``s3:ObjectCreated:*``, ``s3:ObjectRemoved:Delete``...);
  ``filter.prefix``/``filter.suffix`` restrict the object keys. MinIO applies both. ``bucket.key``
  is not used (as in Argo).
* Each notification line becomes one event with data ``{"notification": [records], "metadata":
  {...}}`` (``metadata`` left out when empty), each record in the exact shape of minio-go's
  ``notification.Event`` as Argo marshals it: ``eventVersion``, ``eventSource``, ``awsRegion``,
  ``eventTime``, ``eventName``, ``userIdentity{principalId}``, ``requestParameters``,
  ``responseElements``, ``s3{s3SchemaVersion, configurationId, bucket{name, ownerIdentity, arn},
  object{key, size, eTag, contentType, userMetadata, versionId, sequencer}}`` (``size``, ``eTag``,
  ``contentType``, ``userMetadata`` and ``versionId`` left out when empty, as Go's ``omitempty``)
  and ``source{host, port, userAgent}``. Object keys are passed on exactly as MinIO sends them
  (its listen API sends them as they are, e.g. ``in/my file.csv``, not URL-encoded).
* Event id: a hash of the records (*difference*: Argo's is random), so one notification is one
  event even if it were read twice.
* Delivery is at most once, as in Argo: MinIO does not queue notifications for a listener, so what
  happens while the stream is down (eventbridge stopped, MinIO restarting, the network broken) is
  not seen. For at-least-once delivery configure a MinIO notification target with a queue
  directory (``notify_webhook`` with ``queue_dir``) pointing at a ``webhook`` event source.
* The stream is reopened with capped exponential backoff when MinIO is unreachable, answers an
  error (wrong credentials, missing bucket) or ends it; the reason is logged once per state change
  and shown as state ``retrying``. There is no read timeout (as in minio-go): a peer that vanished
  without closing the connection is found by TCP keep-alive probes within about a minute. A line
  that is not JSON is logged and skipped. A notification that cannot be stored on the bus is
  logged and counted as failed (it cannot be asked for again).
* MinIO builds from 2025-10-23 on (commit 52eee5a, up to at least the newest one the Go module
  proxy serves) do not flush this stream: notifications reach any listener, Argo's too, late and
  in 4 KiB batches, and so do the keep-alive lines. Nothing is lost while the connection stays up,
  which is why no read timeout is used. ``scripts/minio.sh`` patches the server it builds for the
  tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import aiohttp
import yarl

from eventbridge.models.eventsource import MinioEventSource
from eventbridge.sources._retry import Reconnector
from eventbridge.sources.base import SOURCE_TYPES, SourceContext, validated_spec

log = logging.getLogger(__name__)

#: Seconds between MinIO's keep-alive lines (minio-go's value).
PING_SECONDS = 10
#: TCP keep-alive: first probe after this many idle seconds, then every interval, given up after count.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3
#: Longest notification line accepted (minio-go's scanner buffer).
MAX_LINE = 4 * 1024 * 1024
DEFAULT_REGION = "us-east-1"


def keepalive_socket(addr_info: tuple[Any, ...]) -> socket.socket:
    """A client socket with TCP keep-alive probes (aiohttp's ``socket_factory``)."""
    family, kind, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        if hasattr(socket, option):  # Linux; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    return sock


def _query_escape(value: str) -> str:
    """RFC 3986 percent-encoding, as SigV4's canonical query string wants it."""
    return quote(value, safe="-_.~")


def listen_query(events: list[str], prefix: str, suffix: str) -> str:
    """The encoded query string of a ListenBucketNotification request.

    Pairs are sorted by their encoded key, then value: the order SigV4 signs them in (botocore) and,
    because MinIO keeps repeated values in request order, the order MinIO checks them in.
    """
    pairs = [("events", name) for name in events] + [
        ("ping", str(PING_SECONDS)),
        ("prefix", prefix),
        ("suffix", suffix),
    ]
    encoded = sorted((_query_escape(k), _query_escape(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def sign_request(url: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    """SigV4 headers (``Authorization``, ``X-Amz-Date``, ``X-Amz-Content-SHA256``) for a GET of ``url``
    without a body, signed by botocore for service ``s3``."""
    from botocore.auth import S3SigV4Auth  # here, not at import: botocore is large
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=url, headers={})
    S3SigV4Auth(Credentials(access_key, secret_key), "s3", region).add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


def _map_of_strings(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _section(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def go_event_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as minio-go's ``notification.Event`` marshals it (fields, order and omitempty)."""
    s3 = _section(record.get("s3"))
    bucket = _section(s3.get("bucket"))
    obj = _section(s3.get("object"))
    source = _section(record.get("source"))
    size = obj.get("size")
    object_out: dict[str, Any] = {"key": _text(obj.get("key"))}
    if isinstance(size, int) and not isinstance(size, bool) and size:
        object_out["size"] = size
    for name in ("eTag", "contentType"):
        if _text(obj.get(name)):
            object_out[name] = obj[name]
    user_metadata = _map_of_strings(obj.get("userMetadata"))
    if user_metadata:
        object_out["userMetadata"] = user_metadata
    if _text(obj.get("versionId")):
        object_out["versionId"] = obj["versionId"]
    object_out["sequencer"] = _text(obj.get("sequencer"))
    return {
        "eventVersion": _text(record.get("eventVersion")),
        "eventSource": _text(record.get("eventSource")),
        "awsRegion": _text(record.get("awsRegion")),
        "eventTime": _text(record.get("eventTime")),
        "eventName": _text(record.get("eventName")),
        "userIdentity": {"principalId": _text(_section(record.get("userIdentity")).get("principalId"))},
        "requestParameters": _map_of_strings(record.get("requestParameters")),
        "responseElements": _map_of_strings(record.get("responseElements")),
        "s3": {
            "s3SchemaVersion": _text(s3.get("s3SchemaVersion")),
            "configurationId": _text(s3.get("configurationId")),
            "bucket": {
                "name": _text(bucket.get("name")),
                "ownerIdentity": {"principalId": _text(_section(bucket.get("ownerIdentity")).get("principalId"))},
                "arn": _text(bucket.get("arn")),
            },
            "object": object_out,
        },
        "source": {
            "host": _text(source.get("host")),
            "port": _text(source.get("port")),
            "userAgent": _text(source.get("userAgent")),
        },
    }


def notification_id(records: list[dict[str, Any]]) -> str:
    """A stable event id for one notification (32 hex, like a random one)."""
    canonical = json.dumps(records, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


class MinioError(Exception):
    """MinIO answered an error (its S3 error ``Code`` and ``Message`` when it sent them)."""

    def __init__(self, status: int, body: str) -> None:
        code, message = _s3_error(body)
        detail = f"{code}: {message}" if code else (message or body.strip()[:200])
        super().__init__(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        self.status = status
        self.code = code


def _s3_error(body: str) -> tuple[str, str]:
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - the answer of the configured MinIO, no entities
    except ElementTree.ParseError:
        return "", ""
    return (root.findtext("Code") or "").strip(), (root.findtext("Message") or "").strip()


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The newline-separated lines of a streamed body (at most :data:`MAX_LINE` bytes each)."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line
        if len(buffer) > MAX_LINE:
            raise ValueError(f"a notification line is longer than {MAX_LINE} bytes")
    if buffer:
        yield buffer


class MinioSource:
    """One ``spec.minio.<event name>`` bucket listener."""

    def __init__(self, context: SourceContext, event_name: str, spec: Any) -> None:
        spec = validated_spec(MinioEventSource, spec, context, event_name)
        assert spec.bucket is not None
        self.context = context
        self.event_name = event_name
        self.spec = spec
        self.bucket = spec.bucket.name
        self.labels = {**context.labels(event_name), "bucketName": self.bucket}
        scheme = "http" if spec.insecure else "https"
        self.base_url = f"{scheme}://{spec.endpoint}"
        self._access_key = ""
        self._secret_key = ""
        self._ssl: ssl.SSLContext | None = None
        self._loop: Reconnector | None = None
        self.region: str | None = spec.region or None
        self.notifications = 0  # notification lines turned into events

    @property
    def problem(self) -> str | None:
        return self._loop.problem if self._loop is not None else None

    async def start(self) -> None:
        """Read the credentials (and CA), then listen in the background (never waits for MinIO)."""
        assert self.spec.access_key is not None and self.spec.secret_key is not None
        self._access_key = self.context.secret(self.spec.access_key)
        self._secret_key = self.context.secret(self.spec.secret_key)
        if self.spec.ca_certificate is not None:
            self._ssl = ssl.create_default_context(cadata=self.context.secret(self.spec.ca_certificate))
        self._loop = Reconnector(f"minio bucket {self.bucket}", self._session, logger=log, labels=self.labels)
        self._loop.start()

    async def stop(self) -> None:
        if self._loop is not None:
            await self._loop.stop()
            self._loop = None

    def _signed_get(
        self, session: aiohttp.ClientSession, query: str, region: str, timeout: aiohttp.ClientTimeout
    ) -> Any:
        url = f"{self.base_url}/{quote(self.bucket, safe='')}?{query}"
        headers = sign_request(url, self._access_key, self._secret_key, region)
        # as minio-go: no compression, which would hold the stream in the gzip buffer
        headers["Accept-Encoding"] = "identity"
        return session.get(yarl.URL(url, encoded=True), headers=headers, timeout=timeout, ssl=self._ssl or True)

    async def _bucket_region(self, session: aiohttp.ClientSession) -> str:
        """The bucket's location (``us-east-1`` when MinIO reports none), as minio-go looks it up."""
        timeout = aiohttp.ClientTimeout(total=15)
        async with self._signed_get(session, "location=", DEFAULT_REGION, timeout) as response:
            body = await response.text()
            if response.status != 200:
                raise MinioError(response.status, body)
        try:
            location = (ElementTree.fromstring(body).text or "").strip()  # noqa: S314 - see _s3_error
        except ElementTree.ParseError:
            location = ""
        return location or DEFAULT_REGION

    async def _session(self, connected: Callable[[], None]) -> None:
        prefix = self.spec.filter.prefix if self.spec.filter is not None else ""
        suffix = self.spec.filter.suffix if self.spec.filter is not None else ""
        query = listen_query(list(self.spec.events), prefix, suffix)
        connector = aiohttp.TCPConnector(socket_factory=keepalive_socket)
        async with aiohttp.ClientSession(connector=connector) as session:
            region = self.region or await self._bucket_region(session)
            timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=None)
            async with self._signed_get(session, query, region, timeout) as response:
                if response.status != 200:
                    raise MinioError(response.status, await response.text())
                connected()
                log.info(
                    "listening for notifications of bucket %s on %s", self.bucket, self.base_url, extra=self.labels
                )
                async for line in _lines(response.content):
                    connected()
                    await self._line(line)
        raise ConnectionError("MinIO closed the notification stream")

    async def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            document = json.loads(line)
        except ValueError as exc:
            log.error("skipping a notification line that is not JSON: %s", exc, extra=self.labels)
            return
        records = document.get("Records") if isinstance(document, Mapping) else None
        if not records or not isinstance(records, list):
            return  # MinIO's keep-alive: {"Records": null}
        shaped = [go_event_record(r) for r in records if isinstance(r, Mapping)]
        data: dict[str, Any] = {"notification": shaped}
        if self.spec.metadata:
            data["metadata"] = dict(self.spec.metadata)
        try:
            await self.context.dispatch(self.event_name, data, event_id=notification_id(shaped))
        except Exception as exc:  # noqa: BLE001 - the stream goes on; MinIO cannot send it again
            log.error("failed to record a minio notification: %s", exc, extra=self.labels)
            return
        self.notifications += 1


SOURCE_TYPES.register("minio")(MinioSource)

__all__ = ["MinioSource", "go_event_record", "keepalive_socket", "listen_query", "notification_id", "sign_request"]
