"""argo-server's WorkflowTemplateService, ClusterWorkflowTemplateService and CronWorkflowService.

Bodies are argo-server's request messages: ``{"namespace", "template"}`` for (cluster) workflow
templates, ``{"namespace", "cronWorkflow"}`` for cron workflows, plus ``createOptions``. An update
without ``metadata.resourceVersion`` replaces the current version (last write wins); with one, a
stale version is a 409 conflict.

ClusterWorkflowTemplates have no namespace in the API; the embedded store keeps them under its
default namespace, so they are found by name and answered without ``metadata.namespace``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from aiohttp import web

from eventbridge.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from eventbridge.server.api_workflows import (
    dry_run,
    dry_run_answer,
    list_objects,
    object_response,
    paged_response,
    validated,
)
from eventbridge.server.context import ApiContext, check_name, context, json_body, name_param, namespace_param
from eventbridge.store.base import Object
from eventbridge.workflow.cron import Schedule
from eventbridge.workflow.operations import submit_from

TEMPLATE = "WorkflowTemplate"
CLUSTER_TEMPLATE = "ClusterWorkflowTemplate"
CRON = "CronWorkflow"


def _name_pattern(request: web.Request, items: list[Object]) -> list[Object]:
    pattern = request.query.get("namePattern", "")
    return [o for o in items if pattern in str(o["metadata"].get("name", ""))] if pattern else items


def _update_target(request: web.Request, obj: Any) -> str:
    """The name an update addresses: the path's, else the body object's ``metadata.name``.

    The argo CLI's HTTP client leaves the name out of the path (it only fills path parameters
    that are fields of the request message, and the update requests carry the name inside the
    object), so ``argo template update`` sends ``PUT .../workflow-templates/<namespace>/``.
    """
    name = request.match_info.get("name", "")
    if not name and isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        name = str(obj["metadata"].get("name") or "")
    if not name:
        raise InvalidError("the name is required (in the path or in metadata.name)")
    return check_name(name)


async def _replace(ctx: ApiContext, kind: str, current: Object, new: Object) -> Object:
    """Write ``new`` over ``current`` keeping identity fields (and status) the client may not change."""
    meta = new.setdefault("metadata", {})
    old_meta = current["metadata"]
    if meta.get("name") not in (None, old_meta["name"]):
        raise InvalidError(f"metadata.name {meta['name']!r} does not match the name in the path {old_meta['name']!r}")
    meta["name"] = old_meta["name"]
    meta["namespace"] = old_meta["namespace"]
    meta.setdefault("resourceVersion", old_meta.get("resourceVersion"))
    for key in ("uid", "creationTimestamp"):
        if key in old_meta:
            meta[key] = old_meta[key]
    if "status" in current and "status" not in new:
        new["status"] = current["status"]
    return await ctx.store.update(new)


# --------------------------------------------------------------------------- workflow templates


async def list_templates(request: web.Request) -> web.Response:
    items = await list_objects(request, TEMPLATE, namespace_param(request))
    return paged_response(request, _name_pattern(request, items))


async def get_template(request: web.Request) -> web.Response:
    obj = await context(request).store.get(TEMPLATE, name_param(request, "namespace"), name_param(request, "name"))
    return object_response(request, obj)


async def create_template(request: web.Request) -> web.Response:
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    template = validated(body.get("template"), TEMPLATE, namespace)
    if dry_run(body):
        return dry_run_answer(template)
    return web.json_response(await context(request).store.create(template))


async def lint_template(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(validated(body.get("template"), TEMPLATE, name_param(request, "namespace")))


async def update_template(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    template = body.get("template")
    name = _update_target(request, template)
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("name", name)
    new = validated(template, TEMPLATE, namespace)
    current = await ctx.store.get(TEMPLATE, namespace, name)
    return web.json_response(await _replace(ctx, TEMPLATE, current, new))


async def delete_template(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace, name = name_param(request, "namespace"), name_param(request, "name")
    await ctx.store.delete(TEMPLATE, namespace, name)
    return web.json_response({})


# --------------------------------------------------------------------------- cluster workflow templates


def _cluster_view(obj: Object) -> Object:
    shown = copy.deepcopy(obj)
    shown.get("metadata", {}).pop("namespace", None)
    return shown


async def find_cluster_template(ctx: ApiContext, name: str) -> Object:
    for obj in await ctx.store.list(CLUSTER_TEMPLATE):
        if obj["metadata"].get("name") == name:
            return obj
    raise NotFoundError(f"ClusterWorkflowTemplate {name!r} not found")


async def list_cluster_templates(request: web.Request) -> web.Response:
    items = await list_objects(request, CLUSTER_TEMPLATE, None)
    return paged_response(request, [_cluster_view(o) for o in _name_pattern(request, items)])


async def get_cluster_template(request: web.Request) -> web.Response:
    obj = await find_cluster_template(context(request), name_param(request, "name"))
    return object_response(request, _cluster_view(obj))


def _cluster_body(obj: Any) -> Object:
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("namespace", None)
    return validated(obj, CLUSTER_TEMPLATE, None)


async def create_cluster_template(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    template = _cluster_body(body.get("template"))
    if dry_run(body):
        return dry_run_answer(template)
    name = template["metadata"].get("name")
    if name:
        try:
            await find_cluster_template(ctx, name)
        except NotFoundError:
            pass
        else:
            raise AlreadyExistsError(f"ClusterWorkflowTemplate {name!r} already exists")
    return web.json_response(_cluster_view(await ctx.store.create(template)))


async def lint_cluster_template(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(_cluster_body(body.get("template")))


async def update_cluster_template(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await json_body(request)
    template = body.get("template")
    name = _update_target(request, template)
    if isinstance(template, dict):
        template.setdefault("metadata", {}).setdefault("name", name)
    new = _cluster_body(template)
    current = await find_cluster_template(ctx, name)
    return web.json_response(_cluster_view(await _replace(ctx, CLUSTER_TEMPLATE, current, new)))


async def delete_cluster_template(request: web.Request) -> web.Response:
    ctx = context(request)
    current = await find_cluster_template(ctx, name_param(request, "name"))
    await ctx.store.delete(CLUSTER_TEMPLATE, current["metadata"]["namespace"], current["metadata"]["name"])
    return web.json_response({})


# --------------------------------------------------------------------------- cron workflows


def validated_cron(obj: Any, namespace: str) -> Object:
    """A CronWorkflow body checked like a workflow, plus its schedules and timezone."""
    cron = validated(obj, CRON, namespace)
    spec = cron.get("spec") or {}
    schedules = ([spec["schedule"]] if spec.get("schedule") else []) + list(spec.get("schedules") or [])
    if not schedules:
        raise InvalidError("spec.schedule or spec.schedules is required")
    for text in schedules:
        try:
            Schedule.parse(str(text), spec.get("timezone"))
        except InvalidError as exc:
            raise InvalidError(f"spec.schedule {text!r}: {exc}") from None
        except (ValueError, KeyError) as exc:
            raise InvalidError(f"spec.schedule {text!r} is not a valid cron schedule: {exc}") from None
    return cron


async def list_crons(request: web.Request) -> web.Response:
    return paged_response(request, await list_objects(request, CRON, namespace_param(request)))


async def get_cron(request: web.Request) -> web.Response:
    obj = await context(request).store.get(CRON, name_param(request, "namespace"), name_param(request, "name"))
    return object_response(request, obj)


async def create_cron(request: web.Request) -> web.Response:
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    cron = validated_cron(body.get("cronWorkflow"), namespace)
    if dry_run(body):
        return dry_run_answer(cron)
    return web.json_response(await context(request).store.create(cron))


async def lint_cron(request: web.Request) -> web.Response:
    body = await json_body(request)
    return web.json_response(validated_cron(body.get("cronWorkflow"), name_param(request, "namespace")))


async def update_cron(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = name_param(request, "namespace")
    body = await json_body(request)
    cron = body.get("cronWorkflow")
    name = _update_target(request, cron)
    if isinstance(cron, dict):
        cron.setdefault("metadata", {}).setdefault("name", name)
    new = validated_cron(cron, namespace)
    current = await ctx.store.get(CRON, namespace, name)
    return web.json_response(await _replace(ctx, CRON, current, new))


async def delete_cron(request: web.Request) -> web.Response:
    await context(request).store.delete(CRON, name_param(request, "namespace"), name_param(request, "name"))
    return web.json_response({})


async def set_cron_suspended(ctx: ApiContext, namespace: str, name: str, suspended: bool) -> Object:
    """Set ``spec.suspend`` of a CronWorkflow (re-reading on conflicts)."""
    for _attempt in range(20):
        cron = await ctx.store.get(CRON, namespace, name)
        spec = cron.setdefault("spec", {})
        if bool(spec.get("suspend")) == suspended:
            return cron
        spec["suspend"] = suspended
        try:
            return await ctx.store.update(cron)
        except ConflictError:
            continue
    raise InvalidError(f"CronWorkflow {namespace}/{name}: gave up after repeated write conflicts")


def _cron_action(suspended: bool) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        namespace, name = name_param(request, "namespace"), name_param(request, "name")
        return web.json_response(await set_cron_suspended(context(request), namespace, name, suspended))

    return handler


async def submit_template_form(ctx: ApiContext, kind: str, namespace: str, name: str, params: dict[str, str]) -> Object:
    """Used by the UI: submit a workflow from a template with parameters."""
    return await submit_from(ctx.store, kind, namespace, name, params)


def add_routes(router: web.UrlDispatcher) -> None:
    r = router
    r.add_get("/api/v1/workflow-templates/", list_templates)
    r.add_get("/api/v1/workflow-templates/{namespace}", list_templates)
    r.add_post("/api/v1/workflow-templates/{namespace}", create_template)
    r.add_post("/api/v1/workflow-templates/{namespace}/lint", lint_template)
    r.add_get("/api/v1/workflow-templates/{namespace}/{name}", get_template)
    r.add_put("/api/v1/workflow-templates/{namespace}/{name}", update_template)
    r.add_put("/api/v1/workflow-templates/{namespace}/", update_template)
    r.add_delete("/api/v1/workflow-templates/{namespace}/{name}", delete_template)

    r.add_get("/api/v1/cluster-workflow-templates", list_cluster_templates)
    r.add_post("/api/v1/cluster-workflow-templates", create_cluster_template)
    r.add_post("/api/v1/cluster-workflow-templates/lint", lint_cluster_template)
    r.add_get("/api/v1/cluster-workflow-templates/{name}", get_cluster_template)
    r.add_put("/api/v1/cluster-workflow-templates/{name}", update_cluster_template)
    r.add_put("/api/v1/cluster-workflow-templates/", update_cluster_template)
    r.add_delete("/api/v1/cluster-workflow-templates/{name}", delete_cluster_template)

    r.add_get("/api/v1/cron-workflows/", list_crons)
    r.add_get("/api/v1/cron-workflows/{namespace}", list_crons)
    r.add_post("/api/v1/cron-workflows/{namespace}", create_cron)
    r.add_post("/api/v1/cron-workflows/{namespace}/lint", lint_cron)
    r.add_get("/api/v1/cron-workflows/{namespace}/{name}", get_cron)
    r.add_put("/api/v1/cron-workflows/{namespace}/{name}", update_cron)
    r.add_put("/api/v1/cron-workflows/{namespace}/", update_cron)
    r.add_delete("/api/v1/cron-workflows/{namespace}/{name}", delete_cron)
    r.add_put("/api/v1/cron-workflows/{namespace}/{name}/suspend", _cron_action(True))
    r.add_put("/api/v1/cron-workflows/{namespace}/{name}/resume", _cron_action(False))
