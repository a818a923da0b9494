"""SourceManager: hot apply, failure isolation, endpoints; HttpRouter basics."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest
from sources_helpers import DictReferences, eventsource

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import ConflictError
from eventbridge.models.eventsource import EventSource
from eventbridge.sources.base import SOURCE_TYPES
from eventbridge.sources.http import HttpRouter, json_error
from eventbridge.sources.manager import SourceKey, SourceManager, load_source_types


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hook(port: int | str, endpoint: str, **extra: object) -> dict[str, object]:
    return {"port": str(port), "endpoint": endpoint, "method": "POST", **extra}


async def post(client: aiohttp.ClientSession, url: str) -> int:
    async with client.post(url, json={"a": 1}) as response:
        return response.status


def test_webhook_is_registered() -> None:
    assert "webhook" in load_source_types()
    assert SOURCE_TYPES.get("webhook") is not None


async def test_change_endpoint_and_remove_source(
    manager: SourceManager, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await manager.apply([eventsource("es", {"a": hook(port, "/a"), "b": hook(port, "/b")})])
    assert await post(client, base + "/a") == 200
    assert await post(client, base + "/b") == 200

    # change a's endpoint: old path is gone, new one works, b is untouched
    await manager.apply([eventsource("es", {"a": hook(port, "/a2"), "b": hook(port, "/b")})])
    assert await post(client, base + "/a") == 404
    assert await post(client, base + "/a2") == 200
    assert await post(client, base + "/b") == 200
    assert [(e.key.event_name, e.endpoint, e.bound_port) for e in manager.endpoints()] == [
        ("a", "/a2", port),
        ("b", "/b", port),
    ]

    # remove b
    await manager.apply([eventsource("es", {"a": hook(port, "/a2")})])
    assert await post(client, base + "/b") == 404
    assert [s.key.event_name for s in manager.status()] == ["a"]

    # remove everything: the port is closed
    await manager.apply([])
    assert manager.endpoints() == [] and manager.router.routes() == []
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, base + "/a2")

    subjects = [d.event.subject for d in await bus.list_events()]
    assert subjects == ["a", "b", "a", "b"]


async def test_unchanged_apply_keeps_the_same_source_and_port_move_works(
    manager: SourceManager, client: aiohttp.ClientSession
) -> None:
    first, second = free_port(), free_port()
    await manager.apply([eventsource("es", {"a": hook(first, "/a")})])
    before = manager._running[SourceKey("team", "es", "webhook", "a")].source
    await manager.apply([eventsource("es", {"a": hook(first, "/a")})])
    assert manager._running[SourceKey("team", "es", "webhook", "a")].source is before

    await manager.apply([eventsource("es", {"a": hook(second, "/a")})])
    assert await post(client, f"http://127.0.0.1:{second}/a") == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, f"http://127.0.0.1:{first}/a")


async def test_a_failing_source_is_logged_and_the_others_run(
    manager: SourceManager,
    client: aiohttp.ClientSession,
    references: DictReferences,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    good = eventsource("good", {"ok": hook(port, "/ok")})
    missing_secret = eventsource(
        "locked", {"locked": hook(port, "/locked", authSecret={"name": "absent", "key": "token"})}
    )
    clash = eventsource("clash", {"same": hook(port, "/ok")})
    unsupported = EventSource.model_validate(
        {
            "metadata": {"name": "cron", "namespace": "team"},
            "spec": {"mqtt": {"tick": {"url": "tcp://127.0.0.1:1883", "topic": "t"}}},
        }
    )
    invalid = eventsource("invalid", {"bad": hook(port, "no-slash")})
    with caplog.at_level(logging.ERROR, logger="eventbridge.sources.manager"):
        await manager.apply([good, missing_secret, clash, unsupported, invalid])
    states = {str(s.key): (s.state, s.error) for s in manager.status()}
    assert states["team/good/webhook/ok"] == ("running", None)
    assert states["team/locked/webhook/locked"][0] == "failed"
    assert "absent" in (states["team/locked/webhook/locked"][1] or "")
    assert "already served by team/good/ok" in (states["team/clash/webhook/same"][1] or "")
    assert states["team/cron/mqtt/tick"] == ("failed", "event source type mqtt is not supported yet")
    assert "must start with '/'" in (states["team/invalid/webhook/bad"][1] or "")
    assert len([r for r in caplog.records if "did not start" in r.getMessage()]) == 4
    assert await post(client, f"http://127.0.0.1:{port}/ok") == 200

    # a failure is logged once, not on every apply; a fixed source is retried and starts
    caplog.clear()
    references.secrets[("team", "absent", "token")] = "now-here"
    with caplog.at_level(logging.ERROR, logger="eventbridge.sources.manager"):
        await manager.apply([good, missing_secret, clash, unsupported, invalid])
    assert len([r for r in caplog.records if "did not start" in r.getMessage()]) == 0
    assert {str(s.key): s.state for s in manager.status()}["team/locked/webhook/locked"] == "running"
    assert "now-here" not in caplog.text


async def test_stop_closes_everything(bus: SqliteBus, references: DictReferences) -> None:
    port = free_port()
    manager = SourceManager(bus, references, host="127.0.0.1")
    await manager.apply([eventsource("es", {"a": hook(port, "/a")})])
    await manager.stop()
    assert manager.status() == []
    async with aiohttp.ClientSession() as client:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(client, f"http://127.0.0.1:{port}/a")


async def test_router_routes_health_conflicts_and_errors() -> None:
    router = HttpRouter("127.0.0.1")

    async def ok(request: object) -> aiohttp.web.StreamResponse:
        return json_error(418, "teapot")

    async def broken(request: object) -> aiohttp.web.StreamResponse:
        raise RuntimeError("boom")

    bound = await router.add_route(0, "/x", ok, owner="me")
    assert await router.add_route(0, "/y", broken) == bound
    with pytest.raises(ConflictError, match="already served by me"):
        await router.add_route(0, "/x", ok)
    with pytest.raises(ConflictError, match="reserved"):
        await router.add_route(0, "/health", ok)
    async with aiohttp.ClientSession() as client:
        async with client.put(f"http://127.0.0.1:{bound}/x") as response:
            assert response.status == 418
        async with client.get(f"http://127.0.0.1:{bound}/y") as response:
            assert response.status == 500
            assert await response.json() == {"error": "internal error"}
        async with client.post(f"http://127.0.0.1:{bound}/health") as response:
            assert (response.status, await response.text()) == (200, "OK")
        router.remove_route(0, "/x")
        async with client.get(f"http://127.0.0.1:{bound}/x") as response:
            assert response.status == 404
    assert [(r.path, r.bound_port) for r in router.routes()] == [("/y", bound)]
    await router.stop()
    assert router.routes() == [] and router.bound_port(0) is None
