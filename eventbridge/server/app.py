"""The HTTP application: argo-server's REST API, our event API, the web UI and ``/metrics``.

``build_app(ApiContext(store=..., executor=..., ...))`` returns the aiohttp application; the
runtime serves it. Errors are short JSON objects in grpc-gateway's shape, as argo-server sends
them (``{"code": <grpc code>, "error": "...", "message": "..."}``) with the matching HTTP status;
UI pages get an HTML error page instead. ``/api/v1/openapi.json`` describes every route served.
"""

from __future__ import annotations

import asyncio
import logging
import platform
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from eventbridge import __version__, metrics
from eventbridge.errors import AlreadyExistsError, ConflictError, EventBridgeError, InvalidError, NotFoundError
from eventbridge.server import api_events, api_templates, api_workflows, auth, ui
from eventbridge.server.context import CLOSING, CONTEXT, MAX_BODY_BYTES, ApiContext, context, error
from eventbridge.store.base import Object

__all__ = ["CONTEXT", "MAX_BODY_BYTES", "ApiContext", "build_app", "error"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/") or request.path == "/metrics":
        return True
    return "text/html" not in request.headers.get("Accept", "") and "HX-Request" not in request.headers


def render_error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    """JSON for API clients, an HTML page for browsers (401 sends a browser to the login page)."""
    if _wants_json(request) or not context(request).ui:
        return error(status, message)
    if status == 401:
        raise web.HTTPSeeOther(f"/login?next={request.path_qs}")
    return ui.error_page(request, status, message)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn project errors and aiohttp's HTTP errors into short JSON answers (or error pages)."""
    limit = context(request).max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return render_error(request, 413, f"request body is larger than {limit} bytes")
    try:
        return await handler(request)
    except NotFoundError as exc:
        return render_error(request, 404, str(exc))
    except (AlreadyExistsError, ConflictError) as exc:
        return render_error(request, 409, str(exc))
    except InvalidError as exc:
        return render_error(request, 400, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return render_error(request, 413, f"request body is larger than {limit} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return render_error(request, exc.status, exc.reason)
        raise
    except EventBridgeError as exc:
        log.warning("request %s %s failed: %s", request.method, request.path, exc)
        return render_error(request, 500, str(exc))


# --------------------------------------------------------------------------- info, version, metrics


async def version(_: web.Request) -> web.Response:
    """argo-server's Version message."""
    return web.json_response(
        {
            "version": f"v{__version__}",
            "buildDate": "",
            "gitCommit": "",
            "gitTag": f"v{__version__}",
            "gitTreeState": "",
            "goVersion": f"python{platform.python_version()}",
            "compiler": "cpython",
            "platform": f"{platform.system().lower()}/{platform.machine()}",
        }
    )


async def info(request: web.Request) -> web.Response:
    """argo-server's InfoResponse."""
    ctx = context(request)
    return web.json_response(
        {
            "managedNamespace": ctx.managed_namespace,
            "links": [dict(link) for link in ctx.links],
            "modals": {},
            "navColor": "",
            "columns": [],
        }
    )


async def userinfo(request: web.Request) -> web.Response:
    """argo-server's GetUserInfoResponse; ``subject`` is the token's name when auth is on."""
    who = request.get(auth.PRINCIPAL_KEY)
    subject = who.name if isinstance(who, auth.Principal) else ""
    groups = list(who.groups) if isinstance(who, auth.Principal) else []
    return web.json_response({"issuer": "eventbridge" if subject else "", "subject": subject, "groups": groups})


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    """Prometheus text exposition; the workflows-by-phase gauge is refreshed from the store first."""
    counts: dict[str, int] = {}
    for obj in await context(request).store.list("Workflow"):
        phase = str((obj.get("status") or {}).get("phase") or "Pending")
        counts[phase] = counts.get(phase, 0) + 1
    metrics.set_workflow_phases(counts)
    metrics.set_build_info(__version__)
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


# --------------------------------------------------------------------------- OpenAPI


def openapi_document(app: web.Application) -> Object:
    """An OpenAPI 3 document listing every API route of ``app`` (generated from the router)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info_ = route.resource.get_info() if route.resource is not None else {}
        path = str(info_.get("formatter") or info_.get("path") or "")
        if not (path.startswith("/api/") or path == "/metrics") or route.method in ("HEAD", "*"):
            continue
        doc = (getattr(route.handler, "__doc__", None) or "").strip().splitlines()
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/")
            if part.startswith("{") and part.endswith("}")
        ]
        operation: dict[str, Any] = {
            "operationId": f"{route.method.lower()}_{getattr(route.handler, '__name__', 'handler')}",
            "summary": doc[0] if doc else "",
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "default": {"description": "Error", "content": {"application/json": {"schema": _ERROR_REF}}},
            },
        }
        if route.method in ("POST", "PUT"):
            operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        operations = paths.setdefault(path, {})
        if route.method.lower() not in operations:
            operations[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "eventbridge API (argo-server compatible)", "version": __version__},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer"},
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_ERROR_REF = {"$ref": "#/components/schemas/Error"}


async def openapi(request: web.Request) -> web.Response:
    """This document."""
    return web.json_response(openapi_document(request.app))


async def not_found(request: web.Request) -> web.StreamResponse:
    """Unknown paths: 404 (405 when the path exists for other methods)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is request.app[_CATCH_ALL]:
            continue
        match, methods = await resource.resolve(request)
        if match is None:
            allowed |= methods
    if allowed:
        response = render_error(request, 405, f"{request.method} is not allowed on {request.path}")
        response.headers["Allow"] = ", ".join(sorted(allowed))
        return response
    return render_error(request, 404, f"no such path: {request.path}")


_CATCH_ALL: web.AppKey[web.AbstractResource] = web.AppKey("catch_all", web.AbstractResource)


async def _closing(app: web.Application) -> None:
    """Tell streaming handlers to finish, so the server does not wait for watchers to hang up."""
    app[CLOSING].set()


def build_app(context_: ApiContext, authenticator: auth.Authenticator | None = None) -> web.Application:
    """The application; the runtime adds it to its HTTP server.

    ``authenticator`` (e.g. :class:`eventbridge.server.auth_kube.KubeAuth` in cluster mode) replaces
    ``context_.auth`` (the embedded token list) when given.
    """
    middlewares: list[Any] = [errors_middleware]
    authenticator = authenticator if authenticator is not None else context_.auth
    if authenticator is not None:
        middlewares.append(auth.middleware(authenticator, render_error))
    if context_.ui:
        middlewares.append(ui.csrf_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=context_.max_body_bytes)
    app[CONTEXT] = context_
    app[CLOSING] = asyncio.Event()
    if authenticator is not None:
        app[auth.AUTHENTICATOR] = authenticator
    app.on_shutdown.append(_closing)
    router = app.router
    router.add_get("/api/v1/version", version)
    router.add_get("/api/v1/info", info)
    router.add_get("/api/v1/userinfo", userinfo)
    router.add_get("/api/v1/openapi.json", openapi)
    router.add_get("/healthz", healthz)
    router.add_get("/metrics", metrics_endpoint)
    api_workflows.add_routes(router)
    api_templates.add_routes(router)
    api_events.add_routes(router)
    if context_.ui:
        ui.add_routes(app)
    catch_all = router.add_route("*", "/{tail:.*}", not_found)
    if catch_all.resource is not None:
        app[_CATCH_ALL] = catch_all.resource
    return app
