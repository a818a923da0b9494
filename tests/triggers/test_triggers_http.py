"""The http trigger against a real local aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from eventbridge.errors import NotFoundError, PermanentError, TemporaryError
from eventbridge.events import Event
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.manager import make_call
from eventbridge.store.sqlite import SqliteStore
from eventbridge.triggers.base import TriggerServices, action_for
from eventbridge.triggers.http import HttpTrigger

Factory = Callable[[dict[str, Any]], Awaitable[str]]
SECRETS = {("creds", "token"): "s3cr3t-token", ("creds", "user"): "alice", ("creds", "pass"): "pw"}


class References:
    def secret(self, namespace: str, name: str, key: str) -> str:
        try:
            return SECRETS[(name, key)]
        except KeyError:
            raise NotFoundError(f"secret {namespace}/{name} key {key} not found") from None

    def config_map(self, namespace: str, name: str, key: str) -> str:
        if (name, key) == ("settings", "region"):
            return "eu"
        raise NotFoundError(f"configmap {namespace}/{name} key {key} not found")


EVENT = Event(id="e1", source="webhook", subject="example", type="webhook", namespace="ns",
              data={"body": {"message": "hello", "count": 3, "obj": {"a": 1}}, "header": {}})


class Recorder:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []

    async def __call__(self, request: web.Request) -> web.Response:
        self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers),
                              "body": await request.read()})
        return web.Response(status=self.status, text="ok")


def sensor(http: dict[str, Any], **trigger: Any) -> Sensor:
    return Sensor.model_validate({
        "kind": "Sensor", "metadata": {"name": "s", "namespace": "ns"},
        "spec": {"dependencies": [{"name": "d", "eventSourceName": "webhook", "eventName": "example"}],
                 "triggers": [{"template": {"name": "call", "http": http}, **trigger}]},
    })


async def fire(sensor_: Sensor, store: SqliteStore | None = None) -> Any:
    trigger = sensor_.spec.triggers[0]
    action = action_for(sensor_, trigger, TriggerServices(store, References()))  # type: ignore[arg-type]
    assert isinstance(action, HttpTrigger)
    try:
        return await action.execute(make_call(sensor_, trigger, {"d": EVENT}))
    finally:
        await action.close()


async def preview(sensor_: Sensor) -> Any:
    trigger = sensor_.spec.triggers[0]
    action = action_for(sensor_, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert action is not None
    return await action.preview(make_call(sensor_, trigger, {"d": EVENT}))


async def test_post_with_payload_headers_secrets_and_basic_auth(aiohttp_server_factory: Factory) -> None:
    recorder = Recorder()
    base = await aiohttp_server_factory({"/hook": recorder})
    spec = {
        "url": f"{base}/hook",
        "payload": [
            {"src": {"dependencyName": "d", "dataKey": "body.message"}, "dest": "message"},
            {"src": {"dependencyName": "d", "dataKey": "body.count"}, "dest": "meta.count"},
            {"src": {"dependencyName": "d", "dataKey": "body.obj", "useRawData": True}, "dest": "obj"},
        ],
        "headers": {"X-Static": "1"},
        "secureHeaders": [
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "X-Region", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}}},
        ],
        "dynamicHeaders": [{"src": {"dependencyName": "d", "dataKey": "body.message"}, "dest": "X-Message"}],
    }
    outcome = await fire(sensor(spec))
    assert outcome.summary == f"POST {base}/hook -> 200"
    [request] = recorder.requests
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {"message": "hello", "meta": {"count": "3"}, "obj": {"a": 1}}
    headers = request["headers"]
    assert headers["X-Static"] == "1" and headers["Authorization"] == "s3cr3t-token"
    assert headers["X-Region"] == "eu" and headers["X-Message"] == "hello"
    assert headers["Content-Type"] == "application/json"

    auth_recorder = Recorder()
    base = await aiohttp_server_factory({"/auth": auth_recorder})
    await fire(sensor({"url": f"{base}/auth", "method": "put", "basicAuth": {
        "username": {"name": "creds", "key": "user"}, "password": {"name": "creds", "key": "pass"}}}))
    [request] = auth_recorder.requests
    assert request["method"] == "PUT" and request["body"] == b""
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()


async def test_parameters_change_the_url_and_empty_dest_is_the_whole_body(aiohttp_server_factory: Factory) -> None:
    recorder = Recorder()
    base = await aiohttp_server_factory({"/hello": recorder})
    spec = {
        "url": f"{base}/placeholder",
        "parameters": [{"src": {"dependencyName": "d", "dataTemplate": base + "/{{ .Input.body.message }}"},
                        "dest": "url"}],
        "payload": [{"src": {"dependencyName": "d", "dataKey": "body.obj"}, "dest": ""}],
    }
    await fire(sensor(spec))
    [request] = recorder.requests
    assert request["path"] == "/hello" and request["body"] == b'{"a":1}'


@pytest.mark.parametrize(
    ("status", "policy", "error"),
    [
        (200, None, None),
        (404, None, None),  # as Argo: without a policy a 4xx is not a failure
        (503, None, TemporaryError),  # differs from Argo: a 5xx is a failure without a policy
        (503, {"status": {"allow": [200, 503]}}, None),
        (201, {"status": {"allow": [200]}}, PermanentError),
    ],
)
async def test_status_handling(aiohttp_server_factory: Factory, status: int, policy: dict[str, Any] | None,
                               error: type[Exception] | None) -> None:
    base = await aiohttp_server_factory({"/s": Recorder(status)})
    extra = {"policy": policy} if policy else {}
    if error is None:
        await fire(sensor({"url": f"{base}/s"}, **extra))
    else:
        with pytest.raises(error):
            await fire(sensor({"url": f"{base}/s"}, **extra))


async def test_redirects_only_to_the_same_host(aiohttp_server_factory: Factory) -> None:
    recorder = Recorder()

    async def same(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/final")

    async def other(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("http://localhost:9/steal")

    base = await aiohttp_server_factory({"/final": recorder, "/same": same, "/other": other})
    await fire(sensor({"url": f"{base}/same", "secureHeaders": [
        {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]}))
    assert recorder.requests[0]["headers"]["Authorization"] == "s3cr3t-token"
    with pytest.raises(PermanentError, match="another host"):
        await fire(sensor({"url": f"{base}/other"}))


async def test_unreachable_server_is_temporary_and_messages_hold_no_secret() -> None:
    spec = {"url": "http://127.0.0.1:9/x", "timeout": 2, "secureHeaders": [
        {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]}
    with pytest.raises(TemporaryError) as caught:
        await fire(sensor(spec))
    assert "s3cr3t" not in str(caught.value)


async def test_missing_secret_is_permanent() -> None:
    spec = {"url": "http://127.0.0.1:9/x", "secureHeaders": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "missing"}}}]}
    with pytest.raises(PermanentError, match="secureHeader 'A'"):
        await fire(sensor(spec))


async def test_preview_redacts_secrets() -> None:
    spec = {"url": "http://example.invalid/x", "method": "PATCH",
            "payload": [{"src": {"dependencyName": "d", "dataKey": "body.message"}, "dest": "m"}],
            "secureHeaders": [{"name": "Authorization",
                               "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
            "basicAuth": {"username": {"name": "creds", "key": "user"}}}
    shown = await preview(sensor(spec))
    assert shown == {"method": "PATCH", "url": "http://example.invalid/x", "headers": {"Authorization": "<redacted>"},
                     "body": {"m": "hello"}, "basicAuth": "<redacted>"}
    assert "s3cr3t" not in json.dumps(shown)


async def test_connections_are_kept_alive_and_a_closed_one_is_replaced() -> None:
    """Firings reuse one kept-alive connection; when the server has closed it meanwhile, the
    trigger sends again on a new connection instead of failing the firing."""
    connections: list[tuple[str, int]] = []
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        connections.append(writer.get_extra_info("peername"))
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        await reader.readexactly(length)
        requests += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        if len(connections) == 1:  # the first connection serves a second request, then is dropped silently
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            await reader.readexactly(length)
            requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sensor_ = sensor({"url": f"http://127.0.0.1:{port}/x", "method": "POST"})
    trigger = sensor_.spec.triggers[0]
    action = action_for(sensor_, trigger, TriggerServices(None, References()))  # type: ignore[arg-type]
    assert isinstance(action, HttpTrigger)
    try:
        for _ in range(2):
            outcome = await action.execute(make_call(sensor_, trigger, {"d": EVENT}))
            assert outcome.summary.endswith("-> 200")
        assert len(connections) == 1  # the second firing reused the first connection
        await asyncio.sleep(0.1)  # the server has closed it by now; the client does not know yet
        outcome = await action.execute(make_call(sensor_, trigger, {"d": EVENT}))
        assert outcome.summary.endswith("-> 200")
        assert (requests, len(connections)) == (3, 2)
    finally:
        await action.close()
        server.close()
        await server.wait_closed()
