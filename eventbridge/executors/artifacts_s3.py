"""An S3-compatible object store client for workflow artifacts (boto3, in a thread).

The workflow engine may not import boto3 (import-linter), so it talks to this adapter through the
``ObjectStore`` protocol of :mod:`eventbridge.workflow.artifacts`; the runtime creates it and hands
it to the Controller. A location is anything with the attributes of :class:`S3LocationLike`.

* ``upload(location, source)``: a file becomes the object ``key``; a directory becomes one object
  per file under ``key/``.
* ``download(location, dest)``: the object ``key`` into the file ``dest``; when there is no such
  object but objects exist under ``key/``, they are written below the directory ``dest``.

Errors are :class:`eventbridge.errors.InvalidError` (or NotFoundError for a missing key) naming the
bucket and key, never the credentials.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Protocol

from eventbridge.errors import InvalidError, NotFoundError


class S3LocationLike(Protocol):
    """Where an object is, with its credentials already resolved (empty: boto3's default chain)."""

    @property
    def endpoint(self) -> str: ...

    @property
    def bucket(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def insecure(self) -> bool: ...

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...


class S3ObjectStore:
    """boto3 behind the artifact ``ObjectStore`` protocol (one client per endpoint and credentials)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str, bool, str, str], Any] = {}
        self._lock = threading.Lock()

    def _client(self, location: S3LocationLike) -> Any:
        import boto3  # here, not at import: boto3 is large and most workflows never use S3
        from botocore.client import Config

        cache_key = (location.endpoint, location.region, location.insecure, location.access_key, location.secret_key)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                endpoint = location.endpoint
                if endpoint and "://" not in endpoint:
                    endpoint = f"{'http' if location.insecure else 'https'}://{endpoint}"
                kwargs: dict[str, Any] = {
                    "region_name": location.region or "us-east-1",
                    "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
                }
                if endpoint:
                    kwargs["endpoint_url"] = endpoint
                if location.access_key or location.secret_key:
                    kwargs["aws_access_key_id"] = location.access_key
                    kwargs["aws_secret_access_key"] = location.secret_key
                client = boto3.session.Session().client("s3", **kwargs)
                self._clients[cache_key] = client
            return client

    async def upload(self, location: S3LocationLike, source: Path) -> None:
        await asyncio.to_thread(self._upload, location, source)

    def _upload(self, location: S3LocationLike, source: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(location)
        try:
            if source.is_dir():
                prefix = location.key.rstrip("/")
                for path in sorted(p for p in source.rglob("*") if p.is_file()):
                    client.upload_file(str(path), location.bucket, f"{prefix}/{path.relative_to(source)}")
            else:
                client.upload_file(str(source), location.bucket, location.key)
        except (BotoCoreError, ClientError) as exc:
            raise InvalidError(f"s3://{location.bucket}/{location.key}: upload failed: {_reason(exc)}") from None

    async def download(self, location: S3LocationLike, dest: Path) -> None:
        await asyncio.to_thread(self._download, location, dest)

    def _download(self, location: S3LocationLike, dest: Path) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self._client(location)
        where = f"s3://{location.bucket}/{location.key}"
        try:
            try:
                client.download_file(location.bucket, location.key, str(dest))
                return
            except ClientError as exc:
                if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
            prefix = location.key.rstrip("/") + "/"
            found = False
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
                for item in page.get("Contents") or []:
                    relative = str(item["Key"])[len(prefix) :]
                    target = (dest / relative).resolve()
                    if not relative or not str(target).startswith(str(dest.resolve()) + "/"):
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(location.bucket, item["Key"], str(target))
                    found = True
            if not found:
                raise NotFoundError(f"{where}: no such key")
        except (BotoCoreError, ClientError) as exc:
            raise InvalidError(f"{where}: download failed: {_reason(exc)}") from None


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # botocore's ClientError
    return str(((response or {}).get("Error") or {}).get("Code") or "") if isinstance(response, dict) else ""


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)  # botocore's ClientError
    if isinstance(response, dict):
        error = response.get("Error") or {}
        return f"{error.get('Code', '')} {error.get('Message', '')}".strip()
    return type(exc).__name__
