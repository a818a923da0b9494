"""Fixtures for the trigger tests: a local aiohttp server factory on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def aiohttp_server_factory() -> AsyncIterator[Callable[[dict[str, Handler]], Awaitable[str]]]:
    """``await factory({"/path": handler})`` starts a server on a free loopback port; returns its URL."""
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler]) -> str:
        app = web.Application()
        for path, handler in routes.items():

            async def handle(request: web.Request, handler: Handler = handler) -> web.StreamResponse:
                return await handler(request)

            app.router.add_route("*", path, handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        server: Any = site._server
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
