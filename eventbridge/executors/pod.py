"""PodExecutor: each workflow step runs as one Kubernetes Pod (cluster mode).

The Pod, as Argo lays it out:

* labels ``workflows.argoproj.io/workflow`` and ``workflows.argoproj.io/completed``; annotations
  ``workflows.argoproj.io/node-id``, ``workflows.argoproj.io/node-name`` and
  ``workflows.argoproj.io/template``; an owner reference to the Workflow (so deleting the Workflow
  deletes its Pods);
* pod-level fields from the template over the workflow spec: ``serviceAccountName``,
  ``automountServiceAccountToken``, ``nodeSelector``, ``tolerations``, ``affinity``, ``volumes``,
  ``securityContext``, ``priorityClassName``, ``schedulerName``, ``hostAliases``,
  ``imagePullSecrets``, ``activeDeadlineSeconds``, ``metadata`` (labels/annotations, with the
  workflow's ``podMetadata``), the container's ``resources``, ``volumeMounts``, ``securityContext``,
  ``imagePullPolicy``, and last ``podSpecPatch`` (a strategic-merge-style patch: lists of named
  items merge by name);
* container ``main`` runs the step under a small POSIX ``sh`` wrapper (the image needs ``sh``): it
  writes a script template's source to a file, tees stdout to the shared ``emptyDir``
  ``/var/run/eventbridge``, copies the declared output parameter files there after the command
  ends, and records the exit code;
* container ``wait`` (the eventbridge image, ``python -m eventbridge.executors.pod wait``) waits
  for that, then reports ``outputs.result``, ``outputs.exitCode`` and ``outputs.parameters``
  through the API as a ``WorkflowTaskResult`` named after the node ID (Argo's object; CRD in
  ``deploy/crds``), owned by the Workflow. Its service account needs ``create`` on
  ``workflowtaskresults``.

The executor watches Pods labelled with a workflow (one shared watch in a thread), reads the main
container's exit code from the Pod status and the outputs from the task result; logs come from
the API (``pods/log``, container ``main``). Blocking client calls run in a bounded thread pool;
while the API server cannot be reached (a restart) they are retried with backoff for up to
``outage_seconds`` before a step is given up, and the watch relists when it comes back. For
``AUTH_SETTLE_SECONDS`` after the server was unreachable, 401/403 are retried too (a restarted
kube-apiserver answers before its authenticator and RBAC caches are loaded).

Pod GC follows ``spec.podGC`` as Argo does: ``strategy`` ``OnPodCompletion`` / ``OnPodSuccess``
delete a step's Pod once its step is recorded, ``OnWorkflowCompletion`` / ``OnWorkflowSuccess``
delete the workflow's Pods when the controller reports the workflow finished
(:meth:`PodExecutor.workflow_finished`); only Pods whose labels match ``labelSelector`` (all when
unset) are deleted, ``deleteDelayDuration`` later. Other Pods get the label
``workflows.argoproj.io/completed: "true"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from eventbridge.errors import EventBridgeError, InvalidError, NotFoundError, TemporaryError
from eventbridge.executors.base import StepResult, StepSpec
from eventbridge.models.eventsource import parse_go_duration

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
LABEL_WORKFLOW = "workflows.argoproj.io/workflow"
LABEL_COMPLETED = "workflows.argoproj.io/completed"
LABEL_REPORT_COMPLETED = "workflows.argoproj.io/report-outputs-completed"
ANNOTATION_NODE_ID = "workflows.argoproj.io/node-id"
ANNOTATION_NODE_NAME = "workflows.argoproj.io/node-name"
ANNOTATION_TEMPLATE = "workflows.argoproj.io/template"
MAIN = "main"
WAIT = "wait"
VAR_VOLUME = "eventbridge-var"
VAR_DIR = "/var/run/eventbridge"
RESULT_LIMIT = 256 * 1024
DEFAULT_WAIT_IMAGE = "eventbridge:latest"
WORKFLOW_FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
#: How long after the API server was last unreachable 401/403 count as its caches still loading.
AUTH_SETTLE_SECONDS = 30.0

# The main container's entry point. $@ is the step's command; see the module docstring.
WRAPPER_SH = r"""d=/var/run/eventbridge
if [ -n "${EVENTBRIDGE_SCRIPT+x}" ]; then
  printf '%s' "$EVENTBRIDGE_SCRIPT" > "$d/script" && chmod +x "$d/script" && set -- "$@" "$d/script"
