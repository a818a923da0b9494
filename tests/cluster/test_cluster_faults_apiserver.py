"""Fault: the API server restarts mid-run (issue #9). The cluster roles run as real processes
(`python -m eventbridge controller|sensor|eventsource`) against a real kube-apiserver + etcd of
their own, the Tansu Kafka broker and the test kubelet. kube-apiserver is killed (SIGKILL) while
step Pods run, stays down for a few seconds while webhooks keep arriving, and is started again on
the same port with the same flags (etcd keeps the state).

Afterwards every workflow has succeeded, there is exactly one Workflow per firing and one Pod per
step node (none run twice), the roles are still running and their logs hold no traceback.

The roles get a Lease renew deadline longer than the outage (``EVENTBRIDGE_LEASE_*``): with the
defaults (10 s) an outage of more than 10 s makes the controller step down and exit, as client-go
controllers do; that path (a restarted controller adopting the Pods) has its own tests.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubecluster import REPO_ROOT, KubeCluster, free_port, start_cluster
from kubernetes import client as k8s
from testkubelet import TestKubelet

from eventbridge.executors.pod import ANNOTATION_NODE_ID, ANNOTATION_TEMPLATE, LABEL_WORKFLOW
from eventbridge.store.kube import KubeStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import KafkaBroker, tansu_broker

GROUP, VERSION = "argoproj.io", "v1alpha1"
Obj = dict[str, Any]
#: Longer than the outage (kill + down + restart ≈ 10 s), so the controller keeps its Lease.
PATIENT_LEASE = {
    "EVENTBRIDGE_LEASE_DURATION": "40s",
    "EVENTBRIDGE_LEASE_RENEW_DEADLINE": "30s",
    "EVENTBRIDGE_LEASE_RETRY_PERIOD": "1s",
}
KAFKA_ARGS = ("--no-kafka-idempotent", "--kafka-session-timeout-ms", "6000", "--kafka-partitions", "1")
DOWN_SECONDS = 6.0
FINAL = ("Succeeded", "Failed", "Error")


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[KubeCluster]:
    """A cluster of this module's own: its API server is killed, which other tests must not see."""
    started = start_cluster()
    yield started
    started.stop()


@pytest.fixture
def cluster(own_cluster: KubeCluster) -> KubeCluster:
    """Overrides conftest's shared cluster, so `namespace`, `role_token` and `kubelet` use ours."""
    return own_cluster


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with tansu_broker() as b:
        yield b


class Role:
    """One `python -m eventbridge <role>` process acting as the `eventbridge` ServiceAccount."""

    def __init__(self, role: str, namespace: str, kubeconfig: Path, logs: Path, *args: str) -> None:
        self.name = role
        self.health_port = free_port()
        self.log_path = logs / f"{role}.log"
        env = {
            **os.environ,
            **PATIENT_LEASE,
            "EVENTBRIDGE_POD_NAME": role,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "eventbridge", "--log-level", "info", role]
        command += ["--namespace", namespace, "--kubeconfig", str(kubeconfig)]
        command += ["--health-host", "127.0.0.1", "--health-port", str(self.health_port), *args]
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/readyz", timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    async def wait_ready(self, within: float = 40) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if await asyncio.to_thread(self._ready):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} was not ready within {within}s:\n{self.log()[-4000:]}")

    async def terminate(self, within: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return -9


@pytest.fixture
def role_kubeconfig(cluster: KubeCluster, role_token: str, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": cluster.host, "certificate-authority": str(cluster.ca_file)}}
        ],
        "users": [{"name": "eventbridge", "user": {"token": role_token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "eventbridge"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
async def start_role(namespace: str, role_kubeconfig: Path, tmp_path: Path, cluster: KubeCluster) -> AsyncIterator[Any]:
    started: list[Role] = []

    def start(role: str, *args: str) -> Role:
        process = Role(role, namespace, role_kubeconfig, tmp_path, *args)
        started.append(process)
        return process

    yield start
    for process in started:
        await process.terminate()
    if not any(p.args == cluster.apiserver_args for p in cluster.processes):  # the test failed while down
        cluster.start_apiserver()


def _custom(cluster: KubeCluster, call: Callable[[k8s.CustomObjectsApi], Any]) -> Any:
    """One CustomObjectsApi call on a client of its own, closed after it (an unclosed client's TLS
    sockets are collected later, in whichever test runs then, as a ResourceWarning)."""
    with cluster.api_client() as api:
        return call(k8s.CustomObjectsApi(api))


async def create(cluster: KubeCluster, namespace: str, plural: str, body: Obj) -> Obj:
    result = await asyncio.to_thread(
        _custom, cluster, lambda api: api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    )
    return dict(result)


async def list_objects(cluster: KubeCluster, namespace: str, plural: str) -> list[Obj]:
    result = await asyncio.to_thread(
        _custom, cluster, lambda api: api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    )
    return list(result["items"])


async def list_pods(cluster: KubeCluster, namespace: str) -> list[Obj]:
    def pods() -> Any:
        with cluster.api_client() as api:
            return json.loads(k8s.CoreV1Api(api).list_namespaced_pod(namespace, _preload_content=False).data)

    return list((await asyncio.to_thread(pods))["items"])


def node_id(pod: Obj) -> str:
    return str(pod["metadata"]["annotations"][ANNOTATION_NODE_ID])


def post(url: str, body: Obj) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=15) as response:
        return int(response.status)


STEPS: list[Obj] = [
    {
        "name": "main",
        "inputs": {"parameters": [{"name": "message"}]},
        "steps": [
            [{"name": "first", "template": "slow"}],
            [
                {
                    "name": "second",
                    "template": "echo",
                    "arguments": {"parameters": [{"name": "m", "value": "{{inputs.parameters.message}}"}]},
                }
            ],
        ],
    },
    {"name": "slow", "container": {"image": "alpine", "command": ["sh", "-c", "sleep 3; echo first-done"]}},
    {
        "name": "echo",
        "inputs": {"parameters": [{"name": "m"}]},
        "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.m}}"]},
    },
]


def workflow(generate_name: str, message: str) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"generateName": generate_name},
        "spec": {
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "message", "value": message}]},
            "templates": STEPS,
        },
    }


