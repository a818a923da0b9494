"""A real Kubernetes API server for the tests: etcd + kube-apiserver on loopback, as envtest runs them.

The binaries come from ``scripts/k8s_binaries.sh`` (built once from the Go module proxy and cached);
when they are missing the fixture raises, so the tests fail (they are never skipped).

* etcd: a temp data dir, client and peer URLs on free loopback ports, ``--unsafe-no-fsync``.
* kube-apiserver: a self-signed serving certificate (``--cert-dir``), an admin token in a token
  file (user ``admin`` in ``system:masters``), a generated service-account key pair (so the
  TokenRequest API works), ``--authorization-mode=RBAC``, no ServiceAccount admission plugin (no
  controller-manager creates token secrets), no endpoint reconciler.
* The CRDs of ``deploy/crds`` are applied with the Python client and awaited until Established.

One cluster serves the whole test process (:func:`shared_cluster`); it is stopped at exit, and the
children get SIGTERM if the test process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "deploy" / "crds"
BINARIES_SCRIPT = REPO_ROOT / "scripts" / "k8s_binaries.sh"
ADMIN_USER = "admin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: One thread that lives as long as the test process, to fork long-lived children from.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-spawner")


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, even by SIGKILL."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def binaries_dir() -> Path:
    """The cached binaries' dir; raises with the way to build them when they are missing."""
    result = subprocess.run(["bash", str(BINARIES_SCRIPT), "--check"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"kube-apiserver/etcd are not built: {result.stderr.strip()} "
            "(`bash scripts/k8s_binaries.sh` builds them once from the Go module proxy)"
        )
    return Path(result.stdout.strip())


def _wait(check: Any, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with code {process.returncode}:\n{tail}")
        try:
            if check():
                return
        except Exception as exc:
            last = exc
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} was not ready within {timeout:.0f}s (last error: {last}):\n{tail}")


@dataclass
class KubeCluster:
    """A running etcd + kube-apiserver; :meth:`api_client` gives an admin client."""

    workdir: Path
    host: str
    token: str
    ca_file: Path
    kubeconfig: Path
    apiserver_port: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    apiserver_args: list[str] = field(default_factory=list)  # to restart it with the same flags

    def configuration(self, token: str | None = None) -> k8s.Configuration:
        conf = k8s.Configuration()
        conf.host = self.host
        conf.api_key = {"authorization": f"Bearer {token or self.token}"}
        conf.ssl_ca_cert = str(self.ca_file)
        conf.verify_ssl = True
        conf.connection_pool_maxsize = 32
        return conf

    def api_client(self, token: str | None = None) -> k8s.ApiClient:
        """A client for the API server. Whoever drops it without closing it does not leak its
        pooled TLS sockets into a later test's ResourceWarning: they are closed when it is collected."""
        client = k8s.ApiClient(self.configuration(token))
        weakref.finalize(client, client.rest_client.close)
        return client

    def new_namespace(self, prefix: str = "t") -> str:
        """A fresh namespace (namespaces are never deleted: no controller-manager would finish it)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with self.api_client() as api:
            k8s.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
        return name

    def _apiserver(self) -> subprocess.Popen[bytes] | None:
        return next((p for p in self.processes if p.args == self.apiserver_args), None)

    def stop_apiserver(self) -> None:
        """Kill kube-apiserver (SIGKILL: in-flight requests break); etcd keeps the state."""
        process = self._apiserver()
        if process is None:
            raise RuntimeError("kube-apiserver is not running")
        process.kill()
        process.wait(timeout=15)
        self.processes.remove(process)

    def start_apiserver(self, timeout: float = 90) -> None:
        """Start kube-apiserver again with the same flags and port (after :meth:`stop_apiserver`)."""
        if self._apiserver() is not None:
            raise RuntimeError("kube-apiserver is already running")
        process = _launch_apiserver(self.apiserver_args, self.workdir, self.apiserver_port, self.token, timeout)
        self.processes.append(process)

    def stop(self) -> None:
        # A test server keeps nothing: no graceful shutdown (kube-apiserver's takes seconds).
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _write_keys(workdir: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = workdir / "sa.key"
    public = workdir / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def _start_etcd(bin_dir: Path, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    client_port, peer_port = free_port(), free_port()
    log = workdir / "etcd.log"
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    args = [
        str(bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    with urllib3.PoolManager() as http:

        def healthy() -> bool:
            response = http.request("GET", f"{client_url}/health", timeout=1.0, retries=False)
            return response.status == 200 and b'"health":"true"' in response.data

        _wait(healthy, process, "etcd", log, 30)
    return process, client_port


def _start_apiserver(bin_dir: Path, workdir: Path, etcd_port: int, token: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    private, public = _write_keys(workdir)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},{ADMIN_USER},{ADMIN_USER}-uid,"system:masters"\n')
    args = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={workdir / 'certs'}",
        f"--secure-port={port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--token-auth-file={tokens}",
        "--authorization-mode=RBAC",
        f"--service-account-key-file={public}",
        f"--service-account-signing-key-file={private}",
        "--service-account-issuer=https://eventbridge.test",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--disable-admission-plugins=ServiceAccount",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
    ]
    return _launch_apiserver(args, workdir, port, token, 90), port


def _launch_apiserver(args: list[str], workdir: Path, port: int, token: str, timeout: float) -> subprocess.Popen[bytes]:
    """Start kube-apiserver with ``args`` (its log appended to ``apiserver.log``) and wait for /readyz."""
    log = workdir / "apiserver.log"

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    # PR_SET_PDEATHSIG fires when the *thread* that forked exits: a restart called from a worker
    # thread (asyncio.to_thread) must not fork there, or the server dies with that thread.
    process = _SPAWNER.submit(spawn).result()
    headers = {"Authorization": f"Bearer {token}"}
    # closed after the wait: a pool left to the collector reports its TLS socket as a
    # ResourceWarning in whichever test runs when it is collected
    with urllib3.PoolManager(cert_reqs="CERT_NONE") as http:

        def ready() -> bool:
            with warnings_suppressed():
                response = http.request(
                    "GET", f"https://127.0.0.1:{port}/readyz", headers=headers, timeout=2.0, retries=False
                )
            return response.status == 200

        _wait(ready, process, "kube-apiserver", log, timeout)
    return process


@contextlib.contextmanager
def warnings_suppressed() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


def _kubeconfig(path: Path, host: str, ca: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": host, "certificate-authority": str(ca)}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": ADMIN_USER, "namespace": "default"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))


def crd_manifests() -> list[dict[str, Any]]:
    """The CRDs listed by deploy/crds/kustomization.yaml."""
    kustomization = yaml.safe_load((CRD_DIR / "kustomization.yaml").read_text())
    return [yaml.safe_load((CRD_DIR / name).read_text()) for name in kustomization["resources"]]


def apply_crds(api: k8s.ApiClient, manifests: list[dict[str, Any]], timeout: float = 30) -> None:
    """Create (or replace) each CRD and wait until every one is Established and served."""
    ext = k8s.ApiextensionsV1Api(api)
    for crd in manifests:
        try:
            ext.create_custom_resource_definition(crd)
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(crd["metadata"]["name"])
            crd = {**crd, "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version}}
            ext.replace_custom_resource_definition(crd["metadata"]["name"], crd)
    deadline = time.monotonic() + timeout
    pending = {crd["metadata"]["name"] for crd in manifests}
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                pending.discard(name)
        time.sleep(0.1)
    if pending:
        raise RuntimeError(f"CRDs not established within {timeout}s: {sorted(pending)}")
    # Discovery lags a little behind Established.
    groups = {(crd["spec"]["group"], v["name"]) for crd in manifests for v in crd["spec"]["versions"]}
    custom = k8s.CustomObjectsApi(api)
    for group, version in groups:
        wanted = {crd["spec"]["names"]["plural"] for crd in manifests if crd["spec"]["group"] == group}
        while True:
            with contextlib.suppress(k8s.ApiException):
                served = {r.name for r in custom.get_api_resources(group, version).resources}
                if wanted <= served:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{group}/{version} discovery does not list {sorted(wanted)}")
            time.sleep(0.1)


def start_cluster() -> KubeCluster:
    """Start etcd + kube-apiserver and apply the CRDs; the caller must call ``stop()``."""
    bin_dir = binaries_dir()
    workdir = Path(tempfile.mkdtemp(prefix="eventbridge-kube-"))
    token = secrets.token_hex(16)
    processes: list[subprocess.Popen[bytes]] = []
    cluster: KubeCluster | None = None
    try:
        etcd, etcd_port = _start_etcd(bin_dir, workdir)
        processes.append(etcd)
        apiserver, port = _start_apiserver(bin_dir, workdir, etcd_port, token)
        processes.append(apiserver)
        host = f"https://127.0.0.1:{port}"
        ca = workdir / "certs" / "apiserver.crt"
        kubeconfig = workdir / "kubeconfig"
        _kubeconfig(kubeconfig, host, ca, token)
        cluster = KubeCluster(workdir, host, token, ca, kubeconfig, port, processes, list(apiserver.args))
        with cluster.api_client() as api:
            apply_crds(api, crd_manifests())
        return cluster
    except BaseException:
        if cluster is not None:
            cluster.stop()
        else:
            KubeCluster(workdir, "", token, workdir, workdir, 0, processes).stop()
        raise


_shared: KubeCluster | None = None
_shared_lock = threading.Lock()


def shared_cluster() -> KubeCluster:
    """The test process's one cluster, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or any(p.poll() is not None for p in _shared.processes):
            _shared = start_cluster()
            atexit.register(_shared.stop)
        return _shared


if __name__ == "__main__":  # a manual check: start, print how to reach it, wait for Ctrl-C
    started = start_cluster()
    print(f"export KUBECONFIG={started.kubeconfig}")
    try:
        signal.pause()
    finally:
        started.stop()
        os._exit(0)


# ---------------------------------------------------------------------------------------------
# deploy/ as kustomize would render it (the subset deploy/ uses), and applying objects


DEPLOY_DIR = REPO_ROOT / "deploy"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}