fi
rm -f "$d/stdout.pipe"; mkfifo "$d/stdout.pipe" || exit 125
tee "$d/stdout" < "$d/stdout.pipe" &
tee_pid=$!
"$@" > "$d/stdout.pipe"
code=$?
wait "$tee_pid"
i=0
printf '%s\n' "${EVENTBRIDGE_OUTPUT_PATHS:-}" | while IFS= read -r p; do
  if [ -n "$p" ] && [ -f "$p" ]; then cp "$p" "$d/output.$i"; fi
  i=$((i+1))
done
printf '%s' "$code" > "$d/exitcode.tmp" && mv "$d/exitcode.tmp" "$d/exitcode"
exit "$code"
"""

_POD_FIELDS = (
    "nodeSelector",
    "tolerations",
    "affinity",
    "securityContext",
    "priorityClassName",
    "schedulerName",
    "hostAliases",
    "imagePullSecrets",
    "automountServiceAccountToken",
    "dnsPolicy",
    "dnsConfig",
    "hostNetwork",
)
_CONTAINER_FIELDS = ("resources", "volumeMounts", "securityContext", "imagePullPolicy", "ports", "envFrom")


# ---------------------------------------------------------------------------------------------
# building the Pod (pure functions)


def find_template(workflow: dict[str, Any], name: str | None) -> dict[str, Any]:
    """The named template from the workflow spec or its stored WorkflowTemplate spec ({} if absent)."""
    if not name:
        return {}
    status = workflow.get("status") or {}
    for spec in (workflow.get("spec") or {}, status.get("storedWorkflowTemplateSpec") or {}):
        for template in spec.get("templates") or []:
            if isinstance(template, dict) and template.get("name") == name:
                return template
    return {}


def workflow_spec(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow spec over its stored WorkflowTemplate spec (top-level keys)."""
    stored = (workflow.get("status") or {}).get("storedWorkflowTemplateSpec") or {}
    return {**stored, **(workflow.get("spec") or {})}


