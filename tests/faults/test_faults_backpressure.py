"""The back-pressure pieces on their own: SqliteBus.pressure() (backlog and in-flight bounds, the
environment knobs) and HttpRouter answering 503 + Retry-After before reading a body."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import EventBridgeError
from eventbridge.events import Event
from eventbridge.sources.http import HttpRouter


def _event(number: int) -> Event:
    return Event(id=f"e{number}", source="src", subject="evt", type="webhook", data={"n": number}, namespace="ns")


async def test_backlog_counts_events_past_the_slowest_open_group(tmp_path: Path) -> None:
    async with SqliteBus(tmp_path / "bus.db", max_backlog=3, max_in_flight=0) as bus:
        for number in range(5):
            await bus.publish(_event(number))
        assert bus.backlog == 0 and bus.pressure() is None  # nobody subscribed: nothing waits
        subscription = bus.subscribe("sensor:a", from_start=True)
        first = await anext(aiter(subscription))
        assert bus.backlog == 5
        reason = bus.pressure()
        assert reason is not None and "5 accepted events" in reason and "EVENTBRIDGE_MAX_BACKLOG" in reason
        await subscription.ack(first)
        second = await anext(aiter(subscription))
        await subscription.ack(second)
        assert bus.backlog == 3 and bus.pressure() is not None
        third = await anext(aiter(subscription))
        await subscription.ack(third)
        assert bus.backlog == 2 and bus.pressure() is None
        await subscription.close()
        assert bus.backlog == 0


async def test_in_flight_bound_counts_publishes_waiting_for_their_commit(tmp_path: Path) -> None:
    async with SqliteBus(tmp_path / "bus.db", max_backlog=0, max_in_flight=10) as bus:
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.append(bus.in_flight)
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        await asyncio.gather(*(bus.publish(_event(n)) for n in range(200)))
        watcher.cancel()
        assert max(seen) >= 10 and bus.in_flight == 0 and bus.pressure() is None


@pytest.mark.parametrize(("value", "expected"), [("", 100_000), ("0", 0), ("25", 25)])
async def test_bounds_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv("EVENTBRIDGE_MAX_BACKLOG", value)
    assert SqliteBus(tmp_path / "bus.db").max_backlog == expected


@pytest.mark.parametrize("value", ["many", "-1", "1.5"])
def test_bad_bounds_are_refused_with_the_variable_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("EVENTBRIDGE_MAX_INFLIGHT", value)
    with pytest.raises(EventBridgeError, match="EVENTBRIDGE_MAX_INFLIGHT"):
        SqliteBus(tmp_path / "bus.db")


async def test_router_refuses_with_503_and_retry_after_without_reading_the_body() -> None:
    reasons: list[str | None] = ["too busy"]
    handled: list[bytes] = []

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        handled.append(await request.read())
        return web.json_response({"id": "x"})

    router = HttpRouter("127.0.0.1", pressure=lambda: reasons[0], retry_after=7)
    port = await router.add_route(0, "/hook", handler)
    try:
        async with aiohttp.ClientSession() as client:
            async with client.post(f"http://127.0.0.1:{port}/hook", data=b"x" * 100_000) as response:
                assert response.status == 503 and response.headers["Retry-After"] == "7"
                assert "retry later" in (await response.json())["error"]
            async with client.get(f"http://127.0.0.1:{port}/health") as response:
                assert response.status == 200  # health is not refused
            reasons[0] = None
            async with client.post(f"http://127.0.0.1:{port}/hook", data=b"{}") as response:
                assert response.status == 200
        assert handled == [b"{}"] and router.refused == 1
    finally:
        await router.stop()
