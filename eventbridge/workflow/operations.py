"""Workflow operations with Argo's semantics, done through the Store.

Every function reads the object, changes it and writes it back (re-reading on a ConflictError), so
the HTTP API, the CLI and the sensor's ``argoWorkflow`` trigger (``operation: resume`` ...) can all
call them, with or without a controller running. A running controller sees the change through its
watch (``WorkflowRun.observe``); a stopped one finds it in the stored object when it starts.

* :func:`suspend` / :func:`resume`: ``spec.suspend``; resume also completes active Suspend nodes
  (optionally only those a node field selector matches) and fills their ``valueFrom.supplied``
  output parameters from the values given, else from their defaults.
* :func:`stop` (exit handlers run) / :func:`terminate` (they do not): ``spec.shutdown``. ``stop``
  with a node field selector fails the matching suspend nodes instead, as ``argo stop`` does.
* :func:`retry`: a Failed/Error workflow runs again; failed nodes (and what came after them) are
  removed, their ancestors reset, succeeded nodes kept unless ``restart_successful`` and the
  selector matches them.
* :func:`resubmit`: a new workflow from the same spec; ``memoized`` keeps the succeeded steps.
* :func:`set_node`: phase, message, output parameters of suspend nodes (``argo node set``).
* :func:`submit_from`: a Workflow from a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow
  (``argo submit --from``); :func:`workflow_from_cron` is the conversion the cron scheduler uses.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from eventbridge.errors import (
    AlreadyExistsError,
    ConflictError,
    EventBridgeError,
    InvalidError,
    NotFoundError,
)
from eventbridge.store.base import Object, Store
from eventbridge.workflow.nodes import COMPLETED_LABEL, PHASE_LABEL, Node, node_id, now

WORKFLOW_KIND = "Workflow"
FINISHED = frozenset({"Succeeded", "Failed", "Error"})
EXECUTION_TYPES = frozenset({"Pod", "Container", "Suspend", "Skipped", "Retry", "HTTP", "Plugin"})

LABEL_WORKFLOW_TEMPLATE = "workflows.argoproj.io/workflow-template"
LABEL_CLUSTER_WORKFLOW_TEMPLATE = "workflows.argoproj.io/cluster-workflow-template"
LABEL_CRON_WORKFLOW = "workflows.argoproj.io/cron-workflow"
LABEL_RESUBMITTED_FROM = "workflows.argoproj.io/resubmitted-from-workflow"
ANNOTATION_SCHEDULED_TIME = "workflows.argoproj.io/scheduled-time"
_NOT_CARRIED = frozenset({PHASE_LABEL, COMPLETED_LABEL, "workflows.argoproj.io/creator"})
_SUFFIX = "abcdefghijklmnopqrstuvwxyz0123456789"


# --------------------------------------------------------------------------- field selectors


def parse_field_selector(text: str) -> list[tuple[str, bool, str]]:
    """``a=b,c!=d`` -> [(field, equal?, value)]; ``==`` is accepted for ``=``; InvalidError if bad."""
    terms: list[tuple[str, bool, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        match = re.fullmatch(r"([^=!]+?)\s*(==|=|!=)\s*(.*)", part)
        if match is None:
            raise InvalidError(f"invalid node field selector term {part!r}: use field=value or field!=value")
        terms.append((match.group(1).strip(), match.group(2) != "!=", match.group(3).strip()))
    if not terms:
        raise InvalidError("the node field selector is empty")
    return terms


def node_fields(node: Node) -> dict[str, str]:
    """The fields a node field selector can test (Argo's set)."""
    fields = {
        "displayName": str(node.get("displayName", "")),
        "templateName": str(node.get("templateName", "")),
        "phase": str(node.get("phase", "")),
        "name": str(node.get("name", "")),
        "id": str(node.get("id", "")),
    }
    ref = node.get("templateRef")
    if isinstance(ref, dict):
        fields["templateRef.name"] = str(ref.get("name", ""))
        fields["templateRef.template"] = str(ref.get("template", ""))
        fields["templateName"] = str(ref.get("template", "")) or fields["templateName"]
    for param in (node.get("inputs") or {}).get("parameters") or []:
        fields[f"inputs.parameters.{param.get('name')}.value"] = str(param.get("value", ""))
    return fields


def selector_matches(terms: list[tuple[str, bool, str]], node: Node) -> bool:
    """Whether ``node`` satisfies every term (a missing field is the empty string, as in Kubernetes)."""
    fields = node_fields(node)
    return all((fields.get(name, "") == value) == equal for name, equal, value in terms)


# --------------------------------------------------------------------------- plumbing


async def _modify(
    store: Store, kind: str, namespace: str, name: str, change: Callable[[Object], Object | None]
) -> Object:
    """Read, ``change`` (returns the object to write, or None: nothing to do), write; retry on conflicts."""
    for _attempt in range(20):
        obj = await store.get(kind, namespace, name)
        new = change(copy.deepcopy(obj))
        if new is None:
            return obj
        try:
            return await store.update(new)
        except ConflictError:
            continue
    raise EventBridgeError(f"{kind} {namespace}/{name}: gave up after repeated write conflicts")


def _phase(obj: Object) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def _active_suspend(node: Node) -> bool:
    return node.get("type") == "Suspend" and node.get("phase") == "Running"


def _set_global(status: dict[str, Any], name: str, value: str) -> None:
    outputs = status.setdefault("outputs", {})
    params = outputs.setdefault("parameters", [])
    for param in params:
        if param.get("name") == name:
            param["value"] = value
            return
    params.append({"name": name, "value": value})


def _supply(node: Node, values: Mapping[str, str], status: dict[str, Any], *, defaults: bool) -> None:
    """Fill ``valueFrom.supplied`` output parameters of ``node`` from ``values`` (then defaults).

    InvalidError names a parameter ``values`` does not expect; with ``defaults`` a parameter left
    without a value and without a default is an error too (Argo's resume rule).
    """
    params = (node.get("outputs") or {}).get("parameters") or []
    expected = {p.get("name") for p in params if "supplied" in (p.get("valueFrom") or {})}
    for key in values:
        if key not in expected:
            known = [p.get("name") for p in params]
            if key in known:
                raise InvalidError(f"output parameter {key!r} of node {node.get('displayName')!r} was already set")
            raise InvalidError(f"node {node.get('displayName')!r} is not expecting output parameter {key!r}")
    for param in params:
        vf = param.get("valueFrom") or {}
        if "supplied" not in vf:
            continue
        if param.get("name") in values:
            value: str | None = str(values[param["name"]])
        elif defaults:
            value = vf.get("default")
            if value is None:
                raise InvalidError(
                    f"output parameter {param.get('name')!r} of node {node.get('displayName')!r} has not "
                    "been set and has no default: supply it when resuming"
                )
        else:
            continue
        param["value"] = value
        param.pop("valueFrom", None)
        if param.get("globalName"):
            _set_global(status, str(param["globalName"]), str(value))


# --------------------------------------------------------------------------- suspend / resume


async def suspend(store: Store, namespace: str, name: str) -> Object:
    """Suspend a running workflow (``spec.suspend: true``): no new steps start until it is resumed."""

    def change(obj: Object) -> Object | None:
        if _phase(obj) in FINISHED:
            raise InvalidError(f"cannot suspend workflow {namespace}/{name}: it has already finished")
        spec = obj.setdefault("spec", {})
        if spec.get("suspend") is True:
            return None
        spec["suspend"] = True
        return obj

    return await _modify(store, WORKFLOW_KIND, namespace, name, change)


async def resume(
    store: Store,
    namespace: str,
    name: str,
    *,
    node_field_selector: str | None = None,
    output_parameters: Mapping[str, str] | None = None,
    message: str | None = None,
) -> Object:
    """Resume a workflow: clear ``spec.suspend`` and complete its active Suspend nodes.

    With ``node_field_selector`` only the matching suspend nodes are resumed (the workflow-level
    suspend is left alone, as Argo does) and at least one must match. ``output_parameters`` fills
    the nodes' ``valueFrom.supplied`` outputs; the rest take their ``valueFrom.default``.
    """
    terms = parse_field_selector(node_field_selector) if node_field_selector else None
    values = dict(output_parameters or {})

    def change(obj: Object) -> Object | None:
        if _phase(obj) in FINISHED:
            raise InvalidError(f"cannot resume workflow {namespace}/{name}: it has already finished")
        updated = False
        spec = obj.setdefault("spec", {})
        if terms is None and spec.get("suspend"):
            spec.pop("suspend", None)
            updated = True
        status = obj.setdefault("status", {})
        matched = 0
        for node in (status.get("nodes") or {}).values():
            if not _active_suspend(node) or (terms is not None and not selector_matches(terms, node)):
                continue
            matched += 1
            _supply(node, values, status, defaults=True)
            node["phase"] = "Succeeded"
            node["finishedAt"] = now()
            if message:
                node["message"] = message
            updated = True
        if terms is not None and not matched:
            raise InvalidError(f"no active suspend node of {namespace}/{name} matches {node_field_selector!r}")
        if values and not matched:
            raise InvalidError(f"workflow {namespace}/{name} has no active suspend node to take output parameters")
        return obj if updated else None

    return await _modify(store, WORKFLOW_KIND, namespace, name, change)


async def set_node(
    store: Store,
    namespace: str,
    name: str,
    node_field_selector: str,
    *,
    phase: str | None = None,
    message: str | None = None,
    output_parameters: Mapping[str, str] | None = None,
) -> Object:
    """Set phase, message and/or supplied output parameters of the matching active suspend nodes.

    Like ``argo node set``: only suspend nodes are targets, and a parameter must be declared with
    ``valueFrom.supplied`` and not yet set.
    """
    terms = parse_field_selector(node_field_selector)
    if phase is not None and phase not in ("Succeeded", "Failed", "Error", "Running"):
        raise InvalidError(f"phase {phase!r}: use Succeeded, Failed or Error")
    values = dict(output_parameters or {})

    def change(obj: Object) -> Object | None:
        if _phase(obj) in FINISHED:
            raise InvalidError(f"workflow {namespace}/{name} has already finished")
        status = obj.setdefault("status", {})
        matched = 0
        for node in (status.get("nodes") or {}).values():
            if not _active_suspend(node) or not selector_matches(terms, node):
                continue
            matched += 1
            if values:
                _supply(node, values, status, defaults=False)
            if message:
                node["message"] = message
            if phase is not None and phase != "Running":
                if phase == "Succeeded":
                    _supply(node, {}, status, defaults=True)
                node["phase"] = phase
                node["finishedAt"] = now()
        if not matched:
            raise InvalidError(
                f"set only targets active suspend nodes: none of {namespace}/{name} matches {node_field_selector!r}"
            )
        return obj

    return await _modify(store, WORKFLOW_KIND, namespace, name, change)


# --------------------------------------------------------------------------- stop / terminate


async def stop(
    store: Store,
    namespace: str,
    name: str,
    *,
    node_field_selector: str | None = None,
    message: str | None = None,
) -> Object:
    """Stop a workflow: running steps are killed, no new ones start, exit handlers still run.

    With ``node_field_selector`` only the matching active suspend nodes are failed (with ``message``).
    """
    if node_field_selector:
        return await set_node(store, namespace, name, node_field_selector, phase="Failed", message=message or "Stopped")
    return await _shutdown(store, namespace, name, "Stop")


async def terminate(store: Store, namespace: str, name: str) -> Object:
    """Terminate a workflow: running steps are killed and exit handlers do not run."""
    return await _shutdown(store, namespace, name, "Terminate")


async def _shutdown(store: Store, namespace: str, name: str, strategy: str) -> Object:
    def change(obj: Object) -> Object | None:
        if _phase(obj) in FINISHED:
            raise InvalidError(f"cannot {strategy.lower()} workflow {namespace}/{name}: it has already finished")
        spec = obj.setdefault("spec", {})
        if spec.get("shutdown"):
            if spec["shutdown"] == strategy:
                return None
            raise InvalidError(f"workflow {namespace}/{name} is already shutting down ({spec['shutdown']})")
        spec["shutdown"] = strategy
        return obj

    return await _modify(store, WORKFLOW_KIND, namespace, name, change)


# --------------------------------------------------------------------------- retry


def _children(nodes: dict[str, Node]) -> dict[str, list[str]]:
    return {nid: [c for c in node.get("children") or [] if c in nodes] for nid, node in nodes.items()}


def _has_succeeded_descendant(nid: str, children: dict[str, list[str]], nodes: dict[str, Node], skip: set[str]) -> bool:
    seen: set[str] = set()
    todo = list(children.get(nid, []))
    while todo:
        child = todo.pop()
        if child in seen:
            continue
        seen.add(child)
        if child not in skip and nodes[child].get("phase") == "Succeeded":
            return True
        todo.extend(children.get(child, []))
    return False


def retry_status(
    name: str,
    status: dict[str, Any],
    *,
    restart_successful: bool = False,
    node_field_selector: str | None = None,
) -> dict[str, Any]:
    """The status a retried workflow starts from (a pure function; see :func:`retry`)."""
    nodes: dict[str, Node] = copy.deepcopy(status.get("nodes") or {})
    children = _children(nodes)
    selected: set[str] = set()
    if restart_successful and node_field_selector:
        terms = parse_field_selector(node_field_selector)
        selected = {nid for nid, node in nodes.items() if selector_matches(terms, node)}
    retry_parent: dict[str, str] = {}
    for nid, node in nodes.items():
        if node.get("type") == "Retry":
            for child in children.get(nid, []):
                retry_parent[child] = nid
    roots = set(selected)
    for nid, node in nodes.items():
        if node.get("phase") in ("Failed", "Error") and node.get("type") in EXECUTION_TYPES:
            target = retry_parent.get(nid, nid)
            if not _has_succeeded_descendant(target, children, nodes, selected):
                roots.add(target)
    # Delete the roots, everything after them (children links) and everything inside them (names).
    delete: set[str] = set()
    todo = list(roots)
    while todo:
        nid = todo.pop()
        if nid in delete or nid not in nodes:
            continue
        delete.add(nid)
        todo.extend(children.get(nid, []))
    prefixes = tuple(f"{nodes[nid].get('name', '')}{sep}" for nid in delete for sep in (".", "(", "["))
    exit_prefix = f"{name}.onExit"
    for nid, node in nodes.items():
        node_name = str(node.get("name", ""))
        if (prefixes and node_name.startswith(prefixes)) or node_name.startswith(exit_prefix):
            delete.add(nid)
    # Reset the ancestors of deleted nodes (their boundary chain and step groups) so they run again.
    reset: set[str] = set()
    group_of = {
        child: nid
        for nid, node in nodes.items()
        if node.get("type") in ("StepGroup", "TaskGroup")
        for child in children.get(nid, [])
    }
    for nid in delete:
        current: str | None = nid
        while current is not None:
            walked = nodes.get(current)
            if walked is None:
                break
            parent = group_of.get(current)
            if parent is not None and parent not in delete:
                reset.add(parent)
            boundary = walked.get("boundaryID")
            if boundary in nodes and boundary not in delete:
                reset.add(boundary)
            current = boundary if boundary in nodes else None
    for nid, node in nodes.items():
        if nid not in delete and node.get("phase") in ("Failed", "Error"):
            reset.add(nid)
    kept: dict[str, Node] = {}
    for nid, node in nodes.items():
        if nid in delete:
            continue
        if nid in reset and node.get("phase") != "Skipped":
            node["phase"] = "Running"
            node.pop("finishedAt", None)
            node.pop("message", None)
        node["children"] = [c for c in node.get("children") or [] if c not in delete]
        if not node["children"]:
            node.pop("children")
        if "outboundNodes" in node:
            node["outboundNodes"] = [c for c in node["outboundNodes"] if c not in delete]
        kept[nid] = node
    new_status = {k: v for k, v in status.items() if k not in ("nodes", "finishedAt", "message", "phase")}
    new_status["nodes"] = kept
    new_status["phase"] = "Running"
    new_status["startedAt"] = now()
    return new_status


async def retry(
    store: Store,
    namespace: str,
    name: str,
    *,
    restart_successful: bool = False,
    node_field_selector: str | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Object:
    """Run a Failed/Error workflow again, re-running only what failed (``argo retry``).

    A Succeeded workflow can be retried only with ``restart_successful`` and a selector (the
    selected succeeded nodes run again). ``parameters`` override workflow arguments.
    """

    def change(obj: Object) -> Object | None:
        phase = _phase(obj)
        if phase == "Succeeded":
            if not (restart_successful and node_field_selector):
                raise InvalidError("to retry a succeeded workflow, set restart_successful and a node field selector")
        elif phase not in ("Failed", "Error"):
            raise InvalidError(f"cannot retry workflow {namespace}/{name} in phase {phase or 'Pending'!r}")
        status = retry_status(
            name,
            obj.get("status") or {},
            restart_successful=restart_successful,
            node_field_selector=node_field_selector,
        )
        obj["status"] = status
        spec = obj.setdefault("spec", {})
        spec.pop("shutdown", None)
        if parameters:
            _override_parameters(spec, parameters)
        labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        labels[PHASE_LABEL] = "Running"
        labels.pop(COMPLETED_LABEL, None)
        return obj

    return await _modify(store, WORKFLOW_KIND, namespace, name, change)


def _override_parameters(spec: dict[str, Any], parameters: Mapping[str, str]) -> None:
    params = spec.setdefault("arguments", {}).setdefault("parameters", [])
    by_name = {p.get("name"): p for p in params}
    for key, value in parameters.items():
        if key in by_name:
            by_name[key]["value"] = str(value)
            by_name[key].pop("valueFrom", None)
        else:
            params.append({"name": key, "value": str(value)})


# --------------------------------------------------------------------------- resubmit


def _rename_nodes(old: str, new: str, nodes: dict[str, Node]) -> dict[str, Node]:
    """The memoized copy of ``old``'s nodes for workflow ``new`` (Argo's resubmit --memoized rules)."""

    def rename(node_name: str) -> str:
        return new + node_name[len(old) :] if node_name.startswith(old) else node_name

    def convert(nid: str) -> str:
        node = nodes.get(nid)
        return node_id(new, rename(str(node.get("name", "")))) if node is not None else nid

    children = _children(nodes)
    result: dict[str, Node] = {}
    stamp = now()
    for nid, node in nodes.items():
        name = str(node.get("name", ""))
        if name.startswith(f"{old}.onExit"):
            continue
        fresh = copy.deepcopy(node)
        fresh["name"] = rename(name)
        fresh["id"] = node_id(new, fresh["name"])
        if node.get("boundaryID"):
            fresh["boundaryID"] = convert(node["boundaryID"])
        fresh["children"] = [convert(c) for c in node.get("children") or []]
        if not fresh["children"]:
            fresh.pop("children")
        if "outboundNodes" in node:
            fresh["outboundNodes"] = [convert(c) for c in node["outboundNodes"]]
        failed = node.get("phase") in ("Failed", "Error")
        if node.get("type") == "Pod" and not failed:
            fresh["phase"] = "Skipped"
            fresh["type"] = "Skipped"
            fresh["message"] = f"original pod: {nid}"
            fresh["startedAt"] = fresh["finishedAt"] = stamp
        elif node.get("type") == "Skipped" and not _has_succeeded_descendant(nid, children, nodes, set()):
            continue
        else:
            fresh["phase"] = "Pending"
            fresh.pop("message", None)
            fresh.pop("finishedAt", None)
            fresh["startedAt"] = stamp
        result[fresh["id"]] = fresh
    return result


async def resubmit(
    store: Store,
    namespace: str,
    name: str,
    *,
    memoized: bool = False,
    parameters: Mapping[str, str] | None = None,
) -> Object:
    """Create a new workflow from ``name``'s spec (``argo resubmit``); returns the created object.

    ``memoized`` (only for Failed/Error workflows) carries the succeeded steps over, so only what
    failed runs again. Labels and annotations are carried over, plus
    ``workflows.argoproj.io/resubmitted-from-workflow``.
    """
    old = await store.get(WORKFLOW_KIND, namespace, name)
    meta = old.get("metadata") or {}
    if memoized and _phase(old) not in ("Failed", "Error"):
        raise InvalidError("a workflow must be Failed or Error to resubmit it memoized")
    spec = copy.deepcopy(old.get("spec") or {})
    spec.pop("shutdown", None)
    if spec.get("activeDeadlineSeconds") == 0:
        spec.pop("activeDeadlineSeconds")
    if parameters:
        _override_parameters(spec, parameters)
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _NOT_CARRIED}
    labels[LABEL_RESUBMITTED_FROM] = name
    new_meta: dict[str, Any] = {"namespace": namespace, "labels": labels}
    if meta.get("annotations"):
        new_meta["annotations"] = dict(meta["annotations"])
    prefix = meta.get("generateName") or f"{name}-"
    new: Object = {
        "apiVersion": old.get("apiVersion", "argoproj.io/v1alpha1"),
        "kind": WORKFLOW_KIND,
        "metadata": new_meta,
        "spec": spec,
    }
    if not memoized:
        new_meta["generateName"] = prefix
        return await store.create(new)
    old_status = old.get("status") or {}
    for _attempt in range(10):
        new_name = prefix + "".join(secrets.choice(_SUFFIX) for _ in range(5))
        new_meta["name"] = new_name
        status: dict[str, Any] = {"nodes": _rename_nodes(name, new_name, old_status.get("nodes") or {})}
        if "storedWorkflowTemplateSpec" in old_status:
            status["storedWorkflowTemplateSpec"] = old_status["storedWorkflowTemplateSpec"]
        new["status"] = status
        try:
            return await store.create(new)
        except AlreadyExistsError:
            continue
    raise EventBridgeError(f"could not find a free name for a resubmission of {namespace}/{name}")


# --------------------------------------------------------------------------- submit --from


def _base_metadata(namespace: str, labels: Mapping[str, str] | None) -> dict[str, Any]:
    return {"namespace": namespace, "labels": dict(labels or {})}


def _arguments(params: Mapping[str, str] | None) -> dict[str, Any]:
    return {"parameters": [{"name": k, "value": str(v)} for k, v in (params or {}).items()]}


def workflow_from_cron(
    cron: Object,
    *,
    name: str | None = None,
    scheduled_time: datetime | None = None,
    params: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Object:
    """The Workflow a CronWorkflow creates: its ``workflowSpec``, its ``workflowMetadata`` labels and
    annotations, the ``cron-workflow`` label, the scheduled time annotation and an owner reference.
    Without ``name`` the workflow gets ``generateName: <cron>-``."""
    meta = cron.get("metadata") or {}
    cron_name = str(meta.get("name", ""))
    namespace = str(meta.get("namespace") or "default")
    cron_spec = cron.get("spec") or {}
    wf_meta = _base_metadata(namespace, labels)
    if name:
        wf_meta["name"] = name
    else:
        wf_meta["generateName"] = f"{cron_name}-"
    extra = cron_spec.get("workflowMetadata") or {}
    wf_meta["labels"].update({k: str(v) for k, v in (extra.get("labels") or {}).items()})
    wf_meta["labels"][LABEL_CRON_WORKFLOW] = cron_name
    annotations = {k: str(v) for k, v in (extra.get("annotations") or {}).items()}
    if scheduled_time is not None:
        annotations[ANNOTATION_SCHEDULED_TIME] = scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if annotations:
        wf_meta["annotations"] = annotations
    if meta.get("uid"):
        wf_meta["ownerReferences"] = [
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "CronWorkflow",
                "name": cron_name,
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec = copy.deepcopy(cron_spec.get("workflowSpec") or {})
    if params:
        _override_parameters(spec, params)
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": WORKFLOW_KIND, "metadata": wf_meta, "spec": spec}


async def submit_from(
    store: Store,
    kind: str,
    namespace: str,
    name: str,
    params: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Object:
    """Create a Workflow from a WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow.

    Templates are referenced (``workflowTemplateRef``, so the controller reads the template when the
    workflow starts); a CronWorkflow's ``workflowSpec`` is copied. ``params`` become workflow
    arguments, ``labels`` are added. Returns the created workflow. NotFoundError if the source
    does not exist; InvalidError for another kind.
    """
    normalized = {
        "workflowtemplate": "WorkflowTemplate",
        "wftmpl": "WorkflowTemplate",
        "clusterworkflowtemplate": "ClusterWorkflowTemplate",
        "cwftmpl": "ClusterWorkflowTemplate",
        "cronworkflow": "CronWorkflow",
        "cronwf": "CronWorkflow",
        "cwf": "CronWorkflow",
    }
    real = normalized.get(kind.lower())
    if real is None:
        raise InvalidError(
            f"cannot submit from a {kind!r}: use WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow"
        )
    if real == "CronWorkflow":
        cron = await store.get("CronWorkflow", namespace, name)
        workflow = workflow_from_cron(cron, params=params, labels=labels)
        return await store.create(workflow)
    cluster = real == "ClusterWorkflowTemplate"
    if cluster:
        found = [o for o in await store.list(real) if (o.get("metadata") or {}).get("name") == name]
        if not found:
            raise NotFoundError(f"ClusterWorkflowTemplate {name!r} not found")
    else:
        await store.get(real, namespace, name)
    meta = _base_metadata(namespace, labels)
    meta["generateName"] = f"{name}-"
    meta["labels"][LABEL_CLUSTER_WORKFLOW_TEMPLATE if cluster else LABEL_WORKFLOW_TEMPLATE] = name
    ref: dict[str, Any] = {"name": name}
    if cluster:
        ref["clusterScope"] = True
    spec: dict[str, Any] = {"workflowTemplateRef": ref}
    if params:
        spec["arguments"] = _arguments(params)
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": WORKFLOW_KIND, "metadata": meta, "spec": spec}
    return await store.create(workflow)
