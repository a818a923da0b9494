"""Fixtures for the server tests: the real SqliteStore, SqliteBus, HostExecutor and Controller,
and the aiohttp app served on a real socket (aiohttp's TestServer on 127.0.0.1)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.executors.host import HostExecutor
from eventbridge.server.app import ApiContext, build_app
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

MakeClient = Callable[..., Coroutine[Any, Any, TestClient]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.db")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteBus]:
    b = SqliteBus(tmp_path / "events.db")
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def executor(tmp_path: Path) -> HostExecutor:
    return HostExecutor(tmp_path / "steps")


@pytest.fixture
async def controller(store: SqliteStore, executor: HostExecutor) -> AsyncIterator[Controller]:
    c = Controller(store, executor, write_interval=0.05)
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
async def make_client(store: SqliteStore, executor: HostExecutor, bus: SqliteBus) -> AsyncIterator[MakeClient]:
    """Builds the app with ApiContext(store, executor, bus, **extra) and a client for it."""
    clients: list[TestClient] = []

    async def make(**extra: Any) -> TestClient:
        extra.setdefault("bus", bus)
        extra.setdefault("log_poll_seconds", 0.05)
        extra.setdefault("heartbeat_seconds", 0.5)
        app = build_app(ApiContext(store=store, executor=executor, **extra))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient:
    return await make_client()