def render_kustomization(directory: Path = DEPLOY_DIR, namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects of a kustomization: ``resources`` (files or folders with their own kustomization),
    ``patches`` (JSON 6902 files with a ``target`` of kind, name and labelSelector ``k=v``), with
    ``namespace`` (the argument wins over the file's) set on namespaced objects and on
    ServiceAccount subjects of (Cluster)RoleBindings, as kustomize does."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    target = namespace or kustomization.get("namespace")
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources") or []:
        path = (directory / resource).resolve()
        if path.is_dir():
            objects += render_kustomization(path, namespace)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches") or []:
        operations = yaml.safe_load((directory / patch["path"]).read_text())
        for obj in objects:
            if _patch_targets(patch.get("target") or {}, obj):
                _json_patch(obj, operations)
    if target:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = target
            for subject in obj.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = target
    return objects


def _patch_targets(target: dict[str, Any], obj: dict[str, Any]) -> bool:
    if target.get("kind") and target["kind"] != obj.get("kind"):
        return False
    if target.get("name") and target["name"] != obj["metadata"].get("name"):
        return False
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, str(target.get("labelSelector") or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


def _json_patch(obj: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    """JSON 6902 ``add``/``replace``/``remove`` (what deploy/'s patches use; ``-`` appends)."""
    for operation in operations:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if operation["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            if last == "-":
                node.append(operation["value"])
            elif operation["op"] == "add":
                node.insert(int(last), operation["value"])
            else:
                node[int(last)] = operation["value"]
        else:
            node[last] = operation["value"]


def create_objects(api: k8s.ApiClient, objects: list[dict[str, Any]]) -> list[Any]:
    """Create each object (any built-in kind) through the API; the API server's answers."""
    from kubernetes import utils

    created = []
    for obj in objects:
        created += utils.create_from_dict(api, obj, namespace=obj["metadata"].get("namespace"))
    return created


def service_account_token(api: k8s.ApiClient, namespace: str, account: str) -> str:
    """A TokenRequest token for a ServiceAccount (to act with its RBAC, as its Pods would)."""
    response = k8s.CoreV1Api(api).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return str(response.status.token)
