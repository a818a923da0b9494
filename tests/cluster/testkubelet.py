"""A test kubelet: runs the Pods of a real kube-apiserver as host processes (there is no kubelet here).

* It registers a Node (``eventbridge-test-node``, InternalIP 127.0.0.1, Ready) whose kubelet port is
  its own HTTPS server, so ``pods/log`` through the API server works.
* It watches Pods in the given namespaces, binds unscheduled ones to its Node (``pods/binding``, as
  a scheduler would), and runs each container's ``command + args`` as a host process under
  ``unshare --mount`` with the Pod's volumes bind-mounted at their ``mountPath`` (``emptyDir``
  shared by the Pod's containers, a private ``/tmp`` per container) and the Pod's environment
  (``value``, ``fieldRef`` metadata.name/namespace/uid, ``secretKeyRef``, ``configMapKeyRef``).
* Unless ``automountServiceAccountToken`` is false it asks the TokenRequest API for a token of the
  Pod's service account, bound to the Pod, and mounts it with ``ca.crt`` and ``namespace`` at
  ``/var/run/secrets/kubernetes.io/serviceaccount``; ``KUBERNETES_SERVICE_HOST``/``PORT`` point at
  the API server. So in-cluster clients in the Pod run with the Pod's own RBAC.
* It writes Pod status back: Running with container states, then each container's exit code,
  phase Succeeded (all exited 0) or Failed; ``activeDeadlineSeconds`` ends the Pod with reason
  DeadlineExceeded. A Pod being deleted has its processes killed and is then removed (grace 0).
* Like a real kubelet it rides out an API server restart: bindings, token requests and status
  writes are retried while the server cannot be reached (or answers 429/5xx), and the Pod watch
  resumes or relists.

Images are ignored: the host's programs run (``python`` is this interpreter's directory first).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import os
import shlex
import shutil
import signal
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubecluster import KubeCluster, free_port
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch

log = logging.getLogger("testkubelet")
NODE_NAME = "eventbridge-test-node"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTAGE_SECONDS = 60.0  # how long an API call is retried while the API server is away


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _self_signed(workdir: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eventbridge-test-kubelet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = workdir / "kubelet.crt", workdir / "kubelet.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@dataclass
class _PodRun:
    uid: str
    namespace: str
    name: str
    dir: Path
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    deleting: bool = False


def _host_paths_under_tmp() -> list[Path]:
    """The virtualenv and the source checkout, when they sit under /tmp (outermost first)."""
    import eventbridge

    candidates = {Path(sys.prefix).resolve(), Path(eventbridge.__file__).resolve().parents[1]}
    under = sorted(p for p in candidates if p.is_relative_to("/tmp") and p != Path("/tmp"))
    return [p for p in under if not any(p != q and p.is_relative_to(q) for q in under)]


class TestKubelet:
    """See the module docstring. ``async with TestKubelet(cluster, {"ns"}) as kubelet: ...``"""

    __test__ = False  # not a pytest test class

    def __init__(self, cluster: KubeCluster, namespaces: set[str]) -> None:
        self.cluster = cluster
        self.namespaces = namespaces
        self.workdir = Path(tempfile.mkdtemp(prefix="eventbridge-kubelet-", dir="/var/tmp"))
        self.api = cluster.api_client()
        self.core = k8s.CoreV1Api(self.api)
        self.port = free_port()
        self._runs: dict[str, _PodRun] = {}
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stop = threading.Event()
        self._watch: k8s_watch.Watch | None = None
        self._threads: list[threading.Thread] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.started_pods: list[str] = []

    async def __aenter__(self) -> TestKubelet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._serve_log)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=_self_signed(self.workdir)).start()
        await asyncio.to_thread(self._register_node)
        loop = asyncio.get_running_loop()
        for namespace in sorted(self.namespaces):
            thread = threading.Thread(target=self._watch_pods, args=(loop, namespace), daemon=True)
            thread.start()
            self._threads.append(thread)
        self._loop_task = asyncio.create_task(self._handle_events())

    async def stop(self) -> None:
        self._stop.set()
        if self._loop_task is not None:
            # A sentinel, not cancel(): Python 3.11's wait_for can swallow a cancellation.
            self._queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._loop_task), 10)
        for run in list(self._runs.values()):
            await self._kill(run)
            if run.task is not None:
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(run.task, 10)
        if self._runner is not None:
            await self._runner.cleanup()
        for thread in self._threads:  # daemon threads; they end at their watch's 1s timeout
            thread.join(timeout=0.1)
        self.api.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _register_node(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}}
        with contextlib.suppress(k8s.ApiException):
            self.core.create_node(node)
        status = {
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
            }
        }
        self.core.patch_node_status(NODE_NAME, status)

    def _watch_pods(self, loop: asyncio.AbstractEventLoop, namespace: str) -> None:
        """List+watch the namespace's Pods, resuming from the last resourceVersion seen."""
        resource_version: str | None = None
        while not self._stop.is_set():
            watch = k8s_watch.Watch()
            kwargs: dict[str, Any] = {"timeout_seconds": 1}
            if resource_version:
                kwargs["resource_version"] = resource_version
            try:
                for event in watch.stream(self.core.list_namespaced_pod, namespace, **kwargs):
                    if self._stop.is_set():
                        break
                    raw = dict(event.get("raw_object") or {})
                    raw["_event"] = event["type"]
                    loop.call_soon_threadsafe(self._queue.put_nowait, raw)
                resource_version = watch.resource_version
            except k8s.ApiException as exc:
                resource_version = None  # 410 Gone and friends: list again
                if not self._stop.is_set() and exc.status != 410:
                    log.warning("test kubelet: pod watch failed: %s", exc.reason)
                    self._stop.wait(0.5)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("test kubelet: pod watch failed: %s", exc)
                    self._stop.wait(0.5)
            finally:
                watch.stop()

    async def _api(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a thread, retried while the API server is unreachable or
        answers 429/5xx (for up to OUTAGE_SECONDS); other API errors are raised."""
        deadline = asyncio.get_running_loop().time() + OUTAGE_SECONDS
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(fn, *args, **kwargs)
            except k8s.ApiException as exc:
                if exc.status not in (429, 500, 502, 503, 504) or asyncio.get_running_loop().time() > deadline:
                    raise
            except (OSError, urllib3.exceptions.HTTPError):
                if self._stop.is_set() or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # pods ----------------------------------------------------------------------------------------

    async def _handle_events(self) -> None:
        while True:
            pod = await self._queue.get()
            if pod is None:
                return
            try:
                await self._handle(pod)
            except Exception:
                log.exception("test kubelet: could not handle a pod event")

    async def _handle(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        uid = str(meta.get("uid"))
        run = self._runs.get(uid)
        if pod["_event"] == "DELETED" or meta.get("deletionTimestamp"):
            if run is not None and not run.deleting:
                run.deleting = True
                await self._kill(run)
            if pod["_event"] != "DELETED":
                with contextlib.suppress(k8s.ApiException):
                    await asyncio.to_thread(
                        self.core.delete_namespaced_pod, meta["name"], meta["namespace"], grace_period_seconds=0
                    )
            return
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if run is not None or phase != "Pending":
            return
        if not spec.get("nodeName"):
            binding = {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": meta["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME},
            }
            with contextlib.suppress(k8s.ApiException):
                await self._api(
                    self.core.create_namespaced_pod_binding,
                    meta["name"],
                    meta["namespace"],
                    binding,
                    _preload_content=False,
                )
            return  # the binding comes back as a MODIFIED event with our nodeName
        if spec.get("nodeName") != NODE_NAME:
            return
        run = _PodRun(
            uid, meta["namespace"], meta["name"], self.workdir / meta["namespace"] / f"{meta['name']}-{uid[:8]}"
        )
        self._runs[uid] = run
        self.started_pods.append(f"{run.namespace}/{run.name}")
        run.task = asyncio.create_task(self._run_pod(run, pod))

    async def _patch_status(self, run: _PodRun, status: dict[str, Any]) -> None:
        with contextlib.suppress(k8s.ApiException):
            await self._api(self.core.patch_namespaced_pod_status, run.name, run.namespace, {"status": status})

    async def _fail(self, run: _PodRun, reason: str, message: str) -> None:
        await self._patch_status(run, {"phase": "Failed", "reason": reason, "message": message})

    async def _run_pod(self, run: _PodRun, pod: dict[str, Any]) -> None:
        spec = pod["spec"]
        try:
            mounts_by_volume = await self._prepare_volumes(run, pod)
        except RuntimeError as exc:
            await self._fail(run, "VolumeSetupFailed", str(exc))
            return
        started = _now()
        containers = spec.get("containers") or []
        running = [
            {
                "name": c["name"],
                "ready": True,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "state": {"running": {"startedAt": started}},
            }
            for c in containers
        ]
        await self._patch_status(
            run,
            {
                "phase": "Running",
                "startTime": started,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "containerStatuses": running,
            },
        )
        for init in spec.get("initContainers") or []:
            code = await self._run_container(run, pod, init, mounts_by_volume)
            if code != 0:
                await self._fail(run, "InitContainerFailed", f"init container {init['name']} exited {code}")
                return
        deadline = spec.get("activeDeadlineSeconds")
        jobs = [asyncio.create_task(self._run_container(run, pod, c, mounts_by_volume)) for c in containers]
        try:
            codes = await asyncio.wait_for(asyncio.gather(*jobs), deadline)
        except TimeoutError:
            await self._kill(run)
            await self._patch_status(
                run,
                {
                    "phase": "Failed",
                    "reason": "DeadlineExceeded",
                    "message": f"Pod was active on the node longer than the specified deadline ({deadline}s)",
                },
            )
            return
        if run.deleting:
            return
        finished = _now()
        statuses = [
            {
                "name": c["name"],
                "ready": False,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": "",
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started,
                        "finishedAt": finished,
                    }
                },
            }
            for c, code in zip(containers, codes, strict=True)
        ]
        phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        await self._patch_status(run, {"phase": phase, "containerStatuses": statuses})

    async def _prepare_volumes(self, run: _PodRun, pod: dict[str, Any]) -> dict[str, Path]:
        """Host directories for the Pod's volumes, by volume name (and the service-account dir)."""
        spec = pod["spec"]
        volumes: dict[str, Path] = {}
        for volume in spec.get("volumes") or []:
            path = run.dir / "volumes" / volume["name"]
            if "emptyDir" in volume:
                path.mkdir(parents=True, exist_ok=True)
            elif "hostPath" in volume:
                path = Path(volume["hostPath"]["path"])
            elif "configMap" in volume or "secret" in volume:
                path.mkdir(parents=True, exist_ok=True)
                await self._project(run.namespace, volume, path)
            else:
                raise RuntimeError(
                    f"volume {volume['name']}: only emptyDir, hostPath, configMap and secret are supported"
                )
            volumes[volume["name"]] = path
        if spec.get("automountServiceAccountToken") is not False:
            account = spec.get("serviceAccountName") or "default"
            request = {
                "spec": {
                    "expirationSeconds": 3600,
                    "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": run.name, "uid": run.uid},
                }
            }
            try:
                token = await self._api(
                    self.core.create_namespaced_service_account_token, account, run.namespace, request
                )
            except k8s.ApiException as exc:
                raise RuntimeError(f"no token for service account {run.namespace}/{account}: {exc.reason}") from None
            sa = run.dir / "serviceaccount"
            sa.mkdir(parents=True, exist_ok=True)
            (sa / "token").write_text(token.status.token)
            (sa / "namespace").write_text(run.namespace)
            shutil.copy(self.cluster.ca_file, sa / "ca.crt")
            volumes["\0serviceaccount"] = sa
        return volumes

    async def _project(self, namespace: str, volume: dict[str, Any], path: Path) -> None:
        if "configMap" in volume:
            cm = await asyncio.to_thread(self.core.read_namespaced_config_map, volume["configMap"]["name"], namespace)
            for key, value in (cm.data or {}).items():
                (path / key).write_text(value)
        else:
            secret = await asyncio.to_thread(
                self.core.read_namespaced_secret, volume["secret"]["secretName"], namespace
            )
            for key, value in (secret.data or {}).items():
                (path / key).write_bytes(base64.b64decode(value))

    async def _env(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        meta = pod["metadata"]
        bin_dir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bin_dir}:{HOST_PATH}",
            "HOSTNAME": meta["name"],
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.cluster.apiserver_port),
        }
        if os.environ.get("VIRTUAL_ENV"):
            env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"]}
        for entry in container.get("env") or []:
            name = entry["name"]
            if "value" in entry:
                env[name] = str(entry["value"])
                continue
            source = entry.get("valueFrom") or {}
            if "fieldRef" in source:
                env[name] = fields.get(source["fieldRef"]["fieldPath"], "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = await asyncio.to_thread(self.core.read_namespaced_secret, ref["name"], meta["namespace"])
                env[name] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                cm = await asyncio.to_thread(self.core.read_namespaced_config_map, ref["name"], meta["namespace"])
                env[name] = (cm.data or {})[ref["key"]]
            else:
                env[name] = ""
        return env

    async def _run_container(
        self, run: _PodRun, pod: dict[str, Any], container: dict[str, Any], volumes: dict[str, Path]
    ) -> int:
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        log_path = run.dir / "logs" / f"{container['name']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if not container.get("command"):
            log_path.write_text("test kubelet: images are not run; the container needs an explicit command\n")
            return 127
        binds: list[tuple[Path, str]] = []
        tmp = run.dir / "tmp" / container["name"]
        tmp.mkdir(parents=True, exist_ok=True)
        # This interpreter and the checkout may live under the host's /tmp (a CI clone there): keep
        # them visible inside the container's private /tmp at the same paths.
        for keep in _host_paths_under_tmp():
            inside = tmp / keep.relative_to("/tmp")
            inside.mkdir(parents=True, exist_ok=True)
            binds.append((keep, str(inside)))
        binds.append((tmp, "/tmp"))
        for mount in container.get("volumeMounts") or []:
            source = volumes.get(mount["name"])
            if source is None:
                log_path.write_text(f"test kubelet: volume {mount['name']} is not defined\n")
                return 125
            binds.append((source / mount.get("subPath", ""), mount["mountPath"]))
        if "\0serviceaccount" in volumes:
            binds.append((volumes["\0serviceaccount"], SA_DIR))
        cwd = container.get("workingDir") or str(run.dir)
        for _, target in binds:
            os.makedirs(target, exist_ok=True)
        script = "; ".join(f"mount --rbind {shlex.quote(str(s))} {shlex.quote(t)} || exit 125" for s, t in binds)
        script += f'; cd {shlex.quote(cwd)} || exit 125; exec "$@"'
        env = await self._env(pod, container)
        with log_path.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                script,
                "container",
                *argv,
                stdout=out,
                stderr=subprocess_stdout(),
                env=env,
                start_new_session=True,
            )
        run.processes[container["name"]] = process
        return await process.wait()

    async def _kill(self, run: _PodRun) -> None:
        for process in run.processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in run.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 3)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 5)

    # the kubelet API (logs only) ---------------------------------------------------------------

    async def _serve_log(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        for run in self._runs.values():
            if run.namespace == ns and run.name == pod:
                path = run.dir / "logs" / f"{container}.log"
                if path.exists():
                    return web.Response(body=path.read_bytes(), content_type="text/plain")
        return web.Response(status=404, text=json.dumps({"message": f"no log for {ns}/{pod}/{container}"}))


def subprocess_stdout() -> int:
    """stderr goes to the same log as stdout (kubectl logs shows both)."""
    import subprocess

    return subprocess.STDOUT
