"""Fixtures for the source tests: a real SqliteBus, a SourceManager on 127.0.0.1, secrets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sources_helpers import DictReferences

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.manager import SourceManager


@pytest.fixture
def bus_path(tmp_path: Path) -> Path:
    return tmp_path / "bus.db"


@pytest.fixture
async def bus(bus_path: Path) -> AsyncIterator[SqliteBus]:
    b = SqliteBus(bus_path)
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def references() -> DictReferences:
    return DictReferences({("team", "hook-token", "token"): "s3cr3t"})


@pytest.fixture
async def manager(bus: SqliteBus, references: DictReferences) -> AsyncIterator[SourceManager]:
    m = SourceManager(bus, references, host="127.0.0.1")
    yield m
    await m.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
