"""All-namespaces mode on the real API server: deploy/cluster-wide's RBAC, cluster-scoped list and
watch, one controller/sensor/eventsource for several namespaces; the namespaced mode stays confined."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubecluster import DEPLOY_DIR, KubeCluster, create_objects, free_port, render_kustomization
from kubernetes import client as k8s
from test_cluster_roles import (
    GROUP,
    KAFKA_ARGS,
    VERSION,
    RoleProcess,
    create,
    http_post,
    list_objects,
    role_kubeconfig,
    wait_for,
)
from testkubelet import TestKubelet

from eventbridge.runtime.cluster import ClusterSettings, ControllerRole
from eventbridge.store.kube import KubeForbiddenError, KubeStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import KafkaBroker, tansu_broker

__all__ = ["role_kubeconfig"]  # a fixture used here
Obj = dict[str, Any]
CLUSTER_WIDE = DEPLOY_DIR / "cluster-wide"
CLUSTER_SCOPED_RBAC = {"ClusterRole", "ClusterRoleBinding"}


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with tansu_broker() as b:
        yield b


def cluster_wide_rbac(home: str) -> list[Obj]:
    """deploy/cluster-wide's own RBAC for an install in ``home``; cluster-scoped names get ``-<home>``
    so that tests sharing the API server do not collide."""
    objects = [o for o in yaml.safe_load_all((CLUSTER_WIDE / "rbac.yaml").read_text()) if o]
    for obj in objects:
        obj["metadata"]["name"] += f"-{home}"
        if "roleRef" in obj:
            obj["roleRef"]["name"] += f"-{home}"
        for subject in obj.get("subjects") or []:
            subject["namespace"] = home
    return objects


def grant_cluster_wide(cluster: KubeCluster, home: str) -> str:
    """Create the cluster-wide RBAC; the name of the executor ClusterRole."""
    objects = cluster_wide_rbac(home)
    with cluster.api_client() as api:
        create_objects(api, objects)
    return next(o["metadata"]["name"] for o in objects if o["metadata"]["name"].startswith("eventbridge-executor"))


def workflow_namespace(cluster: KubeCluster, executor_role: str, prefix: str) -> str:
    """A namespace with the step Pods' ServiceAccount bound to the executor ClusterRole (the README's recipe)."""
    ns = cluster.new_namespace(prefix)
    with cluster.api_client() as api:
        create_objects(
            api,
            [
                {"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "eventbridge-executor", "namespace": ns}},
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "eventbridge-executor", "namespace": ns},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": executor_role},
                    "subjects": [{"kind": "ServiceAccount", "name": "eventbridge-executor", "namespace": ns}],
                },
            ],
        )  # fmt: skip
    return ns


def workflow(name: str, message: str) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "say",
            "templates": [{"name": "say", "container": {"image": "alpine", "command": ["echo", message]}}],
        },
    }


def phase_of(item: Obj) -> str | None:
    phase = (item.get("status") or {}).get("phase")
    return str(phase) if phase else None


def test_cluster_wide_overlay_matches_the_role_and_is_accepted(cluster: KubeCluster) -> None:
    base = render_kustomization()
    overlay = render_kustomization(CLUSTER_WIDE)
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in overlay}
    role = next(o for o in base if o["kind"] == "Role" and o["metadata"]["name"] == "eventbridge")
    cluster_role = by_key[("ClusterRole", "eventbridge-cluster-wide")]
    # The same rules as the namespaced Role, except Leases (they stay in the install namespace).
    assert cluster_role["rules"] == [r for r in role["rules"] if "leases" not in r["resources"]]
    assert [r for r in role["rules"] if "leases" in r["resources"]]
    binding = by_key[("ClusterRoleBinding", "eventbridge-cluster-wide")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "eventbridge", "namespace": "eventbridge"}]
    deployments = [o for o in overlay if o["kind"] == "Deployment"]
    assert len(deployments) == 4
    for deployment in deployments:
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["EVENTBRIDGE_ALL_NAMESPACES"]["value"] == "true"
        assert env["EVENTBRIDGE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert not any(o["kind"] == "Deployment" and "env" in str(o) and "ALL_NAMESPACES" in str(o) for o in base)

    # The API server accepts the overlay's own objects, and they grant what the roles need.
    home = cluster.new_namespace("cw")
    namespaced = [
        o for o in render_kustomization(namespace=home) if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    ]
    with cluster.api_client() as api:
        create_objects(api, namespaced)
        grant_cluster_wide(cluster, home)
        authz = k8s.AuthorizationV1Api(api)

        def allowed(verb: str, group: str, resource: str, namespace: str = "") -> bool:
            attributes = {"verb": verb, "group": group, "resource": resource}
            if namespace:
                attributes["namespace"] = namespace
            review = authz.create_subject_access_review(
                {"spec": {"user": f"system:serviceaccount:{home}:eventbridge", "resourceAttributes": attributes}}
            )
            return bool(review.status.allowed)

        assert allowed("watch", GROUP, "workflows")  # cluster-scoped list/watch
        assert allowed("create", "", "pods", "some-team")
        assert allowed("update", GROUP, "workflows", "other-team")
        assert allowed("update", "coordination.k8s.io", "leases", home)
        assert not allowed("update", "coordination.k8s.io", "leases", "some-team")


async def test_kube_store_lists_and_watches_every_namespace_with_cluster_wide_rbac(
    cluster: KubeCluster, namespace: str, role_token: str
) -> None:
    a, b = cluster.new_namespace("a"), cluster.new_namespace("b")
    # Namespaced RBAC only: a cluster-wide list is refused, naming what is missing.
    confined = KubeStore(cluster.api_client(role_token), namespace=None)
    await confined.start()
    try:
        with pytest.raises(KubeForbiddenError, match="workflows"):
            await confined.list("Workflow")
    finally:
        await confined.stop()

    grant_cluster_wide(cluster, namespace)
    store = KubeStore(cluster.api_client(role_token), namespace=None)
    await store.start()
    watch = store.watch("Workflow")
    try:
        await asyncio.sleep(0.5)  # the watch is open
        for ns in (a, b):
            body = workflow("hello", ns)
            body["metadata"]["namespace"] = ns
            await store.create(body)
        listed = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in await store.list("Workflow")}
        assert {(a, "hello"), (b, "hello")} <= listed
        assert [o["metadata"]["namespace"] for o in await store.list("Workflow", a)] == [a]
        seen: set[str] = set()

        async def both_seen() -> None:
            async for change in watch:
                seen.add(change.object["metadata"]["namespace"])
                if {a, b} <= seen:
                    return

        await asyncio.wait_for(both_seen(), 15)
    finally:
        await watch.aclose()  # type: ignore[attr-defined]
        await store.stop()


async def test_one_set_of_roles_serves_two_namespaces(
    cluster: KubeCluster,
    namespace: str,
    role_kubeconfig: Path,
    broker: KafkaBroker,
    tmp_path: Path,
) -> None:
    executor_role = grant_cluster_wide(cluster, namespace)
    a = workflow_namespace(cluster, executor_role, "team-a")
    b = workflow_namespace(cluster, executor_role, "team-b")
    ports = {a: free_port(), b: free_port()}
    for ns in (a, b):
        meta = {"name": "default", "namespace": ns}
        # oldest: a sensor's new consumer group starts at the topic's start, so no event is missed
        # however late it joins (its /readyz also waits for Sensors left in other namespaces).
        bus = {"kafka": {"url": broker.bootstrap, "topic": f"bus-{ns}", "consumerGroup": {"oldest": True}}}
        await create(
            cluster,
            ns,
            "eventbus",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": meta, "spec": bus},
        )
        await create(
            cluster,
            ns,
            "eventsources",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventSource", "metadata": {"name": "hooks", "namespace": ns},
             "spec": {"webhook": {"hook": {"port": str(ports[ns]), "endpoint": "/hook", "method": "POST"}}}},
        )  # fmt: skip
        submitted = workflow("placeholder", "placeholder")
        submitted["metadata"] = {"generateName": "from-hook-"}
        submitted["spec"]["templates"][0]["container"]["command"] = ["echo", "x"]
        await create(
            cluster,
            ns,
            "sensors",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Sensor",
                "metadata": {"name": "on-hook", "namespace": ns},
                "spec": {
                    "dependencies": [{"name": "hook", "eventSourceName": "hooks", "eventName": "hook"}],
                    "triggers": [{"template": {"name": "run", "argoWorkflow": {
                        "operation": "submit",
                        "source": {"resource": submitted},
                        "parameters": [{"src": {"dependencyName": "hook", "dataKey": "body.message"},
                                        "dest": "spec.templates.0.container.command.1"}],
                    }}}],
                },
            },
        )  # fmt: skip
    # A Workflow created directly in each namespace too.
    for ns in (a, b):
        await create(cluster, ns, "workflows", workflow("direct", f"direct in {ns}"))

    started: list[RoleProcess] = []

    def start(role: str, *args: str) -> RoleProcess:
        process = RoleProcess(role, namespace, role_kubeconfig, tmp_path, "--all-namespaces", *args)
        started.append(process)
        return process

    async with TestKubelet(cluster, {a, b}):
        try:
            start("controller", "--executor-service-account", "eventbridge-executor")
            start("sensor", *KAFKA_ARGS)
            start("eventsource", "--webhook-host", "127.0.0.1", *KAFKA_ARGS)
            controller, sensor, source = started
            await controller.wait_ready(within=45)
            await source.wait_ready(within=45)
            await sensor.wait_ready(within=45, path="/healthz")
            for ns in (a, b):
                status, text = await asyncio.to_thread(
                    http_post, f"http://127.0.0.1:{ports[ns]}/hook", {"message": f"event in {ns}"}
                )
                assert status == 200, text

            async def all_done() -> dict[str, list[Obj]] | None:
                found = {ns: await list_objects(cluster, ns, "workflows") for ns in (a, b)}
                complete = all(
                    len(items) == 2 and all(phase_of(w) in ("Succeeded", "Failed", "Error") for w in items)
                    for items in found.values()
                )
                return found if complete else None

            found = await wait_for("two finished Workflows in each namespace", all_done, 90, *started)
            for ns, items in found.items():
                results = {}
                for item in items:
                    assert phase_of(item) == "Succeeded", item.get("status")
                    assert item["metadata"]["namespace"] == ns
                    node = next(n for n in item["status"]["nodes"].values() if n["type"] == "Pod")
                    results[item["metadata"]["name"].split("-")[0]] = node["outputs"]["result"]
                assert results == {"direct": f"direct in {ns}", "from": f"event in {ns}"}
            with cluster.api_client() as api:
                leases = k8s.CoordinationV1Api(api)
                for lease in ("eventbridge-controller", "eventbridge-eventsource"):
                    assert leases.read_namespaced_lease(lease, namespace).spec.holder_identity  # in the home namespace
                pods = {p.metadata.namespace for p in k8s.CoreV1Api(api).list_pod_for_all_namespaces().items}
            assert {a, b} <= pods and namespace not in pods  # each step Pod in its Workflow's namespace
        finally:
            for process in started:
                assert await process.terminate() == 0, process.log()[-3000:]


async def test_a_namespaced_controller_ignores_other_namespaces(
    cluster: KubeCluster, namespace: str, role_token: str, kubelet: TestKubelet
) -> None:
    executor_role = grant_cluster_wide(cluster, namespace)  # even with the rights, the scope decides
    other = workflow_namespace(cluster, executor_role, "other")
    await create(cluster, other, "workflows", workflow("elsewhere", "no"))
    await create(cluster, namespace, "workflows", workflow("here", "yes"))
    settings = ClusterSettings(namespace=namespace, executor_service_account="eventbridge-executor")
    role = ControllerRole(settings, cluster.api_client(role_token))
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop))
    try:

        async def here_done() -> Obj | None:
            items = await list_objects(cluster, namespace, "workflows")
            return items[0] if phase_of(items[0]) in ("Succeeded", "Failed", "Error") else None

        done = await wait_for("the Workflow of its namespace to finish", here_done, 45)
        assert phase_of(done) == "Succeeded", done.get("status")
        await asyncio.sleep(1.0)
        (elsewhere,) = await list_objects(cluster, other, "workflows")
        assert not elsewhere.get("status"), elsewhere["status"]
        with cluster.api_client() as api:
            assert k8s.CoreV1Api(api).list_namespaced_pod(other).items == []
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0


def test_cli_flags_and_env_choose_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from eventbridge.cli import cluster as cli

    seen: list[ClusterSettings] = []
    monkeypatch.setattr(cli, "serve", lambda role, settings: seen.append(settings))
    runner = CliRunner()
    assert runner.invoke(cli.controller, ["-n", "home", "--all-namespaces"]).exit_code == 0
    assert runner.invoke(cli.sensor, ["-n", "home"], env={"EVENTBRIDGE_ALL_NAMESPACES": "true"}).exit_code == 0
    assert runner.invoke(cli.server, ["-n", "home"], env={"EVENTBRIDGE_ALL_NAMESPACES": ""}).exit_code == 0
    assert [(s.namespace, s.watch_namespace) for s in seen] == [("home", None), ("home", None), ("home", "home")]
    refused = runner.invoke(cli.eventsource, ["--namespace", ""])
    assert refused.exit_code == 2 and "--all-namespaces" in refused.output