def strategic_merge(base: Any, patch: Any) -> Any:
    """A small strategic merge: maps merge recursively, lists of named maps merge by ``name``,
    other lists and scalars are replaced, ``null`` deletes a key."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    ):
        result = [copy.deepcopy(i) for i in base]
        index = {item["name"]: n for n, item in enumerate(result)}
        for item in patch:
            if item["name"] in index:
                result[index[item["name"]]] = strategic_merge(result[index[item["name"]]], item)
            else:
                result.append(copy.deepcopy(item))
        return result
    return copy.deepcopy(patch)


def build_pod(
    step: StepSpec,
    workflow: dict[str, Any],
    *,
    wait_image: str = DEFAULT_WAIT_IMAGE,
    default_service_account: str | None = None,
) -> dict[str, Any]:
    """The Pod manifest for ``step`` of ``workflow`` (see the module docstring)."""
    template = find_template(workflow, step.template_name)
    spec = workflow_spec(workflow)
    wf_meta = workflow.get("metadata") or {}
    body = template.get("script") or template.get("container") or {}
    node = ((workflow.get("status") or {}).get("nodes") or {}).get(step.node_id) or {}

    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for meta in (spec.get("podMetadata") or {}, template.get("metadata") or {}):
        labels.update({str(k): str(v) for k, v in (meta.get("labels") or {}).items()})
        annotations.update({str(k): str(v) for k, v in (meta.get("annotations") or {}).items()})
    labels.update({LABEL_WORKFLOW: step.workflow, LABEL_COMPLETED: "false"})
    annotations.update(
        {
            ANNOTATION_NODE_ID: step.node_id,
            ANNOTATION_NODE_NAME: str(step.node_name or node.get("name") or step.node_id),
            ANNOTATION_TEMPLATE: step.template_name or "",
        }
    )
    metadata: dict[str, Any] = {
        "name": step.pod_name,
        "namespace": step.namespace,
        "labels": labels,
        "annotations": annotations,
    }
    if wf_meta.get("uid"):
        metadata["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Workflow",
                "name": step.workflow,
                "uid": wf_meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]

    var_mount = {"name": VAR_VOLUME, "mountPath": VAR_DIR}
    env = [{"name": k, "value": v} for k, v in step.env.items()]
    env += [
        {"name": "ARGO_WORKFLOW_NAME", "value": step.workflow},
        {"name": "ARGO_NODE_ID", "value": step.node_id},
        {"name": "ARGO_POD_NAME", "value": step.pod_name},
        {"name": "ARGO_TEMPLATE", "value": step.template_name or ""},
        {"name": "EVENTBRIDGE_OUTPUT_PATHS", "value": "\n".join(o.path for o in step.outputs)},
    ]
    if step.script is not None:
        env.append({"name": "EVENTBRIDGE_SCRIPT", "value": step.script})
    env = list({e["name"]: e for e in env}.values())  # a later entry wins, as in a container
    main: dict[str, Any] = {
        "name": MAIN,
        "image": step.image or body.get("image") or "busybox",
        "command": ["/bin/sh", "-c", WRAPPER_SH, "eventbridge-wrapper", *step.argv],
        "env": env,
    }
    for key in _CONTAINER_FIELDS:
        if body.get(key) is not None:
            main[key] = copy.deepcopy(body[key])
    main["volumeMounts"] = [*(main.get("volumeMounts") or []), var_mount]
    if step.working_dir:
        main["workingDir"] = step.working_dir

    wait_env = [
        {"name": "EVENTBRIDGE_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "EVENTBRIDGE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "EVENTBRIDGE_WORKFLOW", "value": step.workflow},
        {"name": "EVENTBRIDGE_WORKFLOW_UID", "value": str(wf_meta.get("uid") or "")},
        {"name": "EVENTBRIDGE_NODE_ID", "value": step.node_id},
        {"name": "EVENTBRIDGE_OUTPUT_NAMES", "value": json.dumps([o.name for o in step.outputs])},
    ]
    wait: dict[str, Any] = {
        "name": WAIT,
        "image": wait_image,
        "command": ["python", "-m", "eventbridge.executors.pod", "wait"],
        "env": wait_env,
        "volumeMounts": [var_mount],
    }

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [main, wait],
        "volumes": [
            *copy.deepcopy(spec.get("volumes") or []),
            *copy.deepcopy(template.get("volumes") or []),
            {"name": VAR_VOLUME, "emptyDir": {}},
        ],
    }
    service_account = template.get("serviceAccountName") or spec.get("serviceAccountName") or default_service_account
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    for key in _POD_FIELDS:
        value = template.get(key, spec.get(key))
        if value is not None:
            pod_spec[key] = copy.deepcopy(value)
    deadline = template.get("activeDeadlineSeconds")
    if deadline is None and step.timeout:
        deadline = int(step.timeout + 0.999)
    if deadline is not None:
        with contextlib.suppress(TypeError, ValueError):
            pod_spec["activeDeadlineSeconds"] = int(str(deadline))
    for patch_text in (spec.get("podSpecPatch"), template.get("podSpecPatch")):
        if patch_text:
            try:
                patch = yaml.safe_load(str(patch_text))
            except yaml.YAMLError as exc:
                raise InvalidError(f"podSpecPatch is not valid JSON or YAML: {exc}") from None
            if not isinstance(patch, dict):
                raise InvalidError("podSpecPatch must be an object")
            pod_spec = strategic_merge(pod_spec, patch)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def main_exit_code(pod: dict[str, Any]) -> int | None:
    """The main container's exit code from the Pod status, if it ended."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == MAIN:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if "exitCode" in terminated:
                return int(terminated["exitCode"])
    return None


def pod_finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ---------------------------------------------------------------------------------------------
# the executor


@dataclass(frozen=True, slots=True)
class PodGC:
    """A workflow's ``spec.podGC``: ``delay`` is ``deleteDelayDuration`` in seconds."""

    strategy: str = ""
    selector: dict[str, Any] | None = None
    delay: float = 0.0


def pod_gc(workflow: dict[str, Any]) -> PodGC:
    """The ``podGC`` of the workflow spec (over its stored WorkflowTemplate spec)."""
    raw = workflow_spec(workflow).get("podGC")
    if not isinstance(raw, dict):
        return PodGC()
    delay = 0.0
    text = raw.get("deleteDelayDuration")
    if text not in (None, ""):
        try:
            delay = max(parse_go_duration(str(text)), 0.0)
        except ValueError:
            log.warning("podGC.deleteDelayDuration %r is not a duration; Pods are deleted at once", text)
    selector = raw.get("labelSelector")
    return PodGC(str(raw.get("strategy") or ""), selector if isinstance(selector, dict) else None, delay)


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether ``labels`` match a Kubernetes LabelSelector (``matchLabels`` and ``matchExpressions``
    with In, NotIn, Exists, DoesNotExist); an empty or missing selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(str(key)) != str(value):
            return False
    for requirement in selector.get("matchExpressions") or []:
        key = str(requirement.get("key") or "")
        operator = requirement.get("operator")
        values = {str(v) for v in requirement.get("values") or []}
        if operator == "In":
            matched = key in labels and labels[key] in values
        elif operator == "NotIn":
            matched = key not in labels or labels[key] not in values
        elif operator == "Exists":
            matched = key in labels
        elif operator == "DoesNotExist":
            matched = key not in labels
        else:  # the API server rejects other operators; match nothing rather than delete by mistake
            matched = False
        if not matched:
            return False
    return True


