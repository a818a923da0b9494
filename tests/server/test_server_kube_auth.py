"""Cluster-mode auth against the real kube-apiserver (RBAC): TokenReview for who, SubjectAccessReview for what.

ServiceAccounts, Roles and RoleBindings are created through the API; their tokens come from the
TokenRequest API. KubeAuth itself runs as deploy/'s `eventbridge` ServiceAccount with the one
ClusterRoleBinding the server needs (to ``system:auth-delegator``), so the test also proves that
binding is enough.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from kubernetes import client as k8s
from server_helpers import workflow

from eventbridge.executors.host import HostExecutor
from eventbridge.server.app import ApiContext, build_app
from eventbridge.server.auth_kube import Access, KubeAuth, KubePrincipal, required_access
from eventbridge.store.sqlite import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from kubecluster import (
    KubeCluster,
    create_objects,
    render_kustomization,
    service_account_token,
    shared_cluster,
)

#: The binding deploy/ needs for the server's ServiceAccount (see the report / docs/security.md).
AUTH_DELEGATOR_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: eventbridge-server-auth-delegator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
  - kind: ServiceAccount
    name: eventbridge
    namespace: eventbridge
"""

Client = TestClient[web.Request, web.Application]
READ_VERBS = ["get", "list", "watch"]
ALL_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _role(namespace: str, name: str, verbs: list[str]) -> list[dict[str, Any]]:
    """A ServiceAccount with a Role on workflows (``verbs``) and a RoleBinding, all named ``name``."""
    meta = {"name": name, "namespace": namespace}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [{"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": verbs}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


@dataclass
class Setup:
    cluster: KubeCluster
    ns_a: str
    ns_b: str
    server_token: str  # deploy/'s `eventbridge` account in ns_a, with the auth-delegator binding
    reader: str  # get/list/watch workflows in ns_a
    writer: str  # everything on workflows in ns_a
    no_delegation: str  # an account without the auth-delegator binding


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    cluster = shared_cluster()
    ns_a, ns_b = cluster.new_namespace("auth-a"), cluster.new_namespace("auth-b")
    deploy_rbac = [o for o in render_kustomization(namespace=ns_a) if o["kind"] in ("ServiceAccount", "Role")]
    binding = yaml.safe_load(AUTH_DELEGATOR_BINDING)
    binding["metadata"]["name"] += f"-{ns_a}"
    binding["subjects"][0]["namespace"] = ns_a
    with cluster.api_client() as api:
        create_objects(
            api, [*deploy_rbac, binding, *_role(ns_a, "reader", READ_VERBS), *_role(ns_a, "writer", ALL_VERBS)]
        )
        yield Setup(
            cluster,
            ns_a,
            ns_b,
            server_token=service_account_token(api, ns_a, "eventbridge"),
            reader=service_account_token(api, ns_a, "reader"),
            writer=service_account_token(api, ns_a, "writer"),
            no_delegation=service_account_token(api, ns_a, "eventbridge-executor"),
        )
        k8s.RbacAuthorizationV1Api(api).delete_cluster_role_binding(binding["metadata"]["name"])


@pytest.fixture
async def kube_auth(setup: Setup) -> AsyncIterator[KubeAuth]:
    with setup.cluster.api_client(setup.server_token) as api:
        auth = KubeAuth(api, ttl_seconds=30)
        yield auth
        auth.close()


async def _client(store: SqliteStore, executor: HostExecutor, auth: KubeAuth) -> Client:
    app = build_app(ApiContext(store=store, executor=executor, ui=False), authenticator=auth)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def api(store: SqliteStore, executor: HostExecutor, kube_auth: KubeAuth) -> AsyncIterator[Client]:
    client = await _client(store, executor, kube_auth)
    yield client
    await client.close()


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    obj["metadata"]["namespace"] = namespace
    return obj


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _json_error(response: Any, status: int) -> str:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["code"] == {401: 16, 403: 7, 503: 14}[status]
    return str(body["message"])


async def test_read_only_token_lists_but_cannot_create(api: Client, setup: Setup, store: SqliteStore) -> None:
    await store.create(in_namespace(workflow("seen"), setup.ns_a))
    listed = await api.get(f"/api/v1/workflows/{setup.ns_a}", headers=bearer(setup.reader))
    assert listed.status == 200
    assert [w["metadata"]["name"] for w in (await listed.json())["items"]] == ["seen"]
    got = await api.get(f"/api/v1/workflows/{setup.ns_a}/seen", headers=bearer(setup.reader))
    assert got.status == 200

    created = await api.post(
        f"/api/v1/workflows/{setup.ns_a}",
        json={"workflow": in_namespace(workflow("nope"), setup.ns_a)},
        headers=bearer(setup.reader),
    )
    message = await _json_error(created, 403)
    assert f"system:serviceaccount:{setup.ns_a}:reader may not create workflows.argoproj.io" in message
    suspended = await api.put(f"/api/v1/workflows/{setup.ns_a}/seen/suspend", headers=bearer(setup.reader))
    assert "may not update workflows.argoproj.io 'seen'" in await _json_error(suspended, 403)
    deleted = await api.delete(f"/api/v1/workflows/{setup.ns_a}/seen", headers=bearer(setup.reader))
    await _json_error(deleted, 403)
    assert [w["metadata"]["name"] for w in await store.list("Workflow", setup.ns_a)] == ["seen"]


async def test_write_token_creates_suspends_and_deletes(api: Client, setup: Setup, store: SqliteStore) -> None:
    created = await api.post(
        f"/api/v1/workflows/{setup.ns_a}",
        json={"workflow": in_namespace(workflow("made"), setup.ns_a)},
        headers=bearer(setup.writer),
    )
    assert created.status == 200, await created.text()
    suspended = await api.put(f"/api/v1/workflows/{setup.ns_a}/made/suspend", headers=bearer(setup.writer))
    assert suspended.status == 200, await suspended.text()
    assert (await store.get("Workflow", setup.ns_a, "made"))["spec"]["suspend"] is True
    deleted = await api.delete(f"/api/v1/workflows/{setup.ns_a}/made", headers=bearer(setup.writer))
    assert deleted.status == 200
    assert await store.list("Workflow", setup.ns_a) == []


async def test_a_namespace_a_token_cannot_touch_namespace_b(api: Client, setup: Setup) -> None:
    for token in (setup.reader, setup.writer):
        listed = await api.get(f"/api/v1/workflows/{setup.ns_b}", headers=bearer(token))
        assert f"may not list workflows.argoproj.io in namespace '{setup.ns_b}'" in await _json_error(listed, 403)
    created = await api.post(
        f"/api/v1/workflows/{setup.ns_b}",
        json={"workflow": in_namespace(workflow("x"), setup.ns_b)},
        headers=bearer(setup.writer),
    )
    await _json_error(created, 403)
    everywhere = await api.get("/api/v1/workflows/", headers=bearer(setup.writer))
    assert "cluster-wide" in await _json_error(everywhere, 403)
    # Rights on workflows give nothing on other kinds.
    templates = await api.get(f"/api/v1/workflow-templates/{setup.ns_a}", headers=bearer(setup.writer))
    await _json_error(templates, 403)


async def test_unknown_or_missing_token_is_401(api: Client, setup: Setup) -> None:
    for headers in ({"Authorization": "Bearer not-a-real-token"}, {}, {"Authorization": "Bearer " + setup.reader[:-4]}):
        response = await api.get(f"/api/v1/workflows/{setup.ns_a}", headers=headers)
        assert "bearer token is required" in await _json_error(response, 401)
    version = await api.get("/api/v1/version", headers=bearer("still-not-a-token"))
    await _json_error(version, 401)
    assert (await api.get("/healthz")).status == 200


async def test_userinfo_and_token_only_paths(api: Client, setup: Setup) -> None:
    response = await api.get("/api/v1/userinfo", headers=bearer(setup.reader))
    assert response.status == 200
    body = await response.json()
    assert body["subject"] == f"system:serviceaccount:{setup.ns_a}:reader"
    assert f"system:serviceaccounts:{setup.ns_a}" in body["groups"]
    unknown = await api.get("/api/v1/nothing-here", headers=bearer(setup.reader))
    assert unknown.status == 404


async def test_answers_are_cached_by_token_hash_for_the_ttl(api: Client, setup: Setup, kube_auth: KubeAuth) -> None:
    path = f"/api/v1/workflows/{setup.ns_a}"
    assert (await api.get(path, headers=bearer(setup.reader))).status == 200
    assert (await api.get("/api/v1/workflows/", headers=bearer(setup.reader))).status == 403
    assert (await api.get(path, headers=bearer("garbage-token"))).status == 401
    sent = kube_auth.reviews
    for _ in range(3):
        assert (await api.get(path, headers=bearer(setup.reader))).status == 200
        assert (await api.get("/api/v1/workflows/", headers=bearer(setup.reader))).status == 403
        assert (await api.get(path, headers=bearer("garbage-token"))).status == 401
    assert kube_auth.reviews == sent
    keys = list(kube_auth._tokens._items)
    assert keys and all(isinstance(k, bytes) and len(k) == 32 for k in keys)  # SHA-256 digests, not tokens


async def test_expired_cache_entries_ask_again(setup: Setup) -> None:
    with setup.cluster.api_client(setup.server_token) as client:
        auth = KubeAuth(client, ttl_seconds=0.0)
        try:
            first = await auth.authenticate(setup.reader)
            second = await auth.authenticate(setup.reader)
            assert isinstance(first, KubePrincipal) and first == second and first.uid
            assert auth.reviews == 2
        finally:
            auth.close()


async def test_a_one_namespace_server_reviews_unnamed_requests_in_its_namespace(
    setup: Setup, store: SqliteStore, executor: HostExecutor
) -> None:
    with setup.cluster.api_client(setup.server_token) as client:
        auth = KubeAuth(client, default_namespace=setup.ns_a)
        app_client = await _client(store, executor, auth)
        try:
            assert (await app_client.get("/api/v1/workflows/", headers=bearer(setup.reader))).status == 200
            denied = await app_client.get("/api/v1/workflows/", headers=bearer(setup.no_delegation))
            assert f"may not list workflows.argoproj.io in namespace '{setup.ns_a}'" in await _json_error(denied, 403)
        finally:
            await app_client.close()
            auth.close()


async def test_a_server_without_review_rights_answers_503(
    setup: Setup, store: SqliteStore, executor: HostExecutor
) -> None:
    with setup.cluster.api_client(setup.no_delegation) as client:
        auth = KubeAuth(client)
        app_client = await _client(store, executor, auth)
        try:
            response = await app_client.get(f"/api/v1/workflows/{setup.ns_a}", headers=bearer(setup.reader))
            message = await _json_error(response, 503)
            assert "TokenReview failed (HTTP 403)" in message
            assert setup.reader not in message
        finally:
            await app_client.close()
            auth.close()


MAPPING = [
    ("GET", "/api/v1/workflows/ns1", Access("list", "workflows", "ns1")),
    ("GET", "/api/v1/workflows/", Access("list", "workflows")),
    ("GET", "/api/v1/workflows/ns1/w", Access("get", "workflows", "ns1", "w")),
    ("GET", "/api/v1/workflows/ns1/w/log", Access("get", "workflows", "ns1", "w")),
    ("GET", "/api/v1/workflow-events/ns1", Access("watch", "workflows", "ns1")),
    ("POST", "/api/v1/workflows/ns1", Access("create", "workflows", "ns1")),
    ("POST", "/api/v1/workflows/ns1/lint", Access("list", "workflows", "ns1")),
    ("POST", "/api/v1/workflows/ns1/submit", Access("create", "workflows", "ns1")),
    ("PUT", "/api/v1/workflows/ns1/w/suspend", Access("update", "workflows", "ns1", "w")),
    ("PUT", "/api/v1/workflows/ns1/w/resubmit", Access("create", "workflows", "ns1")),
    ("DELETE", "/api/v1/workflows/ns1/w", Access("delete", "workflows", "ns1", "w")),
    ("PUT", "/api/v1/workflow-templates/ns1/t", Access("update", "workflowtemplates", "ns1", "t")),
    ("GET", "/api/v1/cluster-workflow-templates/t?namespace=x", Access("get", "clusterworkflowtemplates", "", "t")),
    ("POST", "/api/v1/cluster-workflow-templates", Access("create", "clusterworkflowtemplates")),
    ("PUT", "/api/v1/cron-workflows/ns1/c/resume", Access("update", "cronworkflows", "ns1", "c")),
    ("GET", "/api/v1/event-sources/ns1", Access("list", "eventsources", "ns1")),
    ("GET", "/api/v1/sensors/ns1/s/traces", Access("get", "sensors", "ns1", "s")),
    ("GET", "/api/v1/event-log?namespace=ns1", Access("list", "events", "ns1")),
    ("GET", "/api/v1/event-log/12", Access("get", "events")),
    ("POST", "/api/v1/event-log/12/replay", Access("create", "events")),
    ("GET", "/workflows", Access("list", "workflows")),
    ("POST", "/workflows/ns1/w/retry", Access("update", "workflows", "ns1", "w")),
    ("POST", "/workflows/ns1/w/delete", Access("delete", "workflows", "ns1", "w")),
    ("POST", "/templates/ns1/t/submit", Access("create", "workflows", "ns1")),
    ("POST", "/cron/ns1/c/suspend", Access("update", "cronworkflows", "ns1", "c")),
    ("GET", "/api/v1/version", None),
    ("GET", "/api/v1/userinfo", None),
]


@pytest.mark.parametrize(("method", "path", "expected"), MAPPING, ids=[f"{m} {p}" for m, p, _ in MAPPING])
async def test_request_to_access_mapping(
    method: str, path: str, expected: Access | None, store: SqliteStore, executor: HostExecutor
) -> None:
    app = build_app(ApiContext(store=store, executor=executor))
    request = make_mocked_request(method, path, app=app)
    match = await app.router.resolve(request)
    request._match_info = match  # what aiohttp's request handler does before the middlewares
    assert await required_access(request) == expected


def test_access_reads_well() -> None:
    assert str(Access("list", "workflows", "a")) == "list workflows.argoproj.io in namespace 'a'"
    assert str(Access("get", "sensors", name="s")) == "get sensors.argoproj.io 's' cluster-wide"
