"""B8: controller throughput in cluster mode against a real kube-apiserver, vs the embedded mode.

* Baseline ``embedded``: ``SqliteStore`` + ``HostExecutor`` + ``Controller`` (B5's one-step case).
* Candidate ``cluster``: ``KubeStore`` + ``PodExecutor`` + ``Controller`` as ``eventbridge
  controller`` builds them (32 parallel Pods, deploy/'s namespaced RBAC, the role's ServiceAccount
  token), against etcd + kube-apiserver started in the worker (``tests/cluster/kubecluster.py``,
  binaries cached in ``~/.cache/eventbridge/k8s``; not timed). Step Pods are run by the test
  kubelet (``tests/cluster/testkubelet.py``) in a separate process (:mod:`bench.b8_kubelet`): each
  Pod is a ``main`` shell and a ``wait`` container (``python -m eventbridge.executors.pod wait``,
  which reports the outputs as a WorkflowTaskResult), so a cluster step costs two host processes
  and several API round trips where the embedded one costs one process.

Both variants create the same N one-step no-op Workflows at once and end when the store's watch has
shown every one Succeeded; the variants alternate (A B A B). **Reconciliations** are the
controller's writes of a Workflow (each reconcile pass that changed it ends in one update of the
whole object, spec and status together, since the Workflow CRD has no status subresource), counted
as the MODIFIED events of the Workflow watch; reconciliations/s = that count / wall time. Argo
v3.7's figure (about 44/s with 32 workers) counts its workflow-queue reconciliations the same way
only roughly: it may run a reconcile that writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.b5_controller import workflow
from bench.b8_kubelet import cluster_module
from bench.common import ROOT, Row, fmt, median, pick, ratio

PARALLEL_PODS = 32
ARGO_RECONCILIATIONS_PER_SECOND = 44.0
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding"}


async def _drive(store: Any, namespace: str, count: int, limit: float) -> dict[str, Any]:
    """Create ``count`` one-step Workflows at once; wait until all are finished; count the writes."""
    watch = store.watch("Workflow", namespace)
    phases: dict[str, str] = {}
    modified = 0
    finished = asyncio.Event()

    async def follow() -> None:
        nonlocal modified
        async for change in watch:
            if change.type == "MODIFIED":
                modified += 1
            phase = (change.object.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed", "Error"):
                phases[change.object["metadata"]["name"]] = phase
                if len(phases) >= count:
                    finished.set()

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)  # the watch is open before the first create
    cpu_before = time.process_time()
    started = time.monotonic()
    try:
        bodies = []
        for index in range(count):
            body = workflow(f"wf-{index}", 1)
            body["metadata"]["namespace"] = namespace
            bodies.append(body)
        await asyncio.gather(*(store.create(body) for body in bodies))
        created = time.monotonic()
        await asyncio.wait_for(finished.wait(), limit)
        wall = time.monotonic() - started
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        with contextlib.suppress(Exception):
            await watch.aclose()
    outcome: dict[str, int] = {}
    for phase in phases.values():
        outcome[phase] = outcome.get(phase, 0) + 1
    return {
        "wall": wall,
        "create_seconds": created - started,
        "workflows": count,
        "phases": outcome,
        "reconciliations": modified,
        "reconciliations_per_second": modified / wall,
        "workflows_per_minute": count / wall * 60,
        "controller_cpu_seconds": time.process_time() - cpu_before,
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stop_kubelet(kubelet: subprocess.Popen[str]) -> None:
    with contextlib.suppress(Exception):
        kubelet.stdin.close()  # type: ignore[union-attr]
    try:
        kubelet.wait(20)
    except subprocess.TimeoutExpired:
        kubelet.kill()
        kubelet.wait()


class B8:
    id = "B8"
    title = "controller in cluster mode (real kube-apiserver, Pods) vs embedded, one-step no-op workflows"
    worker_timeout = 420.0

    def plan(self, quick: bool) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        params = {"workflows": 10 if quick else 100}
        return (1 if quick else 3), [("embedded", params), ("cluster", params)]

    async def run(self, variant: str, params: dict[str, Any]) -> dict[str, Any]:
        count = int(params["workflows"])
        if variant == "embedded":
            return await self._embedded(count)
        return await self._cluster(count)

    async def _embedded(self, count: int) -> dict[str, Any]:
        from eventbridge.executors.host import HostExecutor
        from eventbridge.store.sqlite import SqliteStore
        from eventbridge.workflow.controller import Controller

        with tempfile.TemporaryDirectory(prefix="bench-b8-") as folder:
            store = SqliteStore(Path(folder) / "store.db")
            await store.start()
            controller = Controller(store, HostExecutor(Path(folder) / "steps"), max_parallel_pods=PARALLEL_PODS)
            await controller.start()
            try:
                writes_before = store.writes
                result = await _drive(store, "bench", count, 240)
                result["store_writes"] = store.writes - writes_before
                return result
            finally:
                await controller.stop()
                await store.stop()

    async def _cluster(self, count: int) -> dict[str, Any]:
        kubecluster = cluster_module("kubecluster")
        started = time.monotonic()
        cluster = await asyncio.to_thread(kubecluster.start_cluster)
        kubelet: subprocess.Popen[str] | None = None
        try:
            namespace = cluster.new_namespace("bench")
            with cluster.api_client() as api:
                rbac = [o for o in kubecluster.render_kustomization(namespace=namespace) if o["kind"] in RBAC_KINDS]
                kubecluster.create_objects(api, rbac)
                token = kubecluster.service_account_token(api, namespace, "eventbridge")
            children_before = _children_cpu()
            kubelet = self._start_kubelet(cluster, namespace)
            line = await asyncio.wait_for(asyncio.to_thread(kubelet.stdout.readline), 60)  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise RuntimeError(f"the test kubelet did not start: {line!r}")
            setup = time.monotonic() - started
            result = await self._cluster_controller(cluster, token, namespace, count)
            result["setup_seconds"] = setup
            _stop_kubelet(kubelet)
            kubelet = None
            # The kubelet and the Pods' processes it waited for (etcd and kube-apiserver still run).
            result["kubelet_cpu_seconds"] = _children_cpu() - children_before
            return result
        finally:
            if kubelet is not None:
                _stop_kubelet(kubelet)
            cluster.stop()

    @staticmethod
    def _start_kubelet(cluster: Any, namespace: str) -> subprocess.Popen[str]:
        spec = {
            "workdir": str(cluster.workdir),
            "host": cluster.host,
            "token": cluster.token,
            "ca_file": str(cluster.ca_file),
            "kubeconfig": str(cluster.kubeconfig),
            "apiserver_port": cluster.apiserver_port,
            "namespaces": [namespace],
        }
        return subprocess.Popen(
            [sys.executable, "-m", "bench.b8_kubelet", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def _cluster_controller(self, cluster: Any, token: str, namespace: str, count: int) -> dict[str, Any]:
        from eventbridge.executors.pod import PodExecutor
        from eventbridge.store.kube import KubeStore
        from eventbridge.workflow.controller import Controller

        api = cluster.api_client(token)
        store = KubeStore(api, namespace=namespace)
        executor = PodExecutor(api, namespace=namespace, service_account="eventbridge-executor")
        await store.start()
        controller = Controller(store, executor, max_parallel_pods=PARALLEL_PODS)
        await controller.start()
        try:
            return await _drive(store, namespace, count, 360)
        finally:
            await controller.stop()
            await executor.stop()
            await store.stop()

    def summarize(self, runs: dict[str, list[dict[str, Any]]], quick: bool) -> list[Row]:
        cand, base = runs["cluster"], runs["embedded"]
        count = int((cand or base or [{"workflows": 0}])[0]["workflows"])
        per_min_c = median(pick(cand, "workflows_per_minute"))
        per_min_b = median(pick(base, "workflows_per_minute"))
        recon_c = median(pick(cand, "reconciliations_per_second"))
        recon_b = median(pick(base, "reconciliations_per_second"))
        succeeded = bool(cand) and all(r["phases"].get("Succeeded", 0) == r["workflows"] for r in cand)
        per_wf = median([r["reconciliations"] / r["workflows"] for r in cand]) if cand else float("nan")
        cpu = median([r["controller_cpu_seconds"] / r["workflows"] for r in cand]) if cand else float("nan")
        cpu_b = median([r["controller_cpu_seconds"] / r["workflows"] for r in base]) if base else float("nan")
        kubelet = median([r["kubelet_cpu_seconds"] / r["workflows"] for r in cand]) if cand else float("nan")
        return [
            Row(
                "B8",
                f"{count} one-step workflows: cluster mode (kube-apiserver, Pods via the test kubelet) vs embedded",
                f"embedded {fmt(per_min_b, ' wf/min')}",
                f"{fmt(per_min_c, ' wf/min')} (wall {fmt(median(pick(cand, 'wall')), ' s', 2)})",
                ratio(per_min_c, per_min_b),
                "measured; all Succeeded",
                succeeded if cand else None,
                {
                    "workflows_per_minute": {
                        "cluster": pick(cand, "workflows_per_minute"),
                        "embedded": pick(base, "workflows_per_minute"),
                    },
                    "phases": [r["phases"] for r in cand],
                    "setup_seconds": pick(cand, "setup_seconds"),
                },
            ),
            Row(
                "B8",
                "controller process CPU per one-step workflow (store, executor, controller)",
                f"embedded {fmt(cpu_b * 1000, ' ms', 1)}",
                f"{fmt(cpu * 1000, ' ms', 1)} (test kubelet + Pods: {fmt(kubelet * 1000, ' ms', 0)})",
                ratio(cpu, cpu_b),
                "measured",
                None,
            ),
            Row(
                "B8",
                "reconciliations/s (Workflow writes by the controller, from the watch)",
                f"Argo v3.7 ~44/s (32 workers); embedded {fmt(recon_b, '/s')}",
                f"{fmt(recon_c, '/s')} ({fmt(per_wf, ' per workflow')})",
                ratio(recon_c, ARGO_RECONCILIATIONS_PER_SECOND),
                "measured",
                None,
                {
                    "reconciliations_per_second": {
                        "cluster": pick(cand, "reconciliations_per_second"),
                        "embedded": pick(base, "reconciliations_per_second"),
                    }
                },
            ),
        ]