def should_delete_pod(gc: PodGC, labels: dict[str, str], *, step_phase: str = "", workflow_phase: str = "") -> bool:
    """Argo's Pod GC decision for one Pod: after its step ended (``step_phase``) or after the
    workflow ended (``workflow_phase``)."""
    if not gc.strategy or not selector_matches(gc.selector, labels):
        return False
    if gc.strategy == "OnWorkflowCompletion":
        return workflow_phase in WORKFLOW_FINAL_PHASES
    if gc.strategy == "OnWorkflowSuccess":
        return workflow_phase == "Succeeded"
    if gc.strategy == "OnPodCompletion":
        return bool(step_phase)
    if gc.strategy == "OnPodSuccess":
        return step_phase == "Succeeded"
    return False


class PodApiError(TemporaryError):
    """The API server failed or refused a Pod operation."""


def _api_message(exc: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        body = json.loads(exc.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    return str(exc.reason or exc.status)


@dataclass
class _Waiter:
    future: asyncio.Future[dict[str, Any]]
    reason: str | None = None  # set when we end the Pod on purpose


@dataclass
class _PodWatch:
    """One shared Pod watch (all namespaces or one) feeding the executor's waiters."""

    executor: PodExecutor
    loop: asyncio.AbstractEventLoop
    stopping: threading.Event = field(default_factory=threading.Event)
    response: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        delay = 0.2
        rv = ""
        while not self.stopping.is_set():
            try:
                if not rv:
                    rv = self._relist()
                rv = self._watch_once(rv)
                delay = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    rv = ""
                    continue
                log.warning("pod watch failed: %s %s", exc.status, _api_message(exc))
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
            except Exception as exc:  # noqa: BLE001  (the watch thread must survive any failure)
                if self.stopping.is_set():
                    break
                if isinstance(exc, OSError | urllib3.exceptions.HTTPError):
                    self.executor._unreachable_at = time.monotonic()
                log.warning("pod watch failed (%s); retrying in %.1fs", exc, delay)
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                rv = ""

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            if self.response is not None:
                with contextlib.suppress(Exception):
                    self.response.shutdown()

    def _deliver(self, event_type: str, pod: dict[str, Any]) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.executor._pod_event, event_type, pod)

    def _relist(self) -> str:
        raw = self.executor._list_pods_sync(None, f"{LABEL_WORKFLOW}")
        for pod in raw.get("items") or []:
            self._deliver("MODIFIED", pod)
        self._deliver("RELISTED", {"items": raw.get("items") or []})
        return str((raw.get("metadata") or {}).get("resourceVersion") or "")

    def _watch_once(self, rv: str) -> str:
        from kubernetes.watch.watch import iter_resp_lines

        response = self.executor._open_pod_watch(rv)
        with self.lock:
            self.response = response
        if self.stopping.is_set():
            response.shutdown()
        started = time.monotonic()
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self.stopping.is_set() or not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        return ""
                    raise PodApiError(f"pod watch error: {obj.get('message')}")
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    self._deliver(str(event["type"]), obj)
        finally:
            with self.lock:
                self.response = None
            with contextlib.suppress(Exception):
                response.release_conn()
        if time.monotonic() - started < 0.05:
            time.sleep(0.2)
        return rv


class PodExecutor:
    """Executor protocol on Kubernetes Pods; see the module docstring.

    ``namespace``: watch Pods in that namespace only (namespaced RBAC), else cluster-wide.
    ``wait_image``: the image of the ``wait`` container (the eventbridge image).
    ``service_account``: used when neither the template nor the workflow names one.
    ``outage_seconds``: how long a call keeps retrying while the API server cannot be reached or
    answers 429/5xx (a restart, an overload) before the step is given up.
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        namespace: str | None = None,
        wait_image: str = DEFAULT_WAIT_IMAGE,
        service_account: str | None = None,
        max_workers: int = 8,
        watch_timeout_seconds: int = 300,
        recheck_seconds: float = 15.0,
        outage_seconds: float = 60.0,
    ) -> None:
        self._api_client = api_client
        self._core = k8s.CoreV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.wait_image = wait_image
        self.service_account = service_account
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="pod-executor")
        self._watch_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pod-watch")
        self._watch_timeout = watch_timeout_seconds
        self._recheck = recheck_seconds
        self._outage = outage_seconds
        self._unreachable_at: float | None = None  # monotonic time of the last transport failure
        self._gc_tasks: set[asyncio.Task[None]] = set()
        self._watch: _PodWatch | None = None
        self._waiters: dict[tuple[str, str], _Waiter] = {}
        self._last_seen: dict[tuple[str, str], dict[str, Any]] = {}

    async def stop(self) -> None:
        """Stop the Pod watch and the thread pools (running Pods are left alone)."""
        if self._watch is not None:
            self._watch.stop()
        for waiter in self._waiters.values():
            if not waiter.future.done():
                waiter.future.cancel()
        for task in list(self._gc_tasks):  # delayed Pod GC: the Pods stay (as after an Argo restart)
            task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._watch_thread.shutdown(wait=False, cancel_futures=True)

    # plumbing --------------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """Run a blocking client call in the pool; retry while the API server is unreachable or
        answers 429/5xx, with backoff, for up to ``outage_seconds`` (at least four attempts).

        Every call made through here is safe to repeat: Pods have fixed names (a repeated create
        answers 409, which the caller adopts), and the rest are reads, deletes and label patches."""
        loop = asyncio.get_running_loop()
        delay = 0.2
        deadline = time.monotonic() + self._outage
        attempt = 0
        while True:
            attempt += 1
            try:
                return await loop.run_in_executor(self._pool, fn)
            except ApiException as exc:
                settling = exc.status in AUTH_STATUSES and self._settling()
                if not (exc.status in RETRY_STATUSES or settling) or (attempt >= 4 and time.monotonic() > deadline):
                    raise
                if attempt == 1:
                    log.info("API server answered %s; retrying for up to %gs", exc.status, self._outage)
            except (OSError, urllib3.exceptions.HTTPError) as exc:
                self._unreachable_at = time.monotonic()
                if attempt >= 4 and time.monotonic() > deadline:
                    raise PodApiError(f"API server unreachable: {exc}") from None
                if attempt == 1:
                    log.info("API server unreachable (%s); retrying for up to %gs", exc, self._outage)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _settling(self) -> bool:
        """Whether the API server was unreachable moments ago, so its auth caches may be cold."""
        at = self._unreachable_at
        return at is not None and time.monotonic() - at < min(AUTH_SETTLE_SECONDS, self._outage)

    def _list_pods_sync(self, namespace: str | None, selector: str) -> dict[str, Any]:
        ns = namespace or self.namespace
        kwargs: dict[str, Any] = {"label_selector": selector, "_preload_content": False}
        if ns:
            response: Any = self._core.list_namespaced_pod(ns, **kwargs)
        else:
            response = self._core.list_pod_for_all_namespaces(**kwargs)
        return cast(dict[str, Any], json.loads(response.data))

    def _open_pod_watch(self, rv: str) -> Any:
        kwargs: dict[str, Any] = {
            "label_selector": LABEL_WORKFLOW,
            "watch": True,
            "resource_version": rv,
            "allow_watch_bookmarks": True,
            "timeout_seconds": self._watch_timeout,
            "_preload_content": False,
            "_request_timeout": (10, self._watch_timeout + 30),
        }
        if self.namespace:
            return self._core.list_namespaced_pod(self.namespace, **kwargs)
        return self._core.list_pod_for_all_namespaces(**kwargs)

    def _ensure_watch(self) -> None:
        if self._watch is None:
            self._watch = _PodWatch(self, asyncio.get_running_loop())
            self._watch_thread.submit(self._watch.run)

    def _pod_event(self, event_type: str, pod: dict[str, Any]) -> None:
        """On the loop: a Pod changed; wake the step waiting for it if it is done."""
        if event_type == "RELISTED":
            present = {
                ((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name"))
                for p in pod["items"]
            }
            for gone_key, gone in self._waiters.items():
                if gone_key not in present and gone_key in self._last_seen and not gone.future.done():
                    gone.future.set_result({"deleted": True, **self._last_seen[gone_key]})
            return
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        waiter = self._waiters.get(key)
        if waiter is None:
            return
        self._last_seen[key] = pod
        if waiter.future.done():
            return
        if event_type == "DELETED":
            waiter.future.set_result({"deleted": True, **pod})
        elif pod_finished(pod):
            waiter.future.set_result(pod)

    async def _get_workflow(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj = await self._call(
                lambda: self._custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "workflows", name)
            )
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"Workflow {namespace}/{name} not found") from None
            raise PodApiError(f"cannot read Workflow {namespace}/{name}: {_api_message(exc)}") from None
        return cast(dict[str, Any], obj)

    # Executor protocol -----------------------------------------------------------------------

    async def run(self, step: StepSpec) -> StepResult:
        try:
            workflow = await self._get_workflow(step.namespace, step.workflow)
            manifest = build_pod(
                step, workflow, wait_image=self.wait_image, default_service_account=self.service_account
            )
        except EventBridgeError as exc:
            return StepResult("Error", message=str(exc))
        self._ensure_watch()
        key = (step.namespace, step.pod_name)
        waiter = _Waiter(asyncio.get_running_loop().create_future())
        self._waiters[key] = waiter
        try:
            return await self._run(step, workflow, manifest, waiter)
        finally:
            self._waiters.pop(key, None)
            self._last_seen.pop(key, None)

    async def _run(
        self, step: StepSpec, workflow: dict[str, Any], manifest: dict[str, Any], waiter: _Waiter
    ) -> StepResult:
        ns, name = step.namespace, step.pod_name
        try:
            await self._call(lambda: self._core.create_namespaced_pod(ns, cast(Any, manifest), _preload_content=False))
        except ApiException as exc:
            if exc.status != 409:  # 409: the Pod exists (a restarted controller): adopt it
                return StepResult("Error", message=f"cannot create Pod {ns}/{name}: {_api_message(exc)}")
        except PodApiError as exc:
            return StepResult("Error", message=f"cannot create Pod {ns}/{name}: {exc}")
        deadline = None if not step.timeout else time.monotonic() + step.timeout
        pod = await self._await_pod(step, waiter, deadline)
        if pod is None:
            reason = f"Step exceeded its deadline ({step.timeout:g}s)"
            waiter.reason = reason
            await self._delete_pod(ns, name)
            return StepResult("Failed", message=reason)
        if pod.get("deleted"):
            return StepResult("Failed", exit_code=main_exit_code(pod), message=waiter.reason or "the Pod was deleted")
        result = await self._result(step, pod)
        labels = (pod.get("metadata") or {}).get("labels") or manifest["metadata"]["labels"]
        await self._collect(workflow, ns, name, result, labels)
        return result

    async def _await_pod(self, step: StepSpec, waiter: _Waiter, deadline: float | None) -> dict[str, Any] | None:
        """The finished (or deleted) Pod; None when the step's deadline passed first."""
        ns, name = step.namespace, step.pod_name
        while True:
            wait_for = self._recheck
            if deadline is not None:
                wait_for = min(wait_for, deadline - time.monotonic())
                if wait_for <= 0:
                    return None
            try:
                return await asyncio.wait_for(asyncio.shield(waiter.future), wait_for)
            except TimeoutError:
                pass
            # A missed event must not strand the step: read the Pod now and then.
            try:
                pod = await self._call(lambda: self._core.read_namespaced_pod(name, ns, _preload_content=False))
                current = cast(dict[str, Any], json.loads(pod.data))
            except ApiException as exc:
                if exc.status == 404:
                    return {"deleted": True, "metadata": {"namespace": ns, "name": name}}
                continue
            except PodApiError:
                continue
            if pod_finished(current):
                return current

    async def _result(self, step: StepSpec, pod: dict[str, Any]) -> StepResult:
        exit_code = main_exit_code(pod)
        status = pod.get("status") or {}
        outputs: dict[str, Any] = {}
        try:
            report = await self._call(
                lambda: self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, step.namespace, "workflowtaskresults", step.node_id
                )
            )
            outputs = report.get("outputs") or {}
        except ApiException as exc:
            if exc.status != 404:
                return StepResult(
                    "Error", exit_code=exit_code, message=f"cannot read the step's outputs: {_api_message(exc)}"
                )
        except PodApiError as exc:
            return StepResult("Error", exit_code=exit_code, message=f"cannot read the step's outputs: {exc}")
        if exit_code is None and "exitCode" in outputs:
            with contextlib.suppress(ValueError):
                exit_code = int(outputs["exitCode"])
        result = outputs.get("result")
        if exit_code is None:
            reason = status.get("reason") or status.get("message") or "the main container did not run"
            if reason == "DeadlineExceeded":
                reason = f"Pod was active on the node longer than the specified deadline ({status.get('message', '')})"
            return StepResult("Failed", message=str(reason))
        if exit_code != 0:
            return StepResult("Failed", exit_code=exit_code, result=result, message=f"Error (exit code {exit_code})")
        if not outputs:
            return StepResult(
                "Error", exit_code=exit_code, message="the wait container reported no outputs (WorkflowTaskResult)"
            )
        reported = {str(p.get("name")): p.get("value") for p in outputs.get("parameters") or []}
        parameters: dict[str, str] = {}
        for output in step.outputs:
            value = reported.get(output.name)
            if value is None:
                value = output.default
            if value is None:
                return StepResult(
                    "Error",
                    exit_code=exit_code,
                    result=result,
                    message=f"output parameter {output.name!r}: the step wrote no file {output.path}",
                )
            parameters[output.name] = str(value)
        return StepResult("Succeeded", exit_code=exit_code, result=result, parameters=parameters)

    async def _collect(
        self, workflow: dict[str, Any], ns: str, name: str, result: StepResult, labels: dict[str, str]
    ) -> None:
        """After a step: delete its Pod (per-Pod GC strategies) or label it completed."""
        gc = pod_gc(workflow)
        if should_delete_pod(gc, labels, step_phase=result.phase):
            await self._gc_delete(ns, name, gc.delay)
        else:
            patch = {"metadata": {"labels": {LABEL_COMPLETED: "true"}}}
            with contextlib.suppress(ApiException, PodApiError):
                await self._call(lambda: self._core.patch_namespaced_pod(name, ns, patch, _preload_content=False))

    async def _gc_delete(self, ns: str, name: str, delay: float) -> None:
        """Delete a Pod now, or ``delay`` seconds from now in the background."""
        if delay <= 0:
            await self._delete_pod(ns, name)
            return

        async def later() -> None:
            await asyncio.sleep(delay)
            await self._delete_pod(ns, name)

        task = asyncio.get_running_loop().create_task(later())
        self._gc_tasks.add(task)
        task.add_done_callback(self._gc_tasks.discard)

    async def workflow_finished(self, workflow: dict[str, Any]) -> None:
        """Workflow-level Pod GC (``OnWorkflowCompletion``, ``OnWorkflowSuccess``) for a finished
        workflow: its Pods that match ``labelSelector`` are deleted. Never raises: a failure is
        logged and the Pods stay (they are still owned by the Workflow)."""
        gc = pod_gc(workflow)
        if gc.strategy not in ("OnWorkflowCompletion", "OnWorkflowSuccess"):
            return
        meta = workflow.get("metadata") or {}
        ns, name, uid = str(meta.get("namespace") or "default"), str(meta.get("name") or ""), meta.get("uid")
        phase = str((workflow.get("status") or {}).get("phase") or "")
        try:
            pods = await self._pods_of(ns, name, None)
        except (ApiException, PodApiError) as exc:
            log.warning("workflow %s/%s: Pod GC could not list its Pods: %s", ns, name, exc)
            return
        for pod in pods:
            pod_meta = pod.get("metadata") or {}
            owners = {str(o.get("uid")) for o in pod_meta.get("ownerReferences") or []}
            if uid and owners and str(uid) not in owners:
                continue  # a Pod of an earlier Workflow of the same name
            if should_delete_pod(gc, dict(pod_meta.get("labels") or {}), workflow_phase=phase):
                await self._gc_delete(ns, str(pod_meta.get("name")), gc.delay)

    async def _delete_pod(self, ns: str, name: str) -> None:
        with contextlib.suppress(ApiException, PodApiError):
            await self._call(
                lambda: self._core.delete_namespaced_pod(name, ns, grace_period_seconds=0, _preload_content=False)
            )

    async def _pods_of(self, namespace: str, workflow: str, node_id: str | None) -> list[dict[str, Any]]:
        selector = f"{LABEL_WORKFLOW}={workflow}"
        raw = await self._call(lambda: self._list_pods_sync(namespace, selector))
        pods = [p for p in raw.get("items") or [] if (p.get("metadata") or {}).get("namespace") == namespace]
        if node_id is not None:
            pods = [p for p in pods if ((p["metadata"].get("annotations") or {}).get(ANNOTATION_NODE_ID) == node_id)]
        return pods

    async def kill(self, namespace: str, workflow: str, node_id: str | None = None) -> None:
        """Delete the workflow's (or one node's) Pods; their steps end Failed."""
        for pod in await self._pods_of(namespace, workflow, node_id):
            name = pod["metadata"]["name"]
            waiter = self._waiters.get((namespace, name))
            if waiter is not None and waiter.reason is None:
                waiter.reason = "the step was stopped"
            await self._delete_pod(namespace, name)

    async def read_log(self, namespace: str, workflow: str, node_id: str) -> str:
        pods = await self._pods_of(namespace, workflow, node_id)
        if not pods:
            raise NotFoundError(f"no Pod for node {node_id} of Workflow {namespace}/{workflow}")
        name = pods[0]["metadata"]["name"]
        try:
            response = await self._call(
                lambda: self._core.read_namespaced_pod_log(name, namespace, container=MAIN, _preload_content=False)
            )
        except ApiException as exc:
            raise PodApiError(f"cannot read the log of Pod {namespace}/{name}: {_api_message(exc)}") from None
        return bytes(response.data).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# the wait container: python -m eventbridge.executors.pod wait


