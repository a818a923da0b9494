"""Fixtures for the workflow tests: the real SqliteStore, HostExecutor and Controller."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventbridge.executors.host import HostExecutor
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "db.sqlite")
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A host directory outside /tmp (steps get a private /tmp, so they cannot see pytest's tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix="eventbridge-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def controller(store: SqliteStore, tmp_path: Path) -> AsyncIterator[Controller]:
    c = Controller(store, HostExecutor(tmp_path / "state"), write_interval=0.05)
    await c.start()
    yield c
    await c.stop()
