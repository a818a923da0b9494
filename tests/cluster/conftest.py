"""Cluster-mode fixtures: the real API server, a namespace with deploy/'s RBAC, the test kubelet,
and the real Controller on KubeStore + PodExecutor acting as the `eventbridge` ServiceAccount."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubecluster import KubeCluster, create_objects, render_kustomization, service_account_token, shared_cluster
from testkubelet import TestKubelet

from eventbridge.executors.pod import PodExecutor
from eventbridge.store.kube import KubeStore
from eventbridge.workflow.controller import Controller

RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding"}


@pytest.fixture
def cluster() -> KubeCluster:
    return shared_cluster()


@pytest.fixture
def namespace(cluster: KubeCluster) -> str:
    """A fresh namespace holding deploy/'s namespaced RBAC (ServiceAccounts, Roles, RoleBindings)."""
    ns = cluster.new_namespace("wf")
    objects = [o for o in render_kustomization(namespace=ns) if o["kind"] in RBAC_KINDS]
    with cluster.api_client() as api:
        create_objects(api, objects)
    return ns


@pytest.fixture
def role_token(cluster: KubeCluster, namespace: str) -> str:
    """A token of the `eventbridge` ServiceAccount the roles run as."""
    with cluster.api_client() as api:
        return service_account_token(api, namespace, "eventbridge")


@pytest.fixture
async def kubelet(cluster: KubeCluster, namespace: str) -> AsyncIterator[TestKubelet]:
    async with TestKubelet(cluster, {namespace}) as k:
        yield k


@pytest.fixture
async def kube_store(cluster: KubeCluster, namespace: str, role_token: str) -> AsyncIterator[KubeStore]:
    store = KubeStore(cluster.api_client(role_token), namespace=namespace)
    await store.start()
    yield store
    await store.stop()


@pytest.fixture
async def pod_executor(cluster: KubeCluster, namespace: str, role_token: str) -> AsyncIterator[PodExecutor]:
    executor = PodExecutor(
        cluster.api_client(role_token), namespace=namespace, service_account="eventbridge-executor", recheck_seconds=2
    )
    yield executor
    await executor.stop()


@pytest.fixture
async def controller(
    kube_store: KubeStore, pod_executor: PodExecutor, kubelet: TestKubelet
) -> AsyncIterator[Controller]:
    c = Controller(kube_store, pod_executor, write_interval=0.1)
    await c.start()
    yield c
    await c.stop()
