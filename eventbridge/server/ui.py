"""The web UI: server-rendered pages (Jinja2, autoescaped) with htmx and server-sent events.

Every page reads fine without JavaScript; actions are plain HTML forms that POST and redirect.
With JavaScript, ``static/app.js`` listens to the API's server-sent events and asks htmx to
refresh the parts of the page that changed, and streams logs as they are written.
Assets are vendored under ``static/`` (htmx: see ``static/VENDORED.md``); nothing is fetched
from a CDN.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from eventbridge import __version__
from eventbridge.errors import InvalidError, NotFoundError
from eventbridge.server import api_events, auth
from eventbridge.server.api_events import EventQuery, find_sensor, sensor_traces, source_events
from eventbridge.server.api_templates import find_cluster_template, set_cron_suspended
from eventbridge.server.api_workflows import FINISHED, phase_of, pod_nodes
from eventbridge.server.context import ApiContext, allowed_namespaces, check_name, context, name_param
from eventbridge.server.graph import layout
from eventbridge.server.selectors import labels_match, parse_label_selector
from eventbridge.store.base import Object
from eventbridge.workflow import operations as ops
from eventbridge.workflow.cron import next_schedule_time

HERE = Path(__file__).parent
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
ACTIONS = ("suspend", "resume", "stop", "terminate", "retry", "resubmit", "delete")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _parse(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def duration(start: Any, end: Any = None) -> str:
    """``1h2m3s`` between two RFC 3339 times (until now when ``end`` is empty)."""
    begin = _parse(start)
    if begin is None:
        return ""
    finish = _parse(end) or datetime.now(UTC)
    seconds = max(0, int((finish - begin).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _ago(moment: Any) -> str:
    parsed = moment if isinstance(moment, datetime) else _parse(moment)
    if parsed is None:
        return ""
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["duration"] = duration
ENV.filters["when"] = _ago
ENV.globals["version"] = __version__
ENV.globals["urlencode"] = urlencode


def render(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    who = request.get(auth.PRINCIPAL_KEY)
    html = ENV.get_template(template).render(
        request=request,
        user=who.name if isinstance(who, auth.Principal) else "",
        auth_enabled=auth.AUTHENTICATOR in request.app,
        **values,
    )
    return web.Response(text=html, content_type="text/html", status=status)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message, title="Error")


def _fragment(request: web.Request) -> str:
    return request.query.get("fragment", "")


def _namespace_filter(request: web.Request) -> str | None:
    value = request.query.get("namespace", "").strip()
    return check_name(value, "namespace") if value else None


def _visible(request: web.Request, namespace: str) -> bool:
    allowed = allowed_namespaces(request)
    return allowed is None or namespace in allowed


# --------------------------------------------------------------------------- workflows


async def index(_: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/workflows")


async def workflows_page(request: web.Request) -> web.Response:
    """Workflows, newest first, filtered by namespace, phase, label selector and name."""
    ctx = context(request)
    namespace = _namespace_filter(request)
    phase = request.query.get("phase", "")
    label = request.query.get("label", "").strip()
    name = request.query.get("name", "").strip()
    problem = ""
    try:
        selector = parse_label_selector(label)
    except InvalidError as exc:
        selector, problem = [], str(exc)
    items = [
        o
        for o in await ctx.store.list("Workflow", namespace)
        if _visible(request, o["metadata"]["namespace"])
        and (not phase or phase_of(o) == phase or (phase == "Pending" and not phase_of(o)))
        and labels_match(selector, o["metadata"].get("labels"))
        and name in o["metadata"]["name"]
    ]
    items.sort(key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"]["name"]), reverse=True)
    query = {k: v for k, v in {"namespace": namespace or "", "phase": phase, "label": label, "name": name}.items() if v}
    values: dict[str, Any] = {
        "title": "Workflows",
        "items": items[:500],
        "total": len(items),
        "phases": PHASES,
        "filters": {"namespace": namespace or "", "phase": phase, "label": label, "name": name},
        "problem": problem,
        "query": urlencode(query),
        "watch_url": f"/api/v1/workflow-events/{namespace or ''}?fields=result.type,result.object.metadata.name",
    }
    if _fragment(request) == "table":
        return render(request, "_workflow_table.html", **values)
    return render(request, "workflows.html", **values)


def _nodes(workflow: Object) -> list[dict[str, Any]]:
    nodes = list(((workflow.get("status") or {}).get("nodes") or {}).values())
    return sorted(nodes, key=lambda n: (str(n.get("startedAt") or "~"), str(n.get("name", ""))))


async def _logs(ctx: ApiContext, workflow: Object) -> list[tuple[str, str]]:
    meta = workflow["metadata"]
    out: list[tuple[str, str]] = []
    for node in pod_nodes(workflow):
        text = await ctx.executor.read_log(meta["namespace"], meta["name"], node["id"])
        out.append((str(node.get("displayName") or node["id"]), text))
    return out


async def workflow_page(request: web.Request) -> web.Response:
    """One workflow: summary, graph, nodes with inputs/outputs, logs, actions."""
    ctx = context(request)
    namespace, name = name_param(request, "namespace"), name_param(request, "name")
    workflow = await ctx.store.get("Workflow", namespace, name)
    phase = phase_of(workflow) or "Pending"
    spec = workflow.get("spec") or {}
    values: dict[str, Any] = {
        "title": f"{namespace}/{name}",
        "wf": workflow,
        "phase": phase,
        "finished": phase in FINISHED,
        "suspended": bool(spec.get("suspend")),
        "graph": layout(workflow),
        "nodes": _nodes(workflow),
        "watch_url": f"/api/v1/workflow-events/{namespace}?listOptions.fieldSelector=metadata.name%3D{name}"
        "&fields=result.type,result.object.metadata.name",
        "log_url": f"/api/v1/workflows/{namespace}/{name}/log?logOptions.follow=true",
        "message": request.query.get("message", ""),
    }
    if _fragment(request) == "live":
        return render(request, "_workflow_live.html", **values)
    values["logs"] = await _logs(ctx, workflow)
    return render(request, "workflow.html", **values)


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def workflow_action(request: web.Request) -> web.StreamResponse:
    """POST /workflows/{ns}/{name}/{action}: do it and go back to the workflow (or the new one)."""
    ctx = context(request)
    namespace, name = name_param(request, "namespace"), name_param(request, "name")
    action = request.match_info["action"]
    if action not in ACTIONS:
        raise NotFoundError(f"unknown action {action!r}")
    await _form(request)
    target = f"/workflows/{namespace}/{name}"
    try:
        if action == "suspend":
            await ops.suspend(ctx.store, namespace, name)
        elif action == "resume":
            await ops.resume(ctx.store, namespace, name)
        elif action == "stop":
            await ops.stop(ctx.store, namespace, name)
        elif action == "terminate":
            await ops.terminate(ctx.store, namespace, name)
        elif action == "retry":
            await ops.retry(ctx.store, namespace, name)
        elif action == "resubmit":
            created = await ops.resubmit(ctx.store, namespace, name)
            target = f"/workflows/{namespace}/{created['metadata']['name']}"
        else:
            await ctx.store.get("Workflow", namespace, name)
            await ctx.executor.kill(namespace, name)
            await ctx.store.delete("Workflow", namespace, name)
            target = "/workflows"
    except InvalidError as exc:
        target = f"{target}?{urlencode({'message': str(exc)})}"
    raise web.HTTPSeeOther(target)


# --------------------------------------------------------------------------- templates


def _parameters(template: Object) -> list[dict[str, Any]]:
    params = ((template.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    return [p for p in params if isinstance(p, dict) and p.get("name")]


async def templates_page(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = _namespace_filter(request)
    templates = [
        t for t in await ctx.store.list("WorkflowTemplate", namespace) if _visible(request, t["metadata"]["namespace"])
    ]
    cluster = await ctx.store.list("ClusterWorkflowTemplate")
    templates.sort(key=lambda t: (t["metadata"]["namespace"], t["metadata"]["name"]))
    cluster.sort(key=lambda t: t["metadata"]["name"])
    return render(request, "templates.html", title="Templates", templates=templates, cluster=cluster)


async def _template(request: web.Request) -> tuple[str, Object]:
    ctx = context(request)
    if "namespace" in request.match_info:
        namespace, name = name_param(request, "namespace"), name_param(request, "name")
        return "WorkflowTemplate", await ctx.store.get("WorkflowTemplate", namespace, name)
    return "ClusterWorkflowTemplate", await find_cluster_template(ctx, name_param(request, "name"))


async def template_page(request: web.Request) -> web.Response:
    """A template with a form to submit it, one field per parameter."""
    kind, template = await _template(request)
    return render(
        request,
        "template.html",
        title=template["metadata"]["name"],
        kind=kind,
        tmpl=template,
        parameters=_parameters(template),
        templates=[t.get("name", "") for t in (template.get("spec") or {}).get("templates") or []],
    )


async def template_submit(request: web.Request) -> web.StreamResponse:
    ctx = context(request)
    kind, template = await _template(request)
    form = await _form(request)
    namespace = template["metadata"]["namespace"] if kind == "WorkflowTemplate" else form.get("namespace", "default")
    check_name(namespace, "namespace")
    if not _visible(request, namespace):
        raise web.HTTPForbidden(reason=f"you may not submit into namespace {namespace!r}")
    params = {p["name"]: form[f"param.{p['name']}"] for p in _parameters(template) if f"param.{p['name']}" in form}
    created = await ops.submit_from(ctx.store, kind, namespace, template["metadata"]["name"], params)
    raise web.HTTPSeeOther(f"/workflows/{namespace}/{created['metadata']['name']}")


# --------------------------------------------------------------------------- cron workflows


def _next_run(ctx: ApiContext, cron: Object) -> datetime | None:
    meta = cron["metadata"]
    if (cron.get("spec") or {}).get("suspend"):
        return None
    if ctx.cron_next is not None:
        found = ctx.cron_next(meta["namespace"], meta["name"])
        if found is not None:
            return found
    try:
        return next_schedule_time(cron)
    except InvalidError:
        return None


async def crons_page(request: web.Request) -> web.Response:
    ctx = context(request)
    namespace = _namespace_filter(request)
    crons = [
        c for c in await ctx.store.list("CronWorkflow", namespace) if _visible(request, c["metadata"]["namespace"])
    ]
    crons.sort(key=lambda c: (c["metadata"]["namespace"], c["metadata"]["name"]))
    rows = [{"cron": c, "next": _next_run(ctx, c)} for c in crons]
    return render(request, "crons.html", title="Cron workflows", rows=rows)


async def cron_action(request: web.Request) -> web.StreamResponse:
    namespace, name = name_param(request, "namespace"), name_param(request, "name")
    action = request.match_info["action"]
    if action not in ("suspend", "resume"):
        raise NotFoundError(f"unknown action {action!r}")
    await _form(request)
    await set_cron_suspended(context(request), namespace, name, action == "suspend")
    raise web.HTTPSeeOther("/cron")


# --------------------------------------------------------------------------- event sources and sensors


async def _last_events(ctx: ApiContext, namespace: str, source: str, limit: int = 5) -> list[Any]:
    if ctx.bus is None:
        return []
    found, _ = await EventQuery(namespace=namespace, source=source).run(ctx.bus, limit=limit)
    return found


async def eventsources_page(request: web.Request) -> web.Response:
    ctx = context(request)
    rows = []
    for eventsource in api_events.eventsources(ctx):
        if not _visible(request, eventsource.namespace):
            continue
        rows.append(
            {
                "es": eventsource,
                "events": source_events(ctx, eventsource),
                "last": await _last_events(ctx, eventsource.namespace, eventsource.name),
            }
        )
    return render(request, "eventsources.html", title="Event sources", rows=rows, has_bus=ctx.bus is not None)


def _trigger_type(template: dict[str, Any]) -> str:
    skip = {"name", "conditions", "conditionsReset"}
    kinds = [k for k in template if k not in skip]
    return kinds[0] if kinds else ""


async def sensors_page(request: web.Request) -> web.Response:
    ctx = context(request)
    rows = []
    for sensor in api_events.sensors(ctx):
        if not _visible(request, sensor.namespace):
            continue
        spec = sensor.dump().get("spec") or {}
        traces = await sensor_traces(ctx, sensor.namespace, sensor.name, 50)
        rows.append(
            {
                "sensor": sensor,
                "dependencies": spec.get("dependencies") or [],
                "triggers": spec.get("triggers") or [],
                "last_fired": _last_fired(traces),
            }
        )
    return render(request, "sensors.html", title="Sensors", rows=rows)


def _last_fired(traces: list[Any]) -> Any:
    for trace in traces:
        if isinstance(trace, dict) and trace.get("kind") == "trigger" and trace.get("ok"):
            return trace
    return None


async def sensor_page(request: web.Request) -> web.Response:
    """A sensor: dependencies, triggers, last firing and its recent decisions (why it did not fire)."""
    ctx = context(request)
    sensor = find_sensor(ctx, name_param(request, "namespace"), name_param(request, "name"))
    spec = sensor.dump().get("spec") or {}
    traces = await sensor_traces(ctx, sensor.namespace, sensor.name, 200)
    return render(
        request,
        "sensor.html",
        title=f"{sensor.namespace}/{sensor.name}",
        sensor=sensor,
        dependencies=spec.get("dependencies") or [],
        triggers=[{"t": t, "type": _trigger_type(t.get("template") or {})} for t in spec.get("triggers") or []],
        traces=traces,
        traces_enabled=ctx.traces is not None,
        last_fired=_last_fired(traces),
    )


# --------------------------------------------------------------------------- event log


async def events_page(request: web.Request) -> web.Response:
    """Search the event log; replay an event."""
    ctx = context(request)
    q = request.query
    problem = ""
    found: list[Any] = []
    next_offset = 0
    if ctx.bus is not None:
        try:
            query = EventQuery.from_request(request)
            raw_before = q.get("before", "")
            wellformed = raw_before.isascii() and raw_before.isdigit() and len(raw_before) <= 18
            before = int(raw_before) if wellformed else None
            found, next_offset = await query.run(ctx.bus, limit=50, before=before)
        except InvalidError as exc:
            problem = str(exc)
    filters = {k: q.get(k, "") for k in ("namespace", "source", "subject", "type", "since", "until", "q")}
    more = urlencode({**{k: v for k, v in filters.items() if v}, "before": next_offset}) if next_offset else ""
    return render(
        request,
        "events.html",
        title="Events",
        events=found,
        filters=filters,
        problem=problem,
        more=more,
        has_bus=ctx.bus is not None,
        replayed=q.get("replayed", ""),
    )


async def event_replay(request: web.Request) -> web.StreamResponse:
    text = request.match_info["offset"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidError(f"invalid event offset {text!r}")
    await _form(request)
    result = await api_events.replay(context(request), int(text), allowed_namespaces(request))
    raise web.HTTPSeeOther(f"/events?{urlencode({'replayed': result['event']['id']})}")


# --------------------------------------------------------------------------- login


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", title="Log in", next=_safe_next(request.query.get("next", "")), problem="")


def _safe_next(value: str) -> str:
    return value if value.startswith("/") and not value.startswith("//") else "/workflows"


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    token = form.get("token", "").strip()
    target = _safe_next(form.get("next", ""))
    authenticator = request.app.get(auth.AUTHENTICATOR)
    try:
        who = await authenticator.authenticate(token) if authenticator is not None and token else None
    except auth.AuthUnavailableError:
        return render(
            request, "login.html", status=503, title="Log in", next=target,
            problem="Tokens cannot be checked right now; try again shortly.",
        )  # fmt: skip
    if who is None:
        return render(
            request, "login.html", status=401, title="Log in", next=target, problem="That token is not valid."
        )
    response = web.HTTPSeeOther(target)
    response.set_cookie(auth.COOKIE, f"Bearer {token}", httponly=True, samesite="Strict", path="/")
    raise response


async def logout(_: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


# --------------------------------------------------------------------------- wiring


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """UI form posts must come from this site (Origin / Sec-Fetch-Site), as cookies authenticate them."""
    if request.method == "POST" and not request.path.startswith("/api/"):
        origin = request.headers.get("Origin")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            raise web.HTTPForbidden(reason="cross-site form posts are not accepted")
        if origin is not None and origin != "null":
            host = origin.split("://", 1)[-1]
            if host != request.host:
                raise web.HTTPForbidden(reason="cross-site form posts are not accepted")
    return await handler(request)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", index)
    r.add_get("/workflows", workflows_page)
    r.add_get("/workflows/{namespace}/{name}", workflow_page)
    r.add_post("/workflows/{namespace}/{name}/{action}", workflow_action)
    r.add_get("/templates", templates_page)
    r.add_get("/templates/{namespace}/{name}", template_page)
    r.add_post("/templates/{namespace}/{name}/submit", template_submit)
    r.add_get("/cluster-templates/{name}", template_page)
    r.add_post("/cluster-templates/{name}/submit", template_submit)
    r.add_get("/cron", crons_page)
    r.add_post("/cron/{namespace}/{name}/{action}", cron_action)
    r.add_get("/eventsources", eventsources_page)
    r.add_get("/sensors", sensors_page)
    r.add_get("/sensors/{namespace}/{name}", sensor_page)
    r.add_get("/events", events_page)
    r.add_post("/events/{offset}/replay", event_replay)
    r.add_get("/login", login_page)
    r.add_post("/login", login_submit)
    r.add_get("/logout", logout)
    r.add_static("/static/", HERE / "static", append_version=False)