async def setup_event_flow(cluster: KubeCluster, namespace: str, broker: KafkaBroker, webhook_port: int) -> None:
    def meta(name: str) -> Obj:
        return {"name": name, "namespace": namespace}

    await create(
        cluster,
        namespace,
        "eventbus",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": meta("default"),
         "spec": {"kafka": {"url": broker.bootstrap, "topic": f"bus-{namespace}"}}},
    )  # fmt: skip
    await create(
        cluster,
        namespace,
        "eventsources",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventSource", "metadata": meta("hooks"),
         "spec": {"webhook": {"example": {"port": str(webhook_port), "endpoint": "/example", "method": "POST"}}}},
    )  # fmt: skip
    trigger = {
        "template": {
            "name": "run",
            "argoWorkflow": {
                "operation": "submit",
                "source": {"resource": workflow("from-hook-", "placeholder")},
                "parameters": [
                    {
                        "src": {"dependencyName": "hook", "dataKey": "body.message"},
                        "dest": "spec.arguments.parameters.0.value",
                    }
                ],
            },
        },
        # Retries ride out what the store's own retries do not (the trigger must not give up).
        "retryStrategy": {"steps": 5, "duration": "1s", "factor": 2},
    }
    await create(
        cluster,
        namespace,
        "sensors",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sensor", "metadata": meta("on-hook"),
         "spec": {"dependencies": [{"name": "hook", "eventSourceName": "hooks", "eventName": "example"}],
                  "triggers": [trigger]}},
    )  # fmt: skip


