"""The webhook source over real HTTP against a real SqliteBus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sources_helpers import eventsource

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.manager import SourceManager
from eventbridge.sources.webhook import MASKED_AUTH, canonical_header_name

HOOKS: dict[str, dict[str, Any]] = {
    "push": {
        "port": "0",
        "endpoint": "/push",
        "method": "POST",
        "metadata": {"team": "a"},
    },
    "guarded": {
        "port": "0",
        "endpoint": "/guarded",
        "method": "POST",
        "maxPayloadSize": 64,
        "authSecret": {"name": "hook-token", "key": "token"},
    },
    "query": {"port": "0", "endpoint": "/query", "method": "GET"},
}


@pytest.fixture
async def base(manager: SourceManager) -> str:
    await manager.apply([eventsource("hooks", HOOKS)])
    assert [s.state for s in manager.status()] == ["running"] * 3
    port = manager.router.bound_port(0)
    assert port
    return f"http://127.0.0.1:{port}"


async def read_error(response: aiohttp.ClientResponse) -> str:
    assert response.content_type == "application/json"
    body = await response.json()
    assert list(body) == ["error"]
    return str(body["error"])


async def test_post_json_is_published_with_argo_data_shape(
    base: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    headers = {"x-custom-thing": "one", "Content-Type": "application/json"}
    async with client.post(base + "/push", data=b'{"ref": "main", "n": [1, 2]}', headers=headers) as response:
        assert response.status == 200
        answer = await response.json()
    (stored,) = await bus.list_events()
    event = stored.event
    assert answer == {"id": event.id} and len(event.id) == 32
    assert (event.source, event.subject, event.type, event.namespace) == ("hooks", "push", "webhook", "team")
    assert event.data["body"] == {"ref": "main", "n": [1, 2]}
    assert event.data["metadata"] == {"team": "a"}
    assert event.data["header"]["X-Custom-Thing"] == ["one"]
    assert event.data["header"]["Content-Type"] == ["application/json"]
    assert "Host" not in event.data["header"]
    assert set(event.data) == {"header", "body", "metadata"}


async def test_answer_comes_after_the_event_is_durable(
    base: str, client: aiohttp.ClientSession, bus_path: Path
) -> None:
    async with client.post(base + "/push", json={"durable": True}) as response:
        assert response.status == 200
        event_id = (await response.json())["id"]
    # a second, independent connection to the same file sees it right away
    async with SqliteBus(bus_path) as fresh:
        found = await fresh.get_event("team", "hooks", "push", event_id)
    assert found is not None and found.event.data["body"] == {"durable": True}


async def test_repeated_headers_keep_every_value_in_order(base: str, bus: SqliteBus) -> None:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /push HTTP/1.1\r\nHost: x\r\nx-multi: one\r\nX-MULTI: two\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 200")
    writer.close()
    await writer.wait_closed()
    (stored,) = await bus.list_events()
    assert stored.event.data["header"]["X-Multi"] == ["one", "two"]


async def test_get_publishes_query_parameters_and_metadata_is_left_out_when_unset(
    base: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    async with client.get(base + "/query?a=1&a=2&b=&c=x%20y") as response:
        assert response.status == 200
    (stored,) = await bus.list_events()
    assert stored.event.data["body"] == {"a": ["1", "2"], "b": [""], "c": ["x y"]}
    assert "metadata" not in stored.event.data


async def test_form_body_becomes_a_form_map(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    async with client.post(base + "/push?ignored=1", data={"a": "1", "b": "two words"}) as response:
        assert response.status == 200
    (stored,) = await bus.list_events()
    assert stored.event.data["body"] == {"a": ["1"], "b": ["two words"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b"NaN", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
async def test_bad_json_is_400_and_nothing_is_published(
    base: str, client: aiohttp.ClientSession, bus: SqliteBus, body: bytes, message: str
) -> None:
    async with client.post(base + "/push", data=body, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        assert message in await read_error(response)
    assert await bus.list_events() == []


async def test_any_json_value_is_accepted(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    for raw, value in (
        (b'"text"', "text"),
        (b"[1,2]", [1, 2]),
        (b"12345678901234567890", 12345678901234567890),
    ):
        async with client.post(base + "/push", data=raw) as response:
            assert response.status == 200
        assert (await bus.list_events())[-1].event.data["body"] == value


async def test_wrong_method_is_405_with_allow(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    async with client.get(base + "/push") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert "POST" in await read_error(response)
    async with client.post(base + "/query", json={}) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    assert await bus.list_events() == []


async def test_bearer_token_is_required_and_masked(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    cases = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic czNjcjN0"},
        {"Authorization": "s3cr3t"},
    ]
    for headers in cases:
        async with client.post(base + "/guarded", json={"x": 1}, headers=headers) as response:
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "s3cr3t" not in await read_error(response)
    assert await bus.list_events() == []
    async with client.post(base + "/guarded", json={"x": 1}, headers={"Authorization": "Bearer s3cr3t"}) as response:
        assert response.status == 200
    (stored,) = await bus.list_events()
    assert stored.event.data["header"]["Authorization"] == [MASKED_AUTH]
    assert "s3cr3t" not in json.dumps(stored.event.data)


async def test_authorization_header_is_masked_even_without_auth_secret(
    base: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    async with client.post(base + "/push", json={}, headers={"Authorization": "Bearer whatever"}) as response:
        assert response.status == 200
    (stored,) = await bus.list_events()
    assert stored.event.data["header"]["Authorization"] == [MASKED_AUTH]


async def test_body_over_max_payload_size_is_413(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    auth = {"Authorization": "Bearer s3cr3t"}
    big = json.dumps({"x": "y" * 100}).encode()
    async with client.post(base + "/guarded", data=big, headers=auth) as response:
        assert response.status == 413
        assert "64 bytes" in await read_error(response)

    async def chunked() -> Any:  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * 20
        yield b"{}"

    async with client.post(base + "/guarded", data=chunked(), headers=auth) as response:
        assert response.status == 413

    async def at_once() -> Any:  # no Content-Length, and all of it in one piece (read without waiting)
        yield big

    async with client.post(base + "/guarded", data=at_once(), headers=auth) as response:
        assert response.status == 413
    exact = b'{"k": "' + b"v" * 55 + b'"}'
    assert len(exact) == 64
    async with client.post(base + "/guarded", data=exact, headers=auth) as response:
        assert response.status == 200
    assert len(await bus.list_events()) == 1


async def test_unknown_path_is_404_json_and_health_is_ok(base: str, client: aiohttp.ClientSession) -> None:
    async with client.post(base + "/nowhere", json={}) as response:
        assert response.status == 404
        assert "/nowhere" in await read_error(response)
    async with client.get(base + "/health") as response:
        assert response.status == 200
        assert await response.text() == "OK"


async def test_publish_failure_is_503_json(base: str, client: aiohttp.ClientSession, bus: SqliteBus) -> None:
    await bus.stop()
    async with client.post(base + "/push", json={"x": 1}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert "retry" in await read_error(response)


def test_header_names_are_canonicalised_like_go() -> None:
    assert canonical_header_name("content-type") == "Content-Type"
    assert canonical_header_name("X-GITHUB-EVENT") == "X-Github-Event"
    assert canonical_header_name("x-hub-signature-256") == "X-Hub-Signature-256"
    assert canonical_header_name("weird header") == "weird header"
    assert canonical_header_name("etag") == "Etag"
