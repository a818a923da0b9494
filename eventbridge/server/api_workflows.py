"""argo-server's WorkflowService and ArchivedWorkflowService over the Store.

Paths and JSON shapes follow ``pkg/apiclient/workflow/workflow.proto``: request bodies are the
request messages (``{"namespace", "workflow", "serverDryRun"}``, ``{"restartSuccessful",
"nodeFieldSelector", "parameters": ["k=v"]}``...), answers the Workflow object. Unknown body fields
are ignored, as argo-server's JSON decoding does. The archive is the store itself: finished
workflows, addressed by uid.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.expr.regex import UserPattern, compile_user_regex
from eventbridge.models.kinds import parse_manifest
from eventbridge.server.context import (
    CLOSING,
    allowed_namespaces,
    check_name,
    context,
    json_body,
    name_param,
    namespace_param,
    query_bool,
    query_int,
    uid_param,
)
from eventbridge.server.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    projection,
)
from eventbridge.server.streams import ResultStream
from eventbridge.store.base import Object, Store
from eventbridge.workflow import operations as ops

FINISHED = frozenset({"Succeeded", "Failed", "Error"})
WORKFLOW = "Workflow"


# --------------------------------------------------------------------------- helpers


def phase_of(obj: Object) -> str:
    return str((obj.get("status") or {}).get("phase") or "")


def _sort_key(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))


ListFilter = Callable[[Object], bool]


def list_filter(request: web.Request, field_selector: str | None = None) -> ListFilter:
    """The object filter of ``listOptions.labelSelector`` / ``listOptions.fieldSelector`` (or
    ``field_selector`` instead of the latter)."""
    labels = parse_label_selector(request.query.get("listOptions.labelSelector", ""))
    if field_selector is None:
        field_selector = request.query.get("listOptions.fieldSelector", "")
    fields = parse_field_selector(field_selector)
    allowed = allowed_namespaces(request)

    def keep(obj: Object) -> bool:
        meta = obj.get("metadata") or {}
        if allowed is not None and meta.get("namespace") not in allowed:
            return False
        return labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

    return keep


async def list_objects(request: web.Request, kind: str, namespace: str | None) -> list[Object]:
    """Objects of ``kind`` passing the list options, newest first."""
    keep = list_filter(request)
    items = [o for o in await context(request).store.list(kind, namespace) if keep(o)]
    items.sort(key=_sort_key, reverse=True)
    return items


def paged_response(request: web.Request, items: list[Object]) -> web.Response:
    """Apply ``listOptions.limit``/``continue`` and ``fields``; the list answer."""
    limit = query_int(request, "listOptions.limit", 0, maximum=1_000_000)
    token = request.query.get("listOptions.continue", "")
    start = 0
    if token:
        if not (token.isascii() and token.isdigit()):
            raise InvalidError(f"invalid listOptions.continue {token!r}")
        start = int(token)
    page = items[start : start + limit] if limit else items[start:]
    next_token = str(start + limit) if limit and start + limit < len(items) else ""
    document: dict[str, Any] = {"metadata": {}, "items": page}
    if next_token:
        document["metadata"]["continue"] = next_token
    fields = request.query.get("fields", "")
    if fields:
        document = projection(fields)(document)
    return web.json_response(document)


def object_response(request: web.Request, obj: Object) -> web.Response:
    fields = request.query.get("fields", "")
    return web.json_response(projection(fields)(obj) if fields else obj)


def key_values(items: Any, what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` (or ``"a=1,b=2"``) -> ``{"a": "1", "b": "2"}``."""
    if items is None or items == "":
        return {}
    if isinstance(items, str):
        items = [p for p in items.split(",") if p.strip()]
    if not isinstance(items, list):
        raise InvalidError(f"{what} must be a list of key=value strings")
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise InvalidError(f"{what}: {item!r} is not key=value")
        out[key.strip()] = value
    return out