async def test_api_server_restart_mid_run_loses_and_duplicates_nothing(
    cluster: KubeCluster, namespace: str, kubelet: TestKubelet, broker: KafkaBroker, start_role: Any
) -> None:
    webhook_port = free_port()
    await setup_event_flow(cluster, namespace, broker, webhook_port)
    controller = start_role("controller", "--executor-service-account", "eventbridge-executor")
    sensor = start_role("sensor", *KAFKA_ARGS)
    source = start_role("eventsource", "--webhook-host", "127.0.0.1", *KAFKA_ARGS)
    roles = (controller, sensor, source)
    for role in roles:
        await role.wait_ready()
    hook = f"http://127.0.0.1:{webhook_port}/example"

    # Before the outage: three Workflows created directly, three fired by webhooks.
    for n in range(3):
        await create(cluster, namespace, "workflows", workflow("direct-", f"direct-{n}"))
    for n in range(3):
        assert await asyncio.to_thread(post, hook, {"message": f"before-{n}"}) == 200

    async def slow_pods_running() -> int:
        pods = await list_pods(cluster, namespace)
        return sum(
            1
            for p in pods
            if (p["metadata"].get("annotations") or {}).get(ANNOTATION_TEMPLATE) == "slow"
            and (p.get("status") or {}).get("phase") == "Running"
        )

    deadline = time.monotonic() + 60
    while await slow_pods_running() < 3:
        assert time.monotonic() < deadline, "step Pods did not start:\n" + controller.log()[-3000:]
        await asyncio.sleep(0.2)

    # The outage: kill kube-apiserver while steps run; events keep arriving (Kafka is up).
    await asyncio.to_thread(cluster.stop_apiserver)
    down_at = time.monotonic()
    for n in range(3):
        assert await asyncio.to_thread(post, hook, {"message": f"during-{n}"}) == 200
    await asyncio.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
    await asyncio.to_thread(cluster.start_apiserver)

    for n in range(2):
        assert await asyncio.to_thread(post, hook, {"message": f"after-{n}"}) == 200
    expected_messages = {f"direct-{n}" for n in range(3)} | {
        f"{when}-{n}" for when, count in (("before", 3), ("during", 3), ("after", 2)) for n in range(count)
    }

    async def all_finished() -> list[Obj] | None:
        items = await list_objects(cluster, namespace, "workflows")
        done = [w for w in items if (w.get("status") or {}).get("phase") in FINAL]
        return items if len(items) >= len(expected_messages) and len(done) == len(items) else None

    deadline = time.monotonic() + 120
    while (items := await all_finished()) is None:
        for role in roles:
            assert role.process.poll() is None, f"{role.name} exited:\n{role.log()[-4000:]}"
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {r.name} ---\n{r.log()[-3000:]}" for r in roles)
            phases = [(w["metadata"]["name"], (w.get("status") or {}).get("phase")) for w in await list_objects(
                cluster, namespace, "workflows")]  # fmt: skip
            raise AssertionError(f"the workflows did not all finish: {phases}\n{tails}")
        await asyncio.sleep(0.5)

    # Every workflow succeeded, one per firing: no event lost, none doubled.
    assert [(w["metadata"]["name"], w["status"]["phase"]) for w in items if w["status"]["phase"] != "Succeeded"] == []
    messages = collections.Counter(w["spec"]["arguments"]["parameters"][0]["value"] for w in items)
    assert messages == collections.Counter(expected_messages), messages
    for w in items:
        nodes = {n["displayName"]: n for n in w["status"]["nodes"].values()}
        message = w["spec"]["arguments"]["parameters"][0]["value"]
        assert nodes["second"]["outputs"]["result"] == message
        assert nodes["first"]["outputs"]["result"] == "first-done"

    # One Pod per step node, each started once by the kubelet.
    pods = await list_pods(cluster, namespace)
    per_node = collections.Counter((p["metadata"]["labels"][LABEL_WORKFLOW], node_id(p)) for p in pods)
    assert [key for key, count in per_node.items() if count > 1] == []
    step_nodes = {
        (w["metadata"]["name"], n["id"]) for w in items for n in w["status"]["nodes"].values() if n["type"] == "Pod"
    }
    assert set(per_node) == step_nodes
    assert len(kubelet.started_pods) == len(set(kubelet.started_pods)) == len(step_nodes)

    # The roles rode it out: still running, no crash, and they stop cleanly.
    for role in roles:
        assert role.process.poll() is None, f"{role.name} exited:\n{role.log()[-4000:]}"
        assert "Traceback" not in role.log(), f"{role.name}:\n{role.log()[-6000:]}"
    for role in roles:
        assert await role.terminate() == 0, role.log()[-3000:]


async def test_store_calls_and_watches_wait_for_the_api_server_to_come_back(
    cluster: KubeCluster, namespace: str, kube_store: KubeStore, start_role: Any
) -> None:
    """The Kubernetes Store as a role's ServiceAccount (RBAC is checked): a read made while the
    API server is down returns once it is back, and a watch resumes and sees later changes."""
    first = await kube_store.create(
        workflow("store-", "one") | {"metadata": {"name": "store-one", "namespace": namespace}}
    )
    stream = kube_store.watch("Workflow", namespace)
    await asyncio.to_thread(cluster.stop_apiserver)
    read = asyncio.create_task(kube_store.get("Workflow", namespace, "store-one"))
    await asyncio.sleep(3)
    assert not read.done()  # still retrying, not failed
    await asyncio.to_thread(cluster.start_apiserver)
    assert (await asyncio.wait_for(read, 30))["metadata"]["uid"] == first["metadata"]["uid"]

    await create(cluster, namespace, "workflows", {**workflow("", "two"), "metadata": {"name": "store-two"}})
    deadline = time.monotonic() + 30
    seen: set[str] = set()
    while "store-two" not in seen:
        event = await asyncio.wait_for(anext(stream), max(0.1, deadline - time.monotonic()))
        seen.add(event.object["metadata"]["name"])
    await stream.aclose()  # type: ignore[attr-defined]
