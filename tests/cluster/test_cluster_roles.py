"""The cluster roles as real processes (`python -m eventbridge controller|eventsource|sensor|server`)
against the real API server, the Tansu Kafka broker and the test kubelet.

The roles act as the `eventbridge` ServiceAccount (deploy/'s namespaced RBAC) through a kubeconfig
holding its token; step Pods run as `eventbridge-executor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubecluster import REPO_ROOT, KubeCluster, free_port
from kubernetes import client as k8s
from testkubelet import TestKubelet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import KafkaBroker, tansu_broker

GROUP, VERSION = "argoproj.io", "v1alpha1"
FAST_LEASE = {
    "EVENTBRIDGE_LEASE_DURATION": "2s",
    "EVENTBRIDGE_LEASE_RENEW_DEADLINE": "1500ms",
    "EVENTBRIDGE_LEASE_RETRY_PERIOD": "200ms",
}
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def broker() -> Iterator[KafkaBroker]:
    with tansu_broker() as b:
        yield b


@pytest.fixture
def role_kubeconfig(cluster: KubeCluster, role_token: str, tmp_path: Path) -> Path:
    """A kubeconfig that acts as the `eventbridge` ServiceAccount."""
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


class RoleProcess:
    """One `python -m eventbridge <role>` process with a health port and a log file."""

    def __init__(self, role: str, namespace: str, kubeconfig: Path, logs: Path, *args: str, name: str = "") -> None:
        self.role = role
        self.name = name or role
        self.health_port = free_port()
        self.log_path = logs / f"{self.name}.log"
        env = {
            **os.environ,
            **FAST_LEASE,
            "EVENTBRIDGE_POD_NAME": self.name,
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

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=1) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    async def status(self, path: str = "/readyz") -> int:
        return await asyncio.to_thread(self._get, path)

    async def wait_ready(self, within: float = 30, path: str = "/readyz") -> None:
        """Until ``path`` answers 200 on the health port."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if await self.status(path) == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer 200 on {path} within {within}s:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    async def terminate(self, within: float = 20) -> int:
        """SIGTERM; the exit code (the role must end by itself within ``within`` seconds)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired as exc:
            self.process.kill()
            self.process.wait(10)
            tail = self.log()[-4000:]
            raise AssertionError(f"{self.name} did not stop within {within}s of SIGTERM:\n{tail}") from exc


@pytest.fixture
async def roles(namespace: str, role_kubeconfig: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """Start roles with ``start(role, *args, name=...)``; all are stopped (SIGTERM) at the end."""
    started: list[RoleProcess] = []

    def start(role: str, *args: str, name: str = "") -> RoleProcess:
        process = RoleProcess(role, namespace, role_kubeconfig, tmp_path, *args, name=name)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(Exception):
            await process.terminate()


#: Tansu's memory storage has no InitProducerId; short sessions keep group joins quick.
KAFKA_ARGS = ("--no-kafka-idempotent", "--kafka-session-timeout-ms", "6000", "--kafka-partitions", "1")


def custom(cluster: KubeCluster) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(cluster.api_client())


async def create(cluster: KubeCluster, namespace: str, plural: str, body: Obj) -> Obj:
    api = custom(cluster)
    result = await asyncio.to_thread(api.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body)
    return dict(result)


async def list_objects(cluster: KubeCluster, namespace: str, plural: str) -> list[Obj]:
    api = custom(cluster)
    result = await asyncio.to_thread(api.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)
    return list(result["items"])


async def list_pods(cluster: KubeCluster, namespace: str) -> list[Obj]:
    core = k8s.CoreV1Api(cluster.api_client())
    response = await asyncio.to_thread(core.list_namespaced_pod, namespace, _preload_content=False)
    return list(json.loads(response.data)["items"])


async def wait_for(what: str, check: Any, within: float, *logs: RoleProcess) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.2)
    tails = "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for p in logs)
    raise AssertionError(f"{what} did not happen within {within}s\n{tails}")


def http_post(url: str, body: Obj) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def http_get_json(url: str) -> Obj:
    with urllib.request.urlopen(url, timeout=10) as response:
        return dict(json.loads(response.read()))


def meta(namespace: str, name: str) -> Obj:
    return {"name": name, "namespace": namespace}


async def test_webhook_event_ends_in_a_succeeded_workflow(
    cluster: KubeCluster, namespace: str, kubelet: TestKubelet, broker: KafkaBroker, roles: Any
) -> None:
    webhook_port = free_port()
    await create(
        cluster,
        namespace,
        "eventbus",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": meta(namespace, "default"),
         "spec": {"kafka": {"url": broker.bootstrap, "topic": f"bus-{namespace}"}}},
    )  # fmt: skip
    await create(
        cluster,
        namespace,
        "eventsources",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventSource", "metadata": meta(namespace, "hooks"),
         "spec": {"webhook": {"example": {"port": str(webhook_port), "endpoint": "/example", "method": "POST"}}}},
    )  # fmt: skip
    workflow = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"generateName": "from-webhook-"},
        "spec": {
            "entrypoint": "say",
            "arguments": {"parameters": [{"name": "message", "value": "placeholder"}]},
            "templates": [
                {
                    "name": "say",
                    "inputs": {"parameters": [{"name": "message"}]},
                    "container": {"image": "alpine", "command": ["echo"], "args": ["{{inputs.parameters.message}}"]},
                }
            ],
        },
    }
    await create(
        cluster,
        namespace,
        "sensors",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Sensor",
            "metadata": meta(namespace, "on-hook"),
            "spec": {
                "dependencies": [{"name": "hook", "eventSourceName": "hooks", "eventName": "example"}],
                "triggers": [
                    {
                        "template": {
                            "name": "run",
                            "argoWorkflow": {
                                "operation": "submit",
                                "source": {"resource": workflow},
                                "parameters": [
                                    {
                                        "src": {"dependencyName": "hook", "dataKey": "body.message"},
                                        "dest": "spec.arguments.parameters.0.value",
                                    }
                                ],
                            },
                        },
                    }
                ],
            },
        },
    )
    extra = KAFKA_ARGS
    server_port = free_port()
    controller = roles("controller", "--executor-service-account", "eventbridge-executor")
    sensor = roles("sensor", *extra)
    source = roles("eventsource", "--webhook-host", "127.0.0.1", *extra)
    server = roles("server", "--host", "127.0.0.1", "--port", str(server_port))
    for process in (controller, sensor, source, server):
        await process.wait_ready()

    status, text = await asyncio.to_thread(
        http_post, f"http://127.0.0.1:{webhook_port}/example", {"message": "hello from the webhook"}
    )
    assert status == 200, text

    async def succeeded() -> Obj | None:
        items = await list_objects(cluster, namespace, "workflows")
        done = [w for w in items if (w.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error")]
        return done[0] if done else None

    result = await wait_for("a finished Workflow", succeeded, 60, controller, sensor, source)
    assert result["status"]["phase"] == "Succeeded", result["status"]
    assert result["metadata"]["labels"]["events.argoproj.io/sensor"] == "on-hook"
    nodes = [n for n in result["status"]["nodes"].values() if n["type"] == "Pod"]
    assert [n["outputs"]["result"] for n in nodes] == ["hello from the webhook"]
    assert len(await list_objects(cluster, namespace, "workflows")) == 1

    # The server role shows it through the API, as argo-server would.
    listed = await asyncio.to_thread(http_get_json, f"http://127.0.0.1:{server_port}/api/v1/workflows/{namespace}")
    assert [w["metadata"]["name"] for w in listed["items"]] == [result["metadata"]["name"]]

    for process in (source, sensor, server, controller):
        assert await process.terminate() == 0, process.log()[-3000:]


SLOW_STEPS = [
    {
        "name": "main",
        "steps": [
            [{"name": "first", "template": "echo", "arguments": {"parameters": [{"name": "m", "value": "one"}]}}],
            [{"name": "slow", "template": "slow"}],
            [
                {
                    "name": "last",
                    "template": "echo",
                    "arguments": {"parameters": [{"name": "m", "value": "{{steps.slow.outputs.result}}"}]},
                }
            ],
        ],
    },
    {
        "name": "echo",
        "inputs": {"parameters": [{"name": "m"}]},
        "container": {"image": "alpine", "command": ["echo", "{{inputs.parameters.m}}"]},
    },
    {"name": "slow", "container": {"image": "alpine", "command": ["sh", "-c", "sleep 4; echo slow-done"]}},
]


async def test_controller_killed_mid_workflow_a_standby_finishes_it_without_duplicate_pods(
    cluster: KubeCluster, namespace: str, kubelet: TestKubelet, roles: Any
) -> None:
    args = ("--executor-service-account", "eventbridge-executor")
    first = roles("controller", *args, name="controller-a")
    await first.wait_ready()
    standby = roles("controller", *args, name="controller-b")
    await standby.wait_ready(path="/healthz")
    await asyncio.sleep(0.5)
    assert await standby.status() == 503  # alive, not leading

    created = await create(
        cluster,
        namespace,
        "workflows",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "restart-"},
         "spec": {"entrypoint": "main", "templates": SLOW_STEPS}},
    )  # fmt: skip
    name = created["metadata"]["name"]

    async def slow_pod_running() -> Obj | None:
        for pod in await list_pods(cluster, namespace):
            template = (pod["metadata"].get("annotations") or {}).get("workflows.argoproj.io/template")
            if template == "slow" and (pod.get("status") or {}).get("phase") == "Running":
                return pod
        return None

    slow = await wait_for("the slow step's Pod running", slow_pod_running, 30, first)
    first.kill()  # SIGKILL: no release of the Lease, no cleanup

    await standby.wait_ready(within=20)

    async def finished() -> Obj | None:
        items = [w for w in await list_objects(cluster, namespace, "workflows") if w["metadata"]["name"] == name]
        phase = (items[0].get("status") or {}).get("phase") if items else None
        return items[0] if phase in ("Succeeded", "Failed", "Error") else None

    result = await wait_for("the Workflow to finish", finished, 60, standby)
    assert result["status"]["phase"] == "Succeeded", result["status"]
    nodes = {n["displayName"]: n for n in result["status"]["nodes"].values()}
    assert nodes["last"]["outputs"]["result"] == "slow-done"

    pods = await list_pods(cluster, namespace)
    names = sorted(p["metadata"]["name"] for p in pods)
    assert len(names) == 3, names
    assert len(kubelet.started_pods) == len(set(kubelet.started_pods)) == 3, kubelet.started_pods
    adopted = next(p for p in pods if p["metadata"]["name"] == slow["metadata"]["name"])
    assert adopted["metadata"]["uid"] == slow["metadata"]["uid"]  # the same Pod, not a re-run

    assert await standby.terminate() == 0, standby.log()[-3000:]
    lease = await asyncio.to_thread(
        k8s.CoordinationV1Api(cluster.api_client()).read_namespaced_lease, "eventbridge-controller", namespace
    )
    assert not lease.spec.holder_identity  # released on SIGTERM: a standby takes over at once


async def test_controller_sigterm_leaves_step_pods_running_for_the_next_leader(
    cluster: KubeCluster, namespace: str, kubelet: TestKubelet, roles: Any
) -> None:
    args = ("--executor-service-account", "eventbridge-executor")
    first = roles("controller", *args, name="controller-a")
    await first.wait_ready()
    created = await create(
        cluster,
        namespace,
        "workflows",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "handover-"},
         "spec": {"entrypoint": "slow", "templates": SLOW_STEPS}},
    )  # fmt: skip

    async def running_pod() -> Obj | None:
        pods = await list_pods(cluster, namespace)
        return next((p for p in pods if (p.get("status") or {}).get("phase") == "Running"), None)

    pod = await wait_for("the step Pod running", running_pod, 30, first)
    assert await first.terminate() == 0, first.log()[-3000:]
    still = [p["metadata"]["uid"] for p in await list_pods(cluster, namespace)]
    assert still == [pod["metadata"]["uid"]]  # not deleted by the stopping controller

    second = roles("controller", *args, name="controller-b")
    await second.wait_ready(within=10)  # the Lease was released: no wait for it to expire

    async def finished() -> Obj | None:
        items = await list_objects(cluster, namespace, "workflows")
        phase = (items[0].get("status") or {}).get("phase")
        return items[0] if phase in ("Succeeded", "Failed", "Error") else None

    result = await wait_for("the Workflow to finish", finished, 30, second)
    assert result["metadata"]["name"] == created["metadata"]["name"]
    assert result["status"]["phase"] == "Succeeded", result["status"]
    assert kubelet.started_pods == [f"{namespace}/{pod['metadata']['name']}"]


async def test_controller_exits_when_its_lease_is_taken(cluster: KubeCluster, namespace: str, roles: Any) -> None:
    controller = roles("controller", name="controller-a")
    await controller.wait_ready()
    leases = k8s.CoordinationV1Api(cluster.api_client())
    response = await asyncio.to_thread(
        leases.read_namespaced_lease, "eventbridge-controller", namespace, _preload_content=False
    )
    lease = json.loads(response.data)
    assert lease["spec"]["holderIdentity"] == "controller-a"
    lease["spec"]["holderIdentity"] = "intruder"
    await asyncio.to_thread(
        leases.replace_namespaced_lease, "eventbridge-controller", namespace, lease, _preload_content=False
    )
    code = await asyncio.to_thread(controller.process.wait, 10)
    assert code == 1
    assert "leadership lost" in controller.log()