def without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` object member removed, recursively.

    Go clients (the argo CLI) send unset fields as ``null`` (``"creationTimestamp": null``,
    ``"status": {"startedAt": null}``); in Kubernetes objects a null member means "not set".
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def validated(obj: Any, kind: str, namespace: str | None) -> Object:
    """The object of a create/lint body, with kind, apiVersion and namespace filled and checked
    (``null`` members dropped, an empty ``status`` too)."""
    if not isinstance(obj, dict):
        raise InvalidError(f"request body must hold the {kind} object")
    cleaned: Object = dict(without_nulls(obj))
    if cleaned.get("status") == {}:
        del cleaned["status"]
    cleaned.setdefault("apiVersion", "argoproj.io/v1alpha1")
    cleaned.setdefault("kind", kind)
    if cleaned["kind"] != kind:
        raise InvalidError(f"kind must be {kind}, not {cleaned['kind']!r}")
    metadata = cleaned.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidError("metadata must be an object")
    if namespace is not None:
        if metadata.get("namespace") not in (None, "", namespace):
            raise InvalidError(
                f"metadata.namespace {metadata['namespace']!r} does not match the namespace in the path {namespace!r}"
            )
        metadata["namespace"] = namespace
    if not metadata.get("name") and not metadata.get("generateName"):
        raise InvalidError("metadata.name or metadata.generateName is required")
    manifest = parse_manifest(cleaned)
    problems = [f"{f.path}: {f.message}" for f in manifest.check() if f.severity == "error"]
    if problems:
        raise InvalidError("; ".join(problems))
    return cleaned


def dry_run_answer(obj: Object) -> web.Response:
    """What a dry-run create answers: the checked object, named as a create would name it
    (``generateName`` plus 5 random characters), so ``argo submit --server-dry-run -o name`` works."""
    metadata = obj.setdefault("metadata", {})
    if not metadata.get("name") and metadata.get("generateName"):
        suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        metadata["name"] = f"{metadata['generateName']}{suffix}"
    return web.json_response(obj)


def dry_run(body: Mapping[str, Any]) -> bool:
    options = body.get("createOptions") or {}
    return bool(body.get("serverDryRun")) or (isinstance(options, dict) and bool(options.get("dryRun")))


# --------------------------------------------------------------------------- CRUD


LATEST = "@latest"


async def workflow_by_name(request: web.Request, namespace: str, name: str) -> Object:
    """The workflow ``name`` in ``namespace``; ``@latest`` (argo-server's alias) is the newest one."""
    store = context(request).store
    if name != LATEST:
        return await store.get(WORKFLOW, namespace, check_name(name))
    items = await store.list(WORKFLOW, namespace)
    if not items:
        raise NotFoundError(f"no workflows found in namespace {namespace!r}")
    return max(items, key=_sort_key)


async def workflow_param(request: web.Request) -> tuple[str, str]:
    """``(namespace, name)`` of the path, with ``@latest`` resolved to the newest workflow's name."""
    namespace = name_param(request, "namespace")
    name = request.match_info["name"]
    if name == LATEST:
        name = str((await workflow_by_name(request, namespace, name))["metadata"]["name"])
    return namespace, check_name(name)


async def list_workflows(request: web.Request) -> web.Response:
    items = await list_objects(request, WORKFLOW, namespace_param(request))
    return paged_response(request, items)


async def get_workflow(request: web.Request) -> web.Response:
    obj = await workflow_by_name(request, name_param(request, "namespace"), request.match_info["name"])
    return object_response(request, obj)


async def create_workflow(request: web.Request) -> web.Response:
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    workflow = validated(body.get("workflow"), WORKFLOW, namespace)
    if dry_run(body):
        return dry_run_answer(workflow)
    return web.json_response(await context(request).store.create(workflow))


async def lint_workflow(request: web.Request) -> web.Response:
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    return web.json_response(validated(body.get("workflow"), WORKFLOW, namespace))


async def delete_workflow(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = await workflow_param(request)
    await ctx.executor.kill(namespace, name)
    await ctx.store.delete(WORKFLOW, namespace, name)
    return web.json_response({})


async def submit_workflow(request: web.Request) -> web.Response:
    """``argo submit --from kind/name``: a Workflow from a (Cluster)WorkflowTemplate or CronWorkflow."""
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    kind = str(body.get("resourceKind") or "")
    name = str(body.get("resourceName") or "")
    if not kind or not name:
        raise InvalidError("resourceKind and resourceName are required")
    options = body.get("submitOptions") or {}
    if not isinstance(options, dict):
        raise InvalidError("submitOptions must be an object")
    params = key_values(options.get("parameters"), "submitOptions.parameters")
    labels = key_values(options.get("labels"), "submitOptions.labels")
    created = await ops.submit_from(context(request).store, kind, namespace, name, params, labels)
    return web.json_response(created)


# --------------------------------------------------------------------------- actions


def _selector(body: Mapping[str, Any]) -> str | None:
    value = body.get("nodeFieldSelector")
    return str(value) if value else None


async def _action(request: web.Request) -> tuple[Store, str, str, dict[str, Any]]:
    namespace, name = await workflow_param(request)
    return context(request).store, namespace, name, await json_body(request)


async def suspend_workflow(request: web.Request) -> web.Response:
    store, namespace, name, _ = await _action(request)
    return web.json_response(await ops.suspend(store, namespace, name))


async def resume_workflow(request: web.Request) -> web.Response:
    store, namespace, name, body = await _action(request)
    outputs = _output_parameters(body.get("outputParameters"))
    message = str(body["message"]) if body.get("message") else None
    result = await ops.resume(
        store, namespace, name, node_field_selector=_selector(body), output_parameters=outputs, message=message
    )
    return web.json_response(result)


async def stop_workflow(request: web.Request) -> web.Response:
    store, namespace, name, body = await _action(request)
    message = str(body["message"]) if body.get("message") else None
    return web.json_response(
        await ops.stop(store, namespace, name, node_field_selector=_selector(body), message=message)
    )


async def terminate_workflow(request: web.Request) -> web.Response:
    store, namespace, name, _ = await _action(request)
    return web.json_response(await ops.terminate(store, namespace, name))


async def retry_workflow(request: web.Request) -> web.Response:
    store, namespace, name, body = await _action(request)
    result = await ops.retry(
        store,
        namespace,
        name,
        restart_successful=bool(body.get("restartSuccessful")),
        node_field_selector=_selector(body),
        parameters=key_values(body.get("parameters"), "parameters"),
    )
    return web.json_response(result)


async def resubmit_workflow(request: web.Request) -> web.Response:
    store, namespace, name, body = await _action(request)
    result = await ops.resubmit(
        store,
        namespace,
        name,
        memoized=bool(body.get("memoized")),
        parameters=key_values(body.get("parameters"), "parameters"),
    )
    return web.json_response(result)


def _output_parameters(raw: Any) -> dict[str, str]:
    """``outputParameters`` is a JSON object, usually sent as a string (argo-server's proto field)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidError(f"outputParameters is not a JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidError("outputParameters must be a JSON object of name: value")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


async def set_workflow(request: web.Request) -> web.Response:
    store, namespace, name, body = await _action(request)
    selector = _selector(body)
    if not selector:
        raise InvalidError("nodeFieldSelector is required")
    result = await ops.set_node(
        store,
        namespace,
        name,
        selector,
        phase=str(body["phase"]) if body.get("phase") else None,
        message=str(body["message"]) if body.get("message") else None,
        output_parameters=_output_parameters(body.get("outputParameters")),
    )
    return web.json_response(result)


# --------------------------------------------------------------------------- logs


def pod_nodes(workflow: Object) -> list[dict[str, Any]]:
    """The nodes that ran a process, in start order."""
    nodes = ((workflow.get("status") or {}).get("nodes") or {}).values()
    return sorted(
        (n for n in nodes if n.get("type") == "Pod"),
        key=lambda n: (n.get("startedAt") or "", n.get("id", "")),
    )


_MAX_POD_PREFIX = 253 - 10 - 1  # Kubernetes name length, less argo's hash suffix and its dash


def _fnv32a(text: str) -> int:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow_name: str, node: Mapping[str, Any]) -> str:
    """The pod name argo gives a step (its "v2" names: ``<workflow>-<template>-<fnv32a(node name)>``).

    The argo CLI computes the same name for ``argo get``'s PODNAME column, so ``argo logs WF POD``
    works with what ``argo get`` prints. A ``podName`` the controller recorded wins.
    """
    if node.get("podName"):
        return str(node["podName"])
    node_name = str(node.get("name") or node.get("id") or "")
    if node_name == workflow_name:
        return workflow_name
    ref = node.get("templateRef")
    template = str(ref.get("template") or "") if isinstance(ref, Mapping) else str(node.get("templateName") or "")
    prefix = f"{workflow_name}-{template}" if template else workflow_name
    return f"{prefix[:_MAX_POD_PREFIX]}-{_fnv32a(node_name)}"


class _LogCursor:
    """What was already sent of one node's log."""

    def __init__(self) -> None:
        self.sent = 0
        self.started = False


def _grep(request: web.Request) -> UserPattern | None:
    text = request.query.get("grep", "")
    if not text:
        return None
    try:
        return compile_user_regex(text)  # a caller's pattern: RE2, linear time
    except re.error as exc:
        raise InvalidError(f"grep is not a valid regular expression: {exc}") from None


async def workflow_logs(request: web.Request) -> web.StreamResponse:
    """Logs of the workflow's steps: ``{"result": {"content", "podName"}}`` per line.

    ``podName`` (query or path) picks one step (argo's pod name, see :func:`pod_name`, or the node
    id); ``logOptions.follow=true``
    keeps streaming until the workflow has finished; ``logOptions.tailLines`` and ``grep`` filter.
    """
    ctx = context(request)
    namespace, name = await workflow_param(request)
    wanted = request.match_info.get("podName") or request.query.get("podName", "")
    follow = query_bool(request, "logOptions.follow")
    tail = query_int(request, "logOptions.tailLines", 0, maximum=10_000_000)
    pattern = _grep(request)
    closing = request.app[CLOSING]
    workflow = await ctx.store.get(WORKFLOW, namespace, name)
    stream = ResultStream(request)
    await stream.prepare()
    cursors: dict[str, _LogCursor] = {}
    while not stream.closed:
        finished = phase_of(workflow) in FINISHED
        for node in pod_nodes(workflow):
            pod = pod_name(name, node)
            if wanted and wanted not in (pod, node["id"]):
                continue
            cursor = cursors.setdefault(node["id"], _LogCursor())
            text = await ctx.executor.read_log(namespace, name, node["id"])
            chunk = text[cursor.sent :]
            done = finished or node.get("phase") in FINISHED
            if not done and "\n" in chunk:
                chunk = chunk[: chunk.rindex("\n") + 1]
            elif not done:
                chunk = ""
            cursor.sent += len(chunk)
            lines = chunk.splitlines()
            if tail and not cursor.started:
                lines = lines[-tail:]
            cursor.started = cursor.started or bool(chunk)
            for line in lines:
                if pattern is not None and not pattern.search(line):
                    continue
                if not await stream.send({"content": line, "podName": pod}):
                    break
        if not follow or finished or closing.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), ctx.log_poll_seconds)
        try:
            workflow = await ctx.store.get(WORKFLOW, namespace, name)
        except NotFoundError:
            break
    return await stream.finish()


# --------------------------------------------------------------------------- watch


async def watch_workflows(request: web.Request) -> web.StreamResponse:
    """Server-sent events ``{"result": {"type": "ADDED|MODIFIED|DELETED", "object": {...}}}``.

    Objects that exist are sent first as ADDED (unless ``listOptions.resourceVersion`` names a
    version other than ``0``), then every change, until the client goes away. As in argo-server, a
    ``metadata.name=X`` field selector (``argo watch``/``wait``/``submit --watch``) must name an
    existing workflow (404 otherwise, before the stream starts) and may be ``@latest``.
    """
    ctx = context(request)
    namespace = namespace_param(request)
    keep = list_filter(request, await _watched_name_selector(request, namespace))
    fields = request.query.get("fields", "")
    project = projection(fields) if fields else None
    changes = ctx.store.watch(WORKFLOW, namespace)
    stream = ResultStream(request)
    try:
        await stream.prepare()
        version = request.query.get("listOptions.resourceVersion", "")

        async def send(kind: str, obj: Object) -> bool:
            document = {"result": {"type": kind, "object": obj}}
            return await stream.send_raw(project(document) if project else document)

        if version in ("", "0"):
            for obj in sorted((o for o in await ctx.store.list(WORKFLOW, namespace) if keep(o)), key=_sort_key):
                if not await send("ADDED", obj):
                    break
        pending: asyncio.Future[Any] | None = None
        closing = asyncio.ensure_future(request.app[CLOSING].wait())
        try:
            while not stream.closed:
                if pending is None:
                    pending = asyncio.ensure_future(anext(changes))
                done, _ = await asyncio.wait(
                    {pending, closing}, timeout=ctx.heartbeat_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                if closing in done:
                    break
                if not done:
                    await stream.heartbeat()
                    continue
                change = pending.result()
                pending = None
                if keep(change.object):
                    await send(change.type, change.object)
        finally:
            for future in (pending, closing):
                if future is not None and not future.done():
                    future.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await future
    finally:
        aclose = getattr(changes, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):
                await aclose()
    return await stream.finish()


async def _watched_name_selector(request: web.Request, namespace: str | None) -> str:
    """The field selector of a watch, with a ``metadata.name`` term checked and its alias resolved."""
    selector = request.query.get("listOptions.fieldSelector", "")
    terms = [t.strip() for t in selector.split(",") if t.strip()]
    out: list[str] = []
    for term in terms:
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!") and namespace is not None:
            value = value.lstrip("=").strip()
            found = await workflow_by_name(request, namespace, value)
            term = f"metadata.name={found['metadata']['name']}"
        out.append(term)
    return ",".join(out)


# --------------------------------------------------------------------------- archive


async def _finished(request: web.Request) -> list[Object]:
    namespace = request.query.get("namespace") or None
    items = await list_objects(request, WORKFLOW, namespace)
    prefix = request.query.get("namePrefix", "")
    return [o for o in items if phase_of(o) in FINISHED and str(o["metadata"].get("name", "")).startswith(prefix)]


async def _by_uid(request: web.Request) -> Object:
    uid = uid_param(request)
    for obj in await _finished(request):
        if obj["metadata"].get("uid") == uid:
            return obj
    raise NotFoundError(f"archived workflow {uid!r} not found")


async def list_archived(request: web.Request) -> web.Response:
    return paged_response(request, await _finished(request))


async def get_archived(request: web.Request) -> web.Response:
    return web.json_response(await _by_uid(request))


async def delete_archived(request: web.Request) -> web.Response:
    obj = await _by_uid(request)
    meta = obj["metadata"]
    await context(request).store.delete(WORKFLOW, meta["namespace"], meta["name"])
    return web.json_response({})


async def retry_archived(request: web.Request) -> web.Response:
    obj = await _by_uid(request)
    body = await json_body(request)
    meta = obj["metadata"]
    result = await ops.retry(
        context(request).store,
        meta["namespace"],
        meta["name"],
        restart_successful=bool(body.get("restartSuccessful")),
        node_field_selector=_selector(body),
        parameters=key_values(body.get("parameters"), "parameters"),
    )
    return web.json_response(result)


async def resubmit_archived(request: web.Request) -> web.Response:
    obj = await _by_uid(request)
    body = await json_body(request)
    meta = obj["metadata"]
    result = await ops.resubmit(
        context(request).store,
        meta["namespace"],
        meta["name"],
        memoized=bool(body.get("memoized")),
        parameters=key_values(body.get("parameters"), "parameters"),
    )
    return web.json_response(result)


async def archived_label_keys(request: web.Request) -> web.Response:
    keys = sorted({k for o in await _finished(request) for k in (o["metadata"].get("labels") or {})})
    return web.json_response({"items": keys})


async def archived_label_values(request: web.Request) -> web.Response:
    key = request.query.get("listOptions.labelSelector", "").strip()
    if not key:
        raise InvalidError("listOptions.labelSelector must name the label key")
    values = sorted(
        {
            str((o["metadata"].get("labels") or {})[key])
            for o in await _finished(request)
            if key in (o["metadata"].get("labels") or {})
        }
    )
    return web.json_response({"items": values})


def add_routes(router: web.UrlDispatcher) -> None:
    r = router
    for path in ("/api/v1/workflows", "/api/v1/workflows/", "/api/v1/k8s-archived-workflows/"):
        r.add_get(path, list_workflows)
    r.add_get("/api/v1/workflows/{namespace}", list_workflows)
    r.add_get("/api/v1/k8s-archived-workflows/{namespace}", list_workflows)
    r.add_post("/api/v1/workflows/{namespace}", create_workflow)
    r.add_post("/api/v1/workflows/{namespace}/lint", lint_workflow)
    r.add_post("/api/v1/workflows/{namespace}/submit", submit_workflow)
    r.add_get("/api/v1/workflows/{namespace}/{name}", get_workflow)
    r.add_delete("/api/v1/workflows/{namespace}/{name}", delete_workflow)
    for action, handler in (
        ("suspend", suspend_workflow),
        ("resume", resume_workflow),
        ("stop", stop_workflow),
        ("terminate", terminate_workflow),
        ("retry", retry_workflow),
        ("resubmit", resubmit_workflow),
        ("set", set_workflow),
    ):
        r.add_put(f"/api/v1/workflows/{{namespace}}/{{name}}/{action}", handler)
    r.add_get("/api/v1/workflows/{namespace}/{name}/log", workflow_logs)
    r.add_get("/api/v1/workflows/{namespace}/{name}/{podName}/log", workflow_logs)
    r.add_get("/api/v1/workflows/{namespace}/{name}//log", workflow_logs)
    r.add_get("/api/v1/workflow-events/", watch_workflows)
    r.add_get("/api/v1/workflow-events/{namespace}", watch_workflows)
    r.add_get("/api/v1/archived-workflows", list_archived)
    r.add_get("/api/v1/archived-workflows/", list_archived)
    r.add_get("/api/v1/archived-workflows/{uid}", get_archived)
    r.add_delete("/api/v1/archived-workflows/{uid}", delete_archived)
    r.add_put("/api/v1/archived-workflows/{uid}/retry", retry_archived)
    r.add_put("/api/v1/archived-workflows/{uid}/resubmit", resubmit_archived)
    r.add_get("/api/v1/archived-workflows-label-keys", archived_label_keys)
    r.add_get("/api/v1/archived-workflows-label-values", archived_label_values)
