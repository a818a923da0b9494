"""The HTTP API, on argo-server's paths and JSON shapes where they exist.

Errors are short JSON objects in grpc-gateway's shape, as argo-server sends them:
``{"code": <grpc code>, "message": "..."}`` with the matching HTTP status.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from eventbridge import __version__
from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.executors.base import Executor
from eventbridge.models.kinds import parse_manifest
from eventbridge.store.base import Object, Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# grpc codes used by argo-server's gateway
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 409: 6, 413: 8, 500: 13}


@dataclass(frozen=True)
class ApiContext:
    """What the API needs from the running process."""

    store: Store
    executor: Executor


CONTEXT: web.AppKey[ApiContext] = web.AppKey("context", ApiContext)


def error(status: int, message: str) -> web.Response:
    return web.json_response({"code": _GRPC.get(status, 2), "message": message}, status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn project errors and aiohttp's HTTP errors into short JSON answers."""
    try:
        return await handler(request)
    except NotFoundError as exc:
        return error(404, str(exc))
    except AlreadyExistsError as exc:
        return error(409, str(exc))
    except ConflictError as exc:
        return error(409, str(exc))
    except InvalidError as exc:
        return error(400, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error(exc.status, exc.reason)
        raise


def _name_param(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not _NAME.match(value):
        raise InvalidError(f"invalid {key} {value!r}: must be a lowercase RFC 1123 name")
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidError("request body must be a JSON object")
    return body


def _list_response(items: list[Object]) -> web.Response:
    return web.json_response({"metadata": {}, "items": items})


# workflows --------------------------------------------------------------------------------


async def list_workflows(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    namespace = _name_param(request, "namespace")
    labels = _label_selector(request.query.get("listOptions.labelSelector", ""))
    items = await store.list("Workflow", namespace, labels)
    items.sort(key=lambda o: o["metadata"].get("creationTimestamp", ""), reverse=True)
    return _list_response(items)


def _label_selector(text: str) -> dict[str, str]:
    """Equality-based selectors (``a=b,c==d``), which is what argo list sends."""
    selector: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.replace("==", "=").partition("=")
        if not sep or not key:
            raise InvalidError(f"unsupported label selector {part!r}: use key=value")
        selector[key.strip()] = value.strip()
    return selector


async def create_workflow(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    namespace = _name_param(request, "namespace")
    body = await _json_body(request)
    workflow = body.get("workflow")
    if not isinstance(workflow, dict):
        raise InvalidError('request body must be {"workflow": {...}}')
    workflow.setdefault("apiVersion", "argoproj.io/v1alpha1")
    workflow.setdefault("kind", "Workflow")
    if workflow["kind"] != "Workflow":
        raise InvalidError(f"kind must be Workflow, not {workflow['kind']!r}")
    metadata = workflow.setdefault("metadata", {})
    if metadata.get("namespace") not in (None, "", namespace):
        raise InvalidError(f"metadata.namespace {metadata['namespace']!r} does not match the path {namespace!r}")
    metadata["namespace"] = namespace
    manifest = parse_manifest(workflow)
    problems = [f"{f.path}: {f.message}" for f in manifest.check() if f.severity == "error"]
    if problems:
        raise InvalidError("; ".join(problems))
    if body.get("serverDryRun"):
        return web.json_response(workflow)
    created = await store.create(workflow)
    return web.json_response(created)


async def get_workflow(request: web.Request) -> web.Response:
    store = request.app[CONTEXT].store
    obj = await store.get("Workflow", _name_param(request, "namespace"), _name_param(request, "name"))
    return web.json_response(obj)


async def delete_workflow(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    namespace, name = _name_param(request, "namespace"), _name_param(request, "name")
    await context.store.get("Workflow", namespace, name)
    await context.executor.kill(namespace, name)
    await context.store.delete("Workflow", namespace, name)
    return web.json_response({})


async def workflow_log(request: web.Request) -> web.StreamResponse:
    """Logs of every step, as argo-server's stream of ``{"result": {"content", "podName"}}`` lines."""
    context = request.app[CONTEXT]
    namespace, name = _name_param(request, "namespace"), _name_param(request, "name")
    workflow = await context.store.get("Workflow", namespace, name)
    wanted_pod = request.query.get("podName", "")
    nodes = ((workflow.get("status") or {}).get("nodes") or {}).values()
    pods = sorted(
        (n for n in nodes if n.get("type") == "Pod"),
        key=lambda n: (n.get("startedAt") or "", n.get("id", "")),
    )
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for node in pods:
        pod_name = node.get("podName") or node["id"]
        if wanted_pod and wanted_pod not in (pod_name, node["id"]):
            continue
        text = await context.executor.read_log(namespace, name, node["id"])
        for line in text.splitlines():
            chunk = {"result": {"content": line, "podName": pod_name}}
            await response.write(json.dumps(chunk).encode() + b"\n")
    await response.write_eof()
    return response


# misc -------------------------------------------------------------------------------------


async def version(_: web.Request) -> web.Response:
    return web.json_response({"version": f"v{__version__}", "platform": "eventbridge"})


async def info(_: web.Request) -> web.Response:
    return web.json_response({"managedNamespace": "", "links": [], "modals": {}})


async def not_found(request: web.Request) -> web.Response:
    return error(404, f"no such path: {request.path}")


def build_app(context: ApiContext) -> web.Application:
    """The API application; the runtime adds it to its HTTP server."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY_BYTES)
    app[CONTEXT] = context
    app.router.add_get("/api/v1/version", version)
    app.router.add_get("/api/v1/info", info)
    app.router.add_get("/api/v1/workflows/{namespace}", list_workflows)
    app.router.add_post("/api/v1/workflows/{namespace}", create_workflow)
    app.router.add_get("/api/v1/workflows/{namespace}/{name}", get_workflow)
    app.router.add_delete("/api/v1/workflows/{namespace}/{name}", delete_workflow)
    app.router.add_get("/api/v1/workflows/{namespace}/{name}/log", workflow_log)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app
