"""The minio source against a real MinIO server (built by scripts/minio.sh from the Go module proxy):
SigV4-signed ListenBucketNotification, Argo's data shape, filters, bad credentials, a missing
bucket, and a MinIO restart. Objects are written with boto3, events read from a real SqliteBus."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from realservers import MinioServer, free_port, minio_server
from sources_helpers import DictReferences, make_eventsource, self_signed_cert, wait_for

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources._retry import Reconnector
from eventbridge.sources.manager import SourceManager
from eventbridge.sources.minio import go_event_record, keepalive_socket, listen_query, notification_id

RECORD_KEYS = [
    "eventVersion", "eventSource", "awsRegion", "eventTime", "eventName", "userIdentity",
    "requestParameters", "responseElements", "s3", "source",
]  # fmt: skip


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with minio_server(tmp_path_factory.mktemp("minio")) as server:
        yield server


def s3_client(server: MinioServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )


@pytest.fixture(autouse=True)
def fast_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Reconnector, "initial_delay", 0.05)
    monkeypatch.setattr(Reconnector, "max_delay", 0.3)


@pytest.fixture
def refs(references: DictReferences, minio: MinioServer) -> DictReferences:
    references.secrets[("team", "minio", "accesskey")] = minio.access_key
    references.secrets[("team", "minio", "secretkey")] = minio.secret_key
    return references


def spec(server: MinioServer, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": server.endpoint,
        "bucket": {"name": bucket},
        "insecure": True,
        "accessKey": {"name": "minio", "key": "accesskey"},
        "secretKey": {"name": "minio", "key": "secretkey"},
        "events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
        "filter": {"prefix": "in/", "suffix": ".csv"},
        **extra,
    }


async def put(s3: Any, bucket: str, key: str, body: bytes = b"a,b\n1,2\n") -> None:
    await asyncio.to_thread(s3.put_object, Bucket=bucket, Key=key, Body=body)


async def until_listening(s3: Any, bucket: str, bus: SqliteBus, within: float = 20.0) -> int:
    """Write matching probe objects until one arrives as an event (MinIO only streams notifications
    once the listener's request is in); returns how many events the bus then holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    tag = f"probe-{uuid.uuid4().hex[:8]}-"  # only this call's probes count (earlier ones may be on the bus)
    probe = 0
    while loop.time() < deadline:
        await put(s3, bucket, f"in/{tag}{probe}.csv")
        probe += 1
        for _ in range(10):
            events = await bus.list_events(limit=10_000)
            if any(tag in e.event.data["notification"][0]["s3"]["object"]["key"] for e in events):
                return len(events)
            await asyncio.sleep(0.05)
    raise AssertionError(f"no notification from bucket {bucket} within {within}s")


async def test_notifications_reach_the_bus_in_argo_shape(
    manager: SourceManager, refs: DictReferences, minio: MinioServer, bus: SqliteBus
) -> None:
    s3 = s3_client(minio)
    s3.create_bucket(Bucket="uploads")
    es = make_eventsource("lake", minio={"upload": spec(minio, "uploads", metadata={"pipeline": "etl"})})
    await manager.apply([es])
    before = await until_listening(s3, "uploads", bus)
    await put(s3, "uploads", "in/my report.csv", b"x" * 42)
    await put(s3, "uploads", "in/skip.txt")  # suffix does not match
    await put(s3, "uploads", "out/skip.csv")  # prefix does not match
    await asyncio.to_thread(s3.delete_object, Bucket="uploads", Key="in/my report.csv")
    await wait_for(lambda: _count(bus, before + 2), within=10)
    await asyncio.sleep(0.3)  # nothing else arrives
    stored = (await bus.list_events(limit=100))[before:]
    assert len(stored) == 2
    created, removed = (d.event for d in stored)
    assert (created.type, created.source, created.subject, created.namespace) == ("minio", "lake", "upload", "team")
    assert set(created.data) == {"notification", "metadata"} and created.data["metadata"] == {"pipeline": "etl"}
    (record,) = created.data["notification"]
    assert list(record) == RECORD_KEYS
    assert record["eventName"] == "s3:ObjectCreated:Put"
    assert record["eventSource"] == "minio:s3"
    assert record["userIdentity"] == {"principalId": minio.access_key}
    assert record["s3"]["bucket"]["name"] == "uploads" and record["s3"]["bucket"]["arn"] == "arn:aws:s3:::uploads"
    obj = record["s3"]["object"]
    assert obj["key"] == "in/my report.csv" and obj["size"] == 42 and obj["eTag"] and obj["sequencer"]
    assert created.id == notification_id([record])
    (gone,) = removed.data["notification"]
    assert gone["eventName"] == "s3:ObjectRemoved:Delete"
    assert gone["s3"]["object"]["key"] == "in/my report.csv" and "size" not in gone["s3"]["object"]  # omitempty
    assert [s.state for s in manager.status()] == ["running"]


async def _count(bus: SqliteBus, wanted: int) -> bool:
    return len(await bus.list_events(limit=10_000)) >= wanted


async def test_wrong_secret_key_is_retried_and_never_shown(
    manager: SourceManager,
    refs: DictReferences,
    minio: MinioServer,
    bus: SqliteBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s3_client(minio).create_bucket(Bucket="guarded")
    refs.secrets[("team", "minio", "secretkey")] = "not-the-secret-key"
    with caplog.at_level(logging.DEBUG, logger="eventbridge.sources"):
        await manager.apply([make_eventsource("lake", minio={"guarded": spec(minio, "guarded")})])
        await wait_for(lambda: manager.status()[0].state == "retrying")
        await asyncio.sleep(0.5)  # several attempts
    (status,) = manager.status()
    assert "HTTP 403: SignatureDoesNotMatch" in (status.error or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "minio bucket guarded" in r.getMessage()]
    assert len(warnings) == 1  # once per state change, not per attempt
    assert "not-the-secret-key" not in caplog.text and minio.secret_key not in caplog.text


async def test_a_missing_bucket_is_waited_for(
    manager: SourceManager, refs: DictReferences, minio: MinioServer, bus: SqliteBus
) -> None:
    await manager.apply([make_eventsource("lake", minio={"later": spec(minio, "created-later", region="us-east-1")})])
    await wait_for(lambda: "NoSuchBucket" in (manager.status()[0].error or ""))
    s3 = s3_client(minio)
    s3.create_bucket(Bucket="created-later")
    await until_listening(s3, "created-later", bus)
    await wait_for(lambda: manager.status()[0].state == "running")


async def test_the_stream_is_reopened_when_minio_restarts(
    manager: SourceManager, references: DictReferences, tmp_path: Path, bus: SqliteBus
) -> None:
    port = free_port()
    with minio_server(tmp_path / "m", port=port) as server:
        references.secrets[("team", "minio", "accesskey")] = server.access_key
        references.secrets[("team", "minio", "secretkey")] = server.secret_key
        s3 = s3_client(server)
        s3.create_bucket(Bucket="restarts")
        await manager.apply([make_eventsource("lake", minio={"r": spec(server, "restarts")})])
        first = await until_listening(s3, "restarts", bus)
    await wait_for(lambda: manager.status()[0].state == "retrying")  # MinIO is gone
    with minio_server(tmp_path / "m", port=port) as server:  # same data, same port
        second = await until_listening(s3_client(server), "restarts", bus)
        assert second > first
        await wait_for(lambda: manager.status()[0].state == "running")


async def test_https_with_a_ca_certificate_from_a_secret(
    manager: SourceManager, references: DictReferences, tmp_path: Path, bus: SqliteBus
) -> None:
    cert_pem, key_pem = self_signed_cert()
    with minio_server(tmp_path / "m", tls=(cert_pem, key_pem)) as server:
        references.secrets[("team", "minio", "accesskey")] = server.access_key
        references.secrets[("team", "minio", "secretkey")] = server.secret_key
        references.secrets[("team", "minio", "ca")] = cert_pem
        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="us-east-1",
            verify=str(_write(tmp_path / "ca.pem", cert_pem)),
        )
        s3.create_bucket(Bucket="secure")
        trusted = spec(server, "secure", insecure=False, caCertificate={"name": "minio", "key": "ca"})
        untrusted = spec(server, "secure", insecure=False)  # the system CA store does not know this CA
        await manager.apply([make_eventsource("lake", minio={"trusted": trusted, "untrusted": untrusted})])
        await until_listening(s3, "secure", bus)
        states = {s.key.event_name: (s.state, s.error or "") for s in manager.status()}
        assert states["trusted"] == ("running", "")
        assert states["untrusted"][0] == "retrying" and "certificate verify failed" in states["untrusted"][1]
        assert {d.event.subject for d in await bus.list_events(limit=100)} == {"trusted"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_records_are_shaped_like_minio_go() -> None:
    sparse = go_event_record({"eventName": "s3:ObjectRemoved:Delete", "s3": {"object": {"key": "a b", "size": 0}}})
    assert sparse == {
        "eventVersion": "",
        "eventSource": "",
        "awsRegion": "",
        "eventTime": "",
        "eventName": "s3:ObjectRemoved:Delete",
        "userIdentity": {"principalId": ""},
        "requestParameters": None,
        "responseElements": None,
        "s3": {
            "s3SchemaVersion": "",
            "configurationId": "",
            "bucket": {"name": "", "ownerIdentity": {"principalId": ""}, "arn": ""},
            "object": {"key": "a b", "sequencer": ""},
        },
        "source": {"host": "", "port": "", "userAgent": ""},
    }
    extra = go_event_record({"s3": {"object": {"key": "k", "versionId": "v1", "unknown": 1}}, "glacierEventData": {}})
    assert extra["s3"]["object"] == {"key": "k", "versionId": "v1", "sequencer": ""}
    assert "glacierEventData" not in extra


def test_the_listener_socket_sends_keepalive_probes() -> None:
    sock = keepalive_socket((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 9)))
    with sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


def test_listen_query_is_sorted_as_it_is_signed() -> None:
    query = listen_query(["s3:ObjectRemoved:*", "s3:ObjectCreated:Put"], "in/", ".csv")
    assert query == ("events=s3%3AObjectCreated%3APut&events=s3%3AObjectRemoved%3A%2A&ping=10&prefix=in%2F&suffix=.csv")


def test_lint_of_the_minio_spec() -> None:
    es = make_eventsource(
        "lake",
        minio={
            "a": {"endpoint": "http://minio:9000", "bucket": {"name": ""}, "events": ["ObjectCreated"]},
            "b": {"endpoint": "minio:9000", "bucket": {"name": "b", "key": "ignored"},
                  "accessKey": {"name": "s", "key": "a"}, "secretKey": {"name": "s", "key": "s"}},
        },
    )  # fmt: skip
    found = {(f.path, f.severity) for f in es.check()}
    assert found == {
        ("spec.minio.a.accessKey", "error"),
        ("spec.minio.a.secretKey", "error"),
        ("spec.minio.a.endpoint", "error"),
        ("spec.minio.a.bucket.name", "error"),
        ("spec.minio.a.events.0", "error"),
        ("spec.minio.b.events", "warning"),
    }
    assert es.dump()["spec"]["minio"]["b"]["bucket"] == {"name": "b", "key": "ignored"}
