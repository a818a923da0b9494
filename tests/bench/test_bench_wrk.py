"""The closed-loop load generator runs on wrk (installed by scripts/test_system_deps.sh) against a
real aiohttp server, with one fresh value of the unique header per request."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_closed_loop_load_runs_on_wrk_with_unique_ids(tmp_path: Path) -> None:
    seen: list[str] = []
    bodies: set[bytes] = set()

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["X-Delivery"])
        bodies.add(await request.read())
        if request.headers.get("Content-Type") != "application/json":
            return web.Response(status=400)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    body = tmp_path / "body.json"
    body.write_text('{"ref": "refs/heads/main"}')
    spec = {
        "url": f"http://127.0.0.1:{port}/hook",
        "headers": {"Content-Type": "application/json"},
        "body_file": str(body),
        "unique_header": "X-Delivery",
        "mode": "closed",
        "connections": 4,
        "warmup": 1.0,
        "duration": 1.0,
        "output": str(tmp_path / "out.json"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(tmp_path / "spec.json"), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await runner.cleanup()
    assert process.returncode == 0, stderr.decode()
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["client"] == "wrk"
    assert summary["requests"] > 0 and summary["ok"] == summary["requests"] and summary["errors"] == 0
    assert summary["rps"] > 0 and 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert len(seen) >= summary["requests"]  # the warm-up's requests too
    assert len(set(seen)) == len(seen)  # every request carried its own id, across both runs
    assert bodies == {b'{"ref": "refs/heads/main"}'}
