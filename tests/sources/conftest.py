"""Fixtures for the source tests: a real SqliteBus, a SourceManager on 127.0.0.1, secrets, and the
real servers of tests/servers/realservers.py (moto, Tansu, Apache Kafka, a fake git-hosting API)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))

from realservers import (
    FakeGitApi,
    KafkaBroker,
    MotoServer,
    fake_git_api,
    moto_server,
    shared_apache_kafka,
    tansu_broker,
)
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
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "sources-state"


@pytest.fixture
async def manager(bus: SqliteBus, references: DictReferences, state_dir: Path) -> AsyncIterator[SourceManager]:
    m = SourceManager(bus, references, host="127.0.0.1", state_dir=state_dir)
    yield m
    await m.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server for the session (tests use their own queue and bucket names)."""
    with moto_server() as server:
        yield server


@pytest.fixture(params=["tansu", "apache"])
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaBroker]:
    """Each Kafka test runs on a fresh Tansu broker and on the session's Apache Kafka (KRaft, the
    jars of scripts/kafka.sh), where it uses its own topic and group names."""
    if request.param == "apache":
        yield shared_apache_kafka()
        return
    with tansu_broker() as broker:
        yield broker


@pytest.fixture
async def git_api() -> AsyncIterator[FakeGitApi]:
    async with fake_git_api() as api:
        yield api
