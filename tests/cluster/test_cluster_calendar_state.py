"""Calendar catch-up state in a ConfigMap (cluster mode), on the real API server and Tansu Kafka."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubecluster import KubeCluster
from kubernetes import client as k8s

from eventbridge.bus.kafka import KafkaBus, KafkaSettings
from eventbridge.errors import NotFoundError
from eventbridge.runtime.cluster import ClusterSettings, EventSourceRole, KubeReferences
from eventbridge.sources.calendar import go_time, parse_event_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import KafkaBroker, tansu_broker

GROUP, VERSION = "argoproj.io", "v1alpha1"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with tansu_broker() as b:
        yield b


def read_config_map(cluster: KubeCluster, namespace: str, name: str) -> Obj | None:
    with cluster.api_client() as api:
        try:
            response = k8s.CoreV1Api(api).read_namespaced_config_map(name, namespace, _preload_content=False)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise
    return dict(json.loads(response.data))


async def test_config_map_state_writes_are_optimistic_and_keep_other_keys(
    cluster: KubeCluster, namespace: str, role_token: str
) -> None:
    references = KubeReferences(cluster.api_client(role_token))
    try:
        state = references.config_map_state(namespace, "shared-state", create=True)
        assert await state.load("es.a") is None  # no ConfigMap yet
        # Many concurrent writers of different keys: each conflict re-reads, so no write is lost.
        await asyncio.gather(*(state.save(f"es.e{n}", f"v{n}") for n in range(8)))
        data = (read_config_map(cluster, namespace, "shared-state") or {})["data"]
        assert data == {f"es.e{n}": f"v{n}" for n in range(8)}
        await state.save("es.e3", "v3-new")
        assert await state.load("es.e3") == "v3-new" and await state.load("es.e4") == "v4"
        # Without createIfNotExist a missing ConfigMap is an error that names it.
        absent = references.config_map_state(namespace, "not-there", create=False)
        with pytest.raises(NotFoundError, match=f"configmap {namespace}/not-there does not exist"):
            await absent.save("es.a", "x")
    finally:
        references.close()


def test_event_time_in_go_format_round_trips() -> None:
    moment = datetime(2020, 10, 19, 22, 50, 0, 319200, tzinfo=UTC)
    assert go_time(moment) == "2020-10-19 22:50:00.3192 +0000 UTC"
    assert parse_event_time(go_time(moment)) == moment
    # What Argo writes (a monotonic clock reading, nanoseconds, a zone abbreviation).
    argo = "2020-10-19 22:50:00.0003192 +0200 CEST m=+683.567066901"
    assert parse_event_time(argo) == datetime(2020, 10, 19, 20, 50, 0, 319, tzinfo=UTC)
    assert parse_event_time("2024-05-01T02:00:00+02:00") == datetime(2024, 5, 1, tzinfo=UTC)


async def test_missed_calendar_fires_are_caught_up_from_the_config_map_after_a_restart(
    cluster: KubeCluster, namespace: str, role_token: str, broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTBRIDGE_LEASE_DURATION", "2s")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RENEW_DEADLINE", "1500ms")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RETRY_PERIOD", "200ms")
    monkeypatch.delenv("EVENTBRIDGE_POD_NAME", raising=False)
    topic = f"calendar-{namespace}"
    with cluster.api_client() as api:  # closed: an unclosed client's sockets warn in a later test
        admin = k8s.CustomObjectsApi(api)
        admin.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "eventbus",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": {"name": "default"},
             "spec": {"kafka": {"url": broker.bootstrap, "topic": topic}}},
        )  # fmt: skip
        admin.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "eventsources",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventSource", "metadata": {"name": "ticks"},
             "spec": {"calendar": {"tick": {
                 "interval": "2s",
                 "metadata": {"team": "a"},
                 "persistence": {"catchup": {"enabled": True},
                                 "configMap": {"name": "ticks-state", "createIfNotExist": True}},
             }}}},
        )  # fmt: skip
    settings = ClusterSettings(namespace=namespace, kafka_idempotent=False, kafka_partitions=1, resync_seconds=5)

    def recorded() -> datetime | None:
        body = read_config_map(cluster, namespace, "ticks-state")
        value = ((body or {}).get("data") or {}).get("ticks.tick")  # Argo's key: <eventsource>.<event>
        return parse_event_time(json.loads(value)["eventTime"]) if value else None

    async def run_until(condition: Any, within: float) -> None:
        role = EventSourceRole(settings, cluster.api_client(role_token))
        stop = asyncio.Event()
        task = asyncio.create_task(role.run(stop))
        try:
            deadline = time.monotonic() + within
            while not await asyncio.to_thread(condition):
                assert time.monotonic() < deadline, "the calendar did not record the fires expected in time"
                assert not task.done(), task
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            assert await asyncio.wait_for(task, 15) == 0

    await run_until(lambda: recorded() is not None, 20)
    stopped_after = recorded()
    assert stopped_after is not None
    raw = (read_config_map(cluster, namespace, "ticks-state") or {})["data"]["ticks.tick"]
    assert json.loads(raw) == {"eventTime": go_time(stopped_after), "metadata": {"team": "a"}}  # Argo's payload

    await asyncio.sleep(5)  # down for two ticks or more
    missed_until = datetime.now(UTC)
    await run_until(lambda: (recorded() or stopped_after) > missed_until, 20)

    async with KafkaBus(KafkaSettings(broker.bootstrap, topic, partitions=1, idempotent=False)) as bus:
        subscription = bus.subscribe("reader", from_start=True)
        ids: list[str] = []

        async def read_all() -> None:
            async for delivery in subscription:
                ids.append(delivery.event.id)
                if parse_event_time(delivery.event.id) > missed_until:
                    return

        await asyncio.wait_for(read_all(), 20)
        await subscription.close()
    fires = sorted({parse_event_time(i) for i in ids})
    # Every 2 s from the first fire on, none missing: the ticks due while no role ran were caught up.
    assert [b - a for a, b in itertools.pairwise(fires)] == [timedelta(seconds=2)] * (len(fires) - 1)
    assert fires[0] <= stopped_after < missed_until - timedelta(seconds=4) and fires[-1] > missed_until
