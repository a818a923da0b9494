"""B1: webhook ingress, answered only once the event is durable.

* Candidate ``github``: the ``github`` event source (HMAC-SHA256 check, JSON parse, CloudEvent,
  ``SqliteBus.publish`` committed with group commit and fsync) behind the SourceManager's shared
  HTTP server, as the embedded runtime wires it. Every request is a signed ~2 KB push delivery
  with its own ``X-GitHub-Delivery`` (so none is a duplicate).
* Baseline ``bare``: an aiohttp application whose handler answers 200.
* Baseline ``json``: the same handler reading the body and running ``json.loads``.

Load: ``bench.loadgen`` (a separate process), 64 connections, closed loop, after a warm-up: on
wrk where it is installed (``bench.wrk``), else the aiohttp client, whose own limit (~7,000
requests/s here) the bare baseline reaches. The rows name the client.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.common import NoReferences, Row, fmt, free_port, median, pick, ratio, run_loadgen
from bench.payloads import SECRET, push_bytes
from eventbridge.heap import settle_after_start

NAMESPACE = "ci"
#: The p99 goal (issue #8 asked for 3x; why it is 3.5x: docs/performance.md, "Goals revised").
P99_GOAL = 3.5
P99_ISSUE_GOAL = 3.0


def _load_spec(url: str, body_file: str, params: dict[str, Any], signed: bool) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
    if signed:
        from eventbridge.sources.github import sign

        headers["X-Hub-Signature-256"] = sign(SECRET.encode(), Path(body_file).read_bytes())
    return {
        "url": url,
        "headers": headers,
        "body_file": body_file,
        "unique_header": "X-GitHub-Delivery",
        "mode": "closed",
        "connections": params["connections"],
        "warmup": params["warmup"],
        "duration": params["duration"],
    }


async def _bare_app(parse: bool) -> web.Application:
    async def bare(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def parsed(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/github", parsed if parse else bare)
    return app


class B1:
    id = "B1"
    title = "signed GitHub push -> durable on the SQLite bus -> 200"
    worker_timeout = 120.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        params = {"connections": 64, "warmup": 0.5 if quick else 1.0, "duration": 1.5 if quick else 4.0}
        return (1 if quick else 3), [("bare", params), ("json", params), ("github", params)]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bench-b1-") as folder:
            body_file = Path(folder) / "push.json"
            body_file.write_bytes(push_bytes(1))
            if variant in ("bare", "json"):
                port = free_port()
                runner = web.AppRunner(await _bare_app(variant == "json"), access_log=None)
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
                settle_after_start()  # as the candidate (and the runtime) does after start-up
                try:
                    url = f"http://127.0.0.1:{port}/github"
                    return await run_loadgen(_load_spec(url, str(body_file), params, signed=False), 120)
                finally:
                    await runner.cleanup()
            return await self._github(Path(folder), str(body_file), params)

    async def _github(self, folder: Path, body_file: str, params: dict[str, Any]) -> dict[str, Any]:
        from eventbridge.bus.sqlite import SqliteBus
        from eventbridge.models.eventsource import EventSource
        from eventbridge.sources.manager import SourceManager

        bus = SqliteBus(folder / "events.db")
        await bus.start()
        references = NoReferences({(NAMESPACE, "github", "secret"): SECRET})
        manager = SourceManager(bus, references, host="127.0.0.1")
        port = free_port()
        eventsource = EventSource.model_validate(
            {
                "metadata": {"name": "github", "namespace": NAMESPACE},
                "spec": {
                    "github": {
                        "repo": {
                            "repositories": [{"owner": "Codertocat", "names": ["Hello-World"]}],
                            "webhook": {"endpoint": "/github", "port": str(port), "method": "POST"},
                            "webhookSecret": {"name": "github", "key": "secret"},
                            "events": ["push"],
                        }
                    }
                },
            }
        )
        try:
            await manager.apply([eventsource])
            if not manager.endpoints():
                raise RuntimeError(f"the github source did not start: {manager.status()}")
            settle_after_start()  # what the runtime does once it has started
            url = f"http://127.0.0.1:{port}/github"
            result = await run_loadgen(_load_spec(url, body_file, params, signed=True), 120)
            await asyncio.sleep(0.1)
            result["stored"] = bus.head
        finally:
            await manager.stop()
            await bus.stop()
        return result

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        bare_rps, json_rps, gh_rps = (median(pick(runs[v], "rps")) for v in ("bare", "json", "github"))
        bare_p99, json_p99, gh_p99 = (median(pick(runs[v], "p99_ms")) for v in ("bare", "json", "github"))
        gh_p50 = median(pick(runs["github"], "p50_ms"))
        errors = sum(int(r["errors"]) + int(r["requests"]) - int(r["ok"]) for r in runs["github"])
        rps_ratio = ratio(gh_rps, bare_rps)
        p99_ratio = ratio(gh_p99, bare_p99)
        client_cpu = median(pick(runs["bare"], "cpu_percent"))
        client = str(runs["bare"][0].get("client", "aiohttp")) if runs["bare"] else "?"
        details = {
            "rps": {v: pick(runs[v], "rps") for v in runs},
            "p99_ms": {v: pick(runs[v], "p99_ms") for v in runs},
            "client": client,
            "client_cpu_percent_bare": client_cpu,
            "json_rps": json_rps,
            "json_p99_ms": json_p99,
        }
        return [
            Row(
                "B1",
                f"github push, 64 connections ({client}): requests/s",
                f"bare {fmt(bare_rps, '/s')}; json.loads {fmt(json_rps, '/s')}",
                fmt(gh_rps, "/s"),
                rps_ratio,
                ">= 0.4x bare",
                None if rps_ratio is None else rps_ratio >= 0.4,
                details,
            ),
            Row(
                "B1",
                f"github push, 64 connections ({client}): p99 latency",
                f"bare {fmt(bare_p99, ' ms')}; json.loads {fmt(json_p99, ' ms')}",
                f"{fmt(gh_p99, ' ms')} (p50 {fmt(gh_p50, ' ms')})",
                p99_ratio,
                f"<= {P99_GOAL}x bare (issue #8: {P99_ISSUE_GOAL}x; see docs/performance.md)",
                None if p99_ratio is None else p99_ratio <= P99_GOAL,
                {"issue_goal_met": None if p99_ratio is None else p99_ratio <= P99_ISSUE_GOAL},
            ),
            Row(
                "B1",
                "github push: errors (non-2xx or failed)",
                "0",
                str(errors),
                None,
                "0",
                errors == 0 if runs["github"] else None,
            ),
        ]
