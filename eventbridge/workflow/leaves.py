"""Templates the controller runs itself and that touch nothing of the workflow's node graph:
``http`` (a request) and ``data`` (file paths through expressions). Each returns an
:class:`Outcome`; the caller completes the node with it."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from eventbridge.errors import ExprError, InvalidError
from eventbridge.expr.lang import evaluate, evaluate_bool
from eventbridge.models.workflow import DataTemplate, HTTPTemplate
from eventbridge.workflow.artifacts import fetch, parse_reference
from eventbridge.workflow.stepfiles import StepFiles


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a template ended: its node's phase, message and outputs."""

    phase: str
    message: str = ""
    outputs: dict[str, Any] | None = None


#: Resolves one header of an ``http`` template: ``(name, value, valueFrom) -> text``.
HeaderValue = Callable[[str, str | None, dict[str, Any] | None], str]


async def run_http(spec: HTTPTemplate, header_value: HeaderValue) -> Outcome:
    """Make the request (``spec`` already substituted); ``outputs.result`` is the response body."""
    headers: dict[str, str] = {}
    for header in spec.headers or []:
        name = str(header.get("name", ""))
        headers[name] = header_value(name, header.get("value"), header.get("valueFrom"))
    method = (spec.method or "GET").upper()
    body = spec.body or ""
    if spec.body_from and spec.body_from.get("bytes") is not None:
        body = base64.b64decode(str(spec.body_from["bytes"])).decode("utf-8", "replace")
    try:
        response = await http_request(
            method,
            spec.url,
            headers,
            body,
            seconds=float(spec.timeout_seconds or 30),
            verify=not spec.insecure_skip_verify,
        )
    except InvalidError as exc:
        return Outcome("Failed", str(exc))
    env = {
        "request": {"method": method, "url": spec.url, "body": body, "headers": {k: [v] for k, v in headers.items()}},
        "response": response,
    }
    outputs: dict[str, Any] = {"result": response["body"]}
    condition = spec.success_condition
    try:
        ok = evaluate_bool(condition, env) if condition else 200 <= int(response["statusCode"]) < 300
    except ExprError as exc:
        return Outcome("Error", f"successCondition: {exc}", outputs)
    if not ok:
        reason = f"successCondition {condition!r} was false" if condition else "the status was not 2xx"
        return Outcome("Failed", f"{reason} (status {response['statusCode']})", outputs)
    return Outcome("Succeeded", "", outputs)


async def http_request(
    method: str, url: str, headers: Mapping[str, str], body: str, *, seconds: float, verify: bool = True
) -> dict[str, Any]:
    """One HTTP request; ``{statusCode, body, headers}`` (headers as lists), InvalidError if it failed."""
    if not url.startswith(("http://", "https://")):
        raise InvalidError(f"http.url {url!r} is not an http(s) URL")
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.request(method, url, headers=dict(headers), data=body or None, ssl=bool(verify)) as response,
        ):
            text = await response.text(errors="replace")
            response_headers: dict[str, list[str]] = {}
            for key, value in response.headers.items():
                response_headers.setdefault(key, []).append(value)
            return {"statusCode": response.status, "body": text, "headers": response_headers}
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InvalidError(f"{method} {url} failed: {exc or type(exc).__name__}") from None


async def run_data(data: DataTemplate, source: dict[str, Any], files: StepFiles, node_id: str) -> Outcome:
    """``data``: the file paths of ``source.artifactPaths`` (``source`` already substituted),
    fetched into the node's staging directory, through expr ``transformation`` steps."""
    paths_spec = source.get("artifactPaths")
    if not isinstance(paths_spec, dict):
        return Outcome("Error", "data.source.artifactPaths is required")
    record = paths_spec
    if paths_spec.get("from"):
        record = {**parse_reference(str(paths_spec["from"])), "name": paths_spec.get("name", "data")}
    staging = files.staging(node_id) / "data"
    await fetch(record, staging, files.repository, files.s3)
    value: Any = await asyncio.to_thread(_list_files, staging)
    for index, step in enumerate(data.transformation):
        expression = step.get("expression")
        if not expression:
            return Outcome("Error", f"data.transformation.{index}: only expression is supported")
        value = evaluate(str(expression), {"data": value})
    await asyncio.to_thread(shutil.rmtree, staging, True)
    result = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return Outcome("Succeeded", "", {"result": result})


def _list_files(root: Path) -> list[str]:
    if root.is_file():
        return [root.name]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


__all__ = ["HeaderValue", "Outcome", "http_request", "run_data", "run_http"]
