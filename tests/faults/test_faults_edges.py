"""Bad input at every edge of a real `eventbridge up`: webhooks, the API and the command line.

Each answer must be the documented 4xx (never a 500, never a hang), nothing must be published for a
refused request, and the process must keep serving others meanwhile. What the unit tests of the
sources and the server already cover (GitHub signatures, 413 on the API, unknown fields, name
checks of the workflow routes) is not repeated here.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Process, http

TOKEN = "edge-token-0123456789"

MANIFESTS = f"""
apiVersion: v1
kind: Secret
metadata: {{name: hook-token}}
stringData: {{token: {TOKEN}}}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {{name: edges}}
spec:
  webhook:
    guarded:
      port: "WEBHOOK_PORT"
      endpoint: /guarded
      method: POST
      maxPayloadSize: 4096
      authSecret: {{name: hook-token, key: token}}
    open:
      port: "WEBHOOK_PORT"
      endpoint: /open
      method: POST
"""


@pytest.fixture(scope="module")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = Process(tmp_path_factory.mktemp("edges"))
    process.write("edges.yaml", MANIFESTS)
    process.start({"EVENTBRIDGE_WEBHOOK_BODY_TIMEOUT": "1"})
    try:
        yield process
    finally:
        process.stop()


def _hook(process: Process, path: str, body: bytes, headers: dict[str, str] | None = None,
          method: str = "POST") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    # urllib would send a form content type by default: these bodies are JSON unless said otherwise
    return http(method, f"http://127.0.0.1:{process.webhook_port}{path}", body,
                {"Content-Type": "application/json", **(headers or {})})  # fmt: skip


def _published(process: Process) -> int:
    status, body = process.api("GET", "/api/v1/event-log?limit=1000")
    assert status == 200, body
    return len(body["items"] or [])


AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


WEBHOOK_CASES: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("missing token", "/guarded", b"{}", {"Content-Type": "application/json"}, 401),
    ("wrong token", "/guarded", b"{}", {"Authorization": "Bearer nope"}, 401),
    ("token of another scheme", "/guarded", b"{}", {"Authorization": f"Basic {TOKEN}"}, 401),
    ("empty bearer", "/guarded", b"{}", {"Authorization": "Bearer "}, 401),
    ("oversized body", "/guarded", b'{"x": "' + b"y" * 5000 + b'"}', AUTH, 413),
    ("malformed JSON", "/guarded", b'{"x": ', AUTH, 400),
    ("empty body", "/guarded", b"", AUTH, 400),
    ("NaN", "/open", b'{"x": NaN}', {}, 400),
    ("XML with its content type", "/open", b"<x>1</x>", {"Content-Type": "application/xml"}, 400),
    ("binary form", "/open", b"\xff\xfe\x00", {"Content-Type": "application/x-www-form-urlencoded"}, 400),
    ("nested past the parser", "/open", _nested(100_000), {}, 400),
    ("nested past the limit", "/open", _nested(600), {}, 400),
    ("integer too long", "/open", b"1" * 100_000, {}, 400),
    ("unknown path", "/nowhere", b"{}", {}, 404),
    ("traversal", "/open/../guarded", b"{}", {}, 404),
    ("encoded traversal", "/..%2f..%2fetc%2fpasswd", b"{}", {}, 404),
    ("header flood", "/open", b"{}", {f"X-Flood-{i}": "v" for i in range(300)}, 400),
    ("huge header", "/open", b"{}", {"X-Huge": "h" * 20_000}, 400),
]


@pytest.mark.parametrize(("path", "body", "headers", "status"), [c[1:] for c in WEBHOOK_CASES],
                         ids=[c[0] for c in WEBHOOK_CASES])  # fmt: skip
def test_bad_webhook_requests_get_4xx_and_publish_nothing(
    edges: Process, path: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = _published(edges)
    got, _, raw = _hook(edges, path, body, headers)
    assert got == status, raw[:300]
    if got in (401, 404, 413) or path == "/open":
        assert b"Traceback" not in raw
    assert _published(edges) == before


def test_wrong_methods_and_long_lines(edges: Process) -> None:
    for method in ("GET", "PUT", "DELETE", "OPTIONS"):
        status, headers, _ = _hook(edges, "/open", b"{}", method=method)
        assert status == 405 and headers["Allow"] == "POST", method
    with socket.create_connection(("127.0.0.1", edges.webhook_port), timeout=5) as sock:
        sock.sendall(b"BREW /open HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert b" 400 " in sock.recv(100).split(b"\r\n")[0]
    assert _hook(edges, "/open?q=" + "a" * 20_000, b"{}")[0] == 400


def test_acceptable_edges_are_accepted(edges: Process) -> None:
    before = _published(edges)
    assert _hook(edges, "/guarded", b'{"ok": true}', AUTH)[0] == 200
    assert _hook(edges, "/open", _nested(100), {})[0] == 200  # deep, but within the limit
    assert _hook(edges, "/open", b'{"a": 1}', {"Content-Type": "text/plain"})[0] == 200  # as Argo: read as JSON
    assert _published(edges) == before + 3


def test_slow_clients_time_out_without_blocking_others(edges: Process) -> None:
    """Twenty clients that never finish their body get 408 after the body timeout (1 s here); a
    normal request sent meanwhile is answered at once."""
    slow: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", edges.webhook_port), timeout=10)
            sock.sendall(b"POST /open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"partial\": ")  # fmt: skip
            slow.append(sock)
        started = time.monotonic()
        assert _hook(edges, "/open", b'{"fast": true}')[0] == 200
        assert time.monotonic() - started < 0.5
        for sock in slow:
            answer = sock.recv(200)
            assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.8 < time.monotonic() - started < 5
    finally:
        for sock in slow:
            sock.close()


API_BAD: list[tuple[str, str, bytes | None, int]] = [
    ("POST", "/api/v1/workflows/default", _nested(100_000), 400),
    ("POST", "/api/v1/workflows/default/lint", _nested(100_000), 400),
    ("POST", "/api/v1/workflow-templates/default", b'{"template": ' * 50_000, 400),
    ("POST", "/api/v1/cron-workflows/default", b"9" * 100_000, 400),
    ("POST", "/api/v1/workflows/default", b"\xff\xfe{}", 400),
    ("POST", "/api/v1/workflows/default", b'{"workflow": ' + b'"' + b"x" * (5 * 1024 * 1024) + b'"}', 413),
    ("GET", "/api/v1/event-log/99999999999999999999999", None, 400),
    ("GET", "/api/v1/event-log/0", None, 400),
    ("GET", "/api/v1/workflows/Default", None, 400),
    ("GET", "/api/v1/workflows/default/%2e%2e%2f%2e%2e%2fetc", None, 400),
    ("GET", "/api/v1/workflows/default/..%5C..%5Cetc", None, 400),
    ("GET", "/api/v1/workflow-templates/default/..%2F", None, 400),
    ("GET", "/api/v1/cron-workflows/..%2F/x", None, 400),
    ("GET", "/api/v1/sensors/default/UPPER", None, 400),
    ("GET", "/api/v1/event-sources/default/a%00b", None, 400),
    ("GET", "/api/v1/sensors/default/" + "x" * 300 + "/traces", None, 400),
    ("GET", "/api/v1/archived-workflows/..%2F..%2F", None, 400),
    ("GET", "/api/v1/workflows/default?listOptions.limit=-5", None, 400),
    ("PUT", "/api/v1/workflows/default/x/..%2F..%2Fresume", b"{}", 404),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), API_BAD, ids=[f"{m} {p[:60]}" for m, p, _, _ in API_BAD])
def test_bad_api_requests_get_json_4xx(edges: Process, method: str, path: str, body: bytes | None, status: int) -> None:
    got, _, raw = http(method, edges.url + path, body, {"Content-Type": "application/json"}, timeout=30)
    assert got == status, raw[:300]
    answer: dict[str, Any] = json.loads(raw)
    assert answer["code"] != 13 and "Traceback" not in answer["message"]


def test_the_process_is_still_healthy_and_logged_no_handler_crash(edges: Process) -> None:
    assert edges.api("GET", "/api/v1/version")[0] == 200
    assert _hook(edges, "/open", b'{"after": "all that"}')[0] == 200
    log = edges.log.read_text()
    assert "webhook handler for" not in log  # the router's "handler failed" (500) line
    assert "eventbridge/server" not in log  # no traceback through our API handlers


CLI_BAD: list[tuple[list[str], str]] = [
    (["up", "--port", "not-a-port"], "not-a-port"),
    (["--log-format", "xml", "list"], "xml"),
    (["lint", "/does/not/exist.yaml"], "does/not/exist"),
    (["get"], "Missing argument"),
    (["get", "../../etc/passwd", "--server", "SERVER"], ""),
    (["list", "--server", "http://127.0.0.1:1"], "cannot reach"),
    (["submit", "/does/not/exist.yaml", "--server", "SERVER"], "exist"),
    (["sensor", "test"], "Missing argument"),
    (["run", "/does/not/exist.yaml"], "exist"),
    (["no-such-command"], "No such command"),
]


@pytest.mark.parametrize(("args", "says"), CLI_BAD, ids=[" ".join(a) for a, _ in CLI_BAD])
def test_bad_command_lines_fail_cleanly(edges: Process, tmp_path: Path, args: list[str], says: str) -> None:
    args = [edges.url if a == "SERVER" else a for a in args]
    result = subprocess.run([sys.executable, "-m", "eventbridge", *args], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert says in output, output


def test_garbage_manifest_files_are_reported_not_fatal(edges: Process, tmp_path: Path) -> None:
    cases = {
        "binary.yaml": b"\x00\x01\x02\xff" * 100,
        "types.yaml": b"apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: 5}\nspec: {dependencies: 7}\n",
        "deep.yaml": b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "tabs.yaml": b"kind: Sensor\n\tspec: x\n",
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        result = subprocess.run([sys.executable, "-m", "eventbridge", "lint", str(path)], capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode != 0, (name, output)
        assert "Traceback" not in output, (name, output)
        assert name in output, (name, output)
    # and the running process takes a broken file in its watched folder without a crash
    edges.write("zz-broken.yaml", "\x00garbage: [")
    asyncio.run(asyncio.sleep(1.0))
    assert edges.proc is not None and edges.proc.poll() is None
    assert _hook(edges, "/open", b'{"still": "serving"}')[0] == 200
