"""The closed-loop load generator runs on wrk (installed by scripts/test_system_deps.sh) against a
real aiohttp server, with one fresh value of the unique header per request."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bench.common import free_port, run_loadgen


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
    }
    try:
        summary = await run_loadgen(spec, 60)
    finally:
        await runner.cleanup()
    assert summary["client"] == "wrk"
    assert summary["requests"] > 0 and summary["ok"] == summary["requests"] and summary["errors"] == 0
    assert summary["rps"] > 0 and 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert len(seen) >= summary["requests"]  # the warm-up's requests too
    assert len(set(seen)) == len(seen)  # every request carried its own id, across both runs
    assert bodies == {b'{"ref": "refs/heads/main"}'}
