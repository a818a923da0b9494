"""Lease leader election on the real API server, as the `eventbridge` ServiceAccount (deploy/ RBAC)."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubecluster import KubeCluster
from kubernetes import client as k8s

from eventbridge.errors import InvalidError
from eventbridge.leader import LeaderElector, LeaseSettings

FAST = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.2}


def elector(cluster: KubeCluster, token: str, namespace: str, identity: str) -> LeaderElector:
    return LeaderElector(cluster.api_client(token), LeaseSettings("controller", namespace, identity, **FAST))


async def test_one_leader_and_a_standby_takes_over_on_release(
    cluster: KubeCluster, namespace: str, role_token: str
) -> None:
    one, two = elector(cluster, role_token, namespace, "one"), elector(cluster, role_token, namespace, "two")
    leading: list[str] = []
    stop_one = asyncio.Event()

    async def work(name: str, until: asyncio.Event) -> None:
        leading.append(name)
        await until.wait()

    first = asyncio.create_task(one.run(lambda: work("one", stop_one)))
    await asyncio.sleep(0.5)
    second = asyncio.create_task(two.run(lambda: work("two", asyncio.Event())))
    await asyncio.sleep(1.0)
    assert leading == ["one"] and one.is_leader and not two.is_leader
    stop_one.set()
    assert await asyncio.wait_for(first, 5) is True  # ended by itself: released
    for _ in range(50):
        if leading == ["one", "two"]:
            break
        await asyncio.sleep(0.1)
    assert leading == ["one", "two"] and two.is_leader
    with cluster.api_client() as api:
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease("controller", namespace)
    assert lease.spec.holder_identity == "two" and lease.spec.lease_transitions == 1
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await one.close()
    await two.close()


async def test_leader_steps_down_when_the_lease_is_taken(cluster: KubeCluster, namespace: str, role_token: str) -> None:
    one = elector(cluster, role_token, namespace, "one")
    cancelled = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(one.run(work))
    await asyncio.sleep(0.5)
    assert one.is_leader
    with cluster.api_client() as api:
        leases = k8s.CoordinationV1Api(api)
        raw = json.loads(leases.read_namespaced_lease("controller", namespace, _preload_content=False).data)
        raw["spec"]["holderIdentity"] = "intruder"
        leases.replace_namespaced_lease("controller", namespace, raw, _preload_content=False)
    assert await asyncio.wait_for(task, 5) is False
    assert cancelled.is_set() and not one.is_leader
    await one.close()


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTBRIDGE_NAMESPACE", "ns")
    monkeypatch.setenv("EVENTBRIDGE_POD_NAME", "pod-1")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_DURATION", "30s")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RENEW_DEADLINE", "20000ms")
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RETRY_PERIOD", "4")
    settings = LeaseSettings.from_env("controller")
    assert (settings.namespace, settings.identity) == ("ns", "pod-1")
    assert (settings.lease_duration, settings.renew_deadline, settings.retry_period) == (30, 20, 4)
    monkeypatch.setenv("EVENTBRIDGE_LEASE_RETRY_PERIOD", "soon")
    with pytest.raises(InvalidError, match="EVENTBRIDGE_LEASE_RETRY_PERIOD"):
        LeaseSettings.from_env("controller")
    with pytest.raises(InvalidError, match="lease duration > renew deadline"):
        LeaseSettings("x", "ns", "me", lease_duration=5, renew_deadline=10, retry_period=1)
