"""Idempotent retries on the plain webhook: ``Idempotency-Key`` and CloudEvents ids become the event
id, so a retried request is stored once (real HTTP, a real SqliteBus, a restarted source)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sources_helpers import eventsource

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.sources.manager import SourceManager

HOOK: dict[str, Any] = {"port": "0", "endpoint": "/orders", "method": "POST"}


@pytest.fixture
async def url(manager: SourceManager) -> str:
    await manager.apply([eventsource("shop", {"orders": HOOK})])
    return f"http://127.0.0.1:{manager.router.bound_port(0)}/orders"


async def post(client: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with client.post(url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_a_retry_with_the_same_idempotency_key_is_one_event(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    key = {"Idempotency-Key": '"8e03978e-40d5-43e8-bc93-6894a57f9324"'}  # the draft's sf-string form
    first = await post(client, url, {"order": 1}, key)
    again = await post(client, url, {"order": 1}, key)
    assert first == again == (200, {"id": "8e03978e-40d5-43e8-bc93-6894a57f9324"})
    (stored,) = await bus.list_events()
    assert stored.event.id == "8e03978e-40d5-43e8-bc93-6894a57f9324"
    assert stored.event.data["body"] == {"order": 1}
    assert stored.event.data["header"]["Idempotency-Key"] == ['"8e03978e-40d5-43e8-bc93-6894a57f9324"']
    # another key, and no key at all, are new events
    assert (await post(client, url, {"order": 2}, {"Idempotency-Key": "order-2"})) == (200, {"id": "order-2"})
    status, answer = await post(client, url, {"order": 3}, {})
    assert status == 200 and len(answer["id"]) == 32
    assert [d.event.id for d in await bus.list_events()] == [stored.event.id, "order-2", answer["id"]]


async def test_a_retry_after_the_source_restarted_is_still_one_event(
    manager: SourceManager, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    hook = {**HOOK, "port": "0"}
    await manager.apply([eventsource("shop", {"orders": hook})])
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/orders"
    assert (await post(client, url, {"n": 1}, {"Idempotency-Key": "k-1"}))[0] == 200
    await manager.apply([])  # the endpoint goes away (a crash, a redeploy)
    await manager.apply([eventsource("shop", {"orders": hook})])
    url = f"http://127.0.0.1:{manager.router.bound_port(0)}/orders"
    assert await post(client, url, {"n": 1}, {"Idempotency-Key": "k-1"}) == (200, {"id": "k-1"})
    assert [d.event.id for d in await bus.list_events()] == ["k-1"]


async def test_cloudevents_ids_binary_and_structured_mode(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    binary = {"ce-specversion": "1.0", "ce-id": "A234-1234-1234", "ce-source": "/shop", "ce-type": "order.created"}
    assert await post(client, url, {"order": 9}, binary) == (200, {"id": "A234-1234-1234"})
    assert await post(client, url, {"order": 9}, binary) == (200, {"id": "A234-1234-1234"})
    structured = {"specversion": "1.0", "id": "evt-77", "source": "/shop", "type": "t", "data": {"order": 10}}
    for _ in range(2):
        async with client.post(
            url, json=structured, headers={"Content-Type": "application/cloudevents+json"}
        ) as response:
            assert response.status == 200 and await response.json() == {"id": "evt-77"}
    # Idempotency-Key wins over ce-id
    both = {**binary, "ce-id": "ignored", "Idempotency-Key": "wins"}
    assert await post(client, url, {}, both) == (200, {"id": "wins"})
    assert [d.event.id for d in await bus.list_events()] == ["A234-1234-1234", "evt-77", "wins"]


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Idempotency-Key": ""}, "Idempotency-Key is empty"),
        ({"Idempotency-Key": '""'}, "Idempotency-Key is empty"),
        ({"Idempotency-Key": "x" * 256}, "longer than 255"),
        ({"ce-id": " "}, "ce-id is empty"),
    ],
)
async def test_bad_keys_are_400_and_publish_nothing(
    url: str, client: aiohttp.ClientSession, bus: SqliteBus, headers: dict[str, str], fragment: str
) -> None:
    status, answer = await post(client, url, {"a": 1}, headers)
    assert status == 400 and fragment in answer["error"]
    assert await bus.list_events() == []


async def test_the_key_is_scoped_to_the_endpoint(
    manager: SourceManager, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    hooks = {"orders": HOOK, "refunds": {**HOOK, "endpoint": "/refunds"}}
    await manager.apply([eventsource("shop", hooks)])
    base = f"http://127.0.0.1:{manager.router.bound_port(0)}"
    for path in ("/orders", "/refunds", "/orders"):
        assert await post(client, base + path, {}, {"Idempotency-Key": "same"}) == (200, {"id": "same"})
    assert sorted(d.event.subject for d in await bus.list_events()) == ["orders", "refunds"]
