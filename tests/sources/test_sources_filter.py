"""EventSource-level ``filter.expression`` (expr-lang), through real sources and directly."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from sources_helpers import make_eventsource

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import InvalidError
from eventbridge.models.eventsource import EventSourceFilter
from eventbridge.sources._filtering import EventFilter
from eventbridge.sources.manager import SourceManager

log = logging.getLogger("test")


def test_top_level_dashes_become_underscores_and_errors_drop(caplog: pytest.LogCaptureFixture) -> None:
    f = EventFilter(EventSourceFilter(expression='my_key == 1 && body["a-b"] == "x"'), log, {})
    assert f.accepts({"my-key": 1, "body": {"a-b": "x"}})
    assert not f.accepts({"my-key": 2, "body": {"a-b": "x"}})
    failing = EventFilter(EventSourceFilter(expression="body.n > 1"), log, {})
    with caplog.at_level(logging.ERROR, logger="test"):
        assert not failing.accepts({"body": {"n": "text"}})
        assert not failing.accepts({"body": {"n": "text"}})
    assert len(caplog.records) == 1  # the same error is logged once
    assert not EventFilter(EventSourceFilter(expression="body.n"), log, {}).accepts({"body": {"n": 3}})
    assert EventFilter(None, log, {}).accepts({"anything": 1})
    with pytest.raises(InvalidError, match=r"filter\.expression"):
        EventFilter(EventSourceFilter(expression="body.n >"), log, {})


async def test_webhook_and_github_filters_drop_with_success(
    manager: SourceManager, client: aiohttp.ClientSession, bus: SqliteBus
) -> None:
    es = make_eventsource(
        "f",
        webhook={"hook": {"port": "0", "endpoint": "/hook", "method": "POST", "filter": {"expression": "body.n > 1"}}},
        github={
            "gh": {
                "webhook": {"port": "0", "endpoint": "/gh", "method": "POST"},
                "repositories": [{"owner": "o", "names": ["r"]}],
                "filter": {"expression": 'body["X-GitHub-Event"] == "push"'},
            }
        },
    )
    await manager.apply([es])
    base = f"http://127.0.0.1:{manager.router.bound_port(0)}"
    for path, payload, headers, kept in [
        ("/hook", {"n": 5}, {}, True),
        ("/hook", {"n": 0}, {}, False),
        ("/gh", {"zen": "z"}, {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "d1"}, False),
        ("/gh", {"ref": "main"}, {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d2"}, True),
    ]:
        async with client.post(base + path, json=payload, headers=headers) as response:
            assert response.status == 200
            answer = await response.json()
            assert (answer["id"] is not None) == kept and answer.get("filtered", False) == (not kept)
    stored = [(d.event.subject, d.event.data["body"]) for d in await bus.list_events()]
    assert stored == [("hook", {"n": 5}), ("gh", {"ref": "main", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d2"})]


async def test_an_expression_that_does_not_parse_stops_the_source(manager: SourceManager) -> None:
    es = make_eventsource("f", calendar={"tick": {"interval": "1h", "filter": {"expression": "eventTime =="}}})
    await manager.apply([es])
    (status,) = manager.status()
    assert status.state == "failed" and "filter.expression" in (status.error or "")
