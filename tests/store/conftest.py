"""The Store contract runs against every store: SQLite (embedded) and Kubernetes custom resources.

The Kubernetes store talks to the real kube-apiserver of tests/cluster/kubecluster.py. Each test
gets fresh namespaces from the ``space`` fixture, so tests never see each other's objects.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from eventbridge.store.base import Store
from eventbridge.store.kube import KubeStore
from eventbridge.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from kubecluster import shared_cluster

NewSpace = Callable[[], Awaitable[str]]


@pytest.fixture(params=["sqlite", "kube"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(store_kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    if store_kind == "sqlite":
        sqlite = SqliteStore(tmp_path / "s.db")
        await sqlite.start()
        yield sqlite
        await sqlite.stop()
        return
    cluster = shared_cluster()
    kube = KubeStore(cluster.api_client())
    await kube.start()
    yield kube
    await kube.stop()


@pytest.fixture
def space(store_kind: str) -> NewSpace:
    """Makes a fresh namespace (created on the API server for the Kubernetes store)."""

    async def new() -> str:
        if store_kind == "kube":
            return shared_cluster().new_namespace("store")
        return f"ns-{uuid.uuid4().hex[:8]}"

    return new