def _read_value(path: Path, limit: int | None = None) -> str | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit if limit is not None else -1)
    except OSError:
        return None
    text = data.decode("utf-8", "replace")
    return text[:-1] if text.endswith("\n") else text


def report_outputs(
    api_client: k8s.ApiClient,
    var_dir: Path,
    env: dict[str, str],
    *,
    poll: float = 0.1,
    timeout: float | None = None,
    outage_seconds: float = 60.0,
) -> int:
    """Wait for the main container's exit code in ``var_dir`` and write the WorkflowTaskResult.

    Returns the main container's exit code (-1 if it never wrote one before ``timeout``). The write
    is retried with backoff for up to ``outage_seconds`` while the API server is unreachable or
    answers 429/5xx (and 401/403 just after it was unreachable: a restarting server).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    exit_file = var_dir / "exitcode"
    while not exit_file.exists():
        if deadline is not None and time.monotonic() > deadline:
            return -1
        time.sleep(poll)
    exit_code = int(exit_file.read_text().strip() or "-1")
    names: list[str] = json.loads(env.get("EVENTBRIDGE_OUTPUT_NAMES") or "[]")
    parameters = []
    for index, name in enumerate(names):
        value = _read_value(var_dir / f"output.{index}")
        if value is not None:
            parameters.append({"name": name, "value": value})
    outputs: dict[str, Any] = {"exitCode": str(exit_code), "parameters": parameters}
    result = _read_value(var_dir / "stdout", RESULT_LIMIT)
    if result is not None:
        outputs["result"] = result
    namespace = env["EVENTBRIDGE_NAMESPACE"]
    workflow = env["EVENTBRIDGE_WORKFLOW"]
    metadata: dict[str, Any] = {
        "name": env["EVENTBRIDGE_NODE_ID"],
        "namespace": namespace,
        "labels": {LABEL_WORKFLOW: workflow, LABEL_REPORT_COMPLETED: "true"},
    }
    if env.get("EVENTBRIDGE_WORKFLOW_UID"):
        metadata["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Workflow",
                "name": workflow,
                "uid": env["EVENTBRIDGE_WORKFLOW_UID"],
            }
        ]
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowTaskResult",
        "metadata": metadata,
        "outputs": outputs,
    }
    custom = k8s.CustomObjectsApi(api_client)
    unreachable = False  # a transport failure happened: 401/403 may come from a restarting API server
    give_up_at = time.monotonic() + outage_seconds
    attempt = -1
    while True:
        attempt += 1
        try:
            try:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "workflowtaskresults", body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                current: Any = custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, "workflowtaskresults", metadata["name"]
                )
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                custom.replace_namespaced_custom_object(
                    GROUP, VERSION, namespace, "workflowtaskresults", metadata["name"], body
                )
            return exit_code
        except (ApiException, OSError, urllib3.exceptions.HTTPError) as exc:
            status = getattr(exc, "status", None)
            unreachable = unreachable or not isinstance(exc, ApiException)
            fatal = {404, 422} if unreachable else {401, 403, 404, 422}
            if status in fatal or (attempt >= 7 and time.monotonic() > give_up_at):
                raise
            time.sleep(min(0.2 * 2**attempt, 2.0))


def _wait_main(argv: list[str]) -> int:
    from kubernetes import config as k8s_config

    if argv[:1] != ["wait"]:
        print("usage: python -m eventbridge.executors.pod wait", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    with k8s.ApiClient(configuration) as api_client:
        try:
            report_outputs(api_client, Path(os.environ.get("EVENTBRIDGE_VAR_DIR", VAR_DIR)), dict(os.environ))
        except ApiException as exc:
            print(f"eventbridge wait: cannot report the step's outputs: {_api_message(exc)}", file=sys.stderr)
            return 1
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            print(f"eventbridge wait: cannot report the step's outputs: API server unreachable: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_wait_main(sys.argv[1:]))
