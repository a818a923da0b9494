"""Argo Events' event-source metrics move: running gauge, events sent, sends failed, durations."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest
from sources_helpers import eventsource

from eventbridge import metrics
from eventbridge.bus.sqlite import SqliteBus
from eventbridge.errors import EventBridgeError
from eventbridge.sources.base import BusDispatch
from eventbridge.sources.manager import SourceManager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sample(name: str, **labels: str) -> float:
    """The current value of one sample of :data:`metrics.REGISTRY` (0 when it was never set)."""
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def source_labels(eventsource_name: str, event: str) -> dict[str, str]:
    return {"namespace": "team", "eventsource_name": eventsource_name, "event_name": event}


async def test_running_gauge_follows_apply_and_stop(manager: SourceManager) -> None:
    port = free_port()
    hooks = {name: {"port": str(port), "endpoint": f"/{name}", "method": "POST"} for name in ("a", "b")}
    running = {"namespace": "team", "eventsource_name": "metrics-gauge"}
    before = sample("argo_events_event_service_running_total", **running)

    await manager.apply([eventsource("metrics-gauge", hooks)])
    assert sample("argo_events_event_service_running_total", **running) == before + 2

    await manager.apply([eventsource("metrics-gauge", {"a": hooks["a"]})])
    assert sample("argo_events_event_service_running_total", **running) == before + 1

    await manager.stop()
    assert sample("argo_events_event_service_running_total", **running) == before


async def test_a_webhook_event_counts_as_sent_with_its_duration(manager: SourceManager, bus: SqliteBus) -> None:
    port = free_port()
    hook = {"port": str(port), "endpoint": "/push", "method": "POST"}
    labels = source_labels("metrics-sent", "push")
    sent = sample("argo_events_events_sent_total", **labels)
    observed = sample("argo_events_event_processing_duration_milliseconds_count", **labels)

    await manager.apply([eventsource("metrics-sent", {"push": hook})])
    async with aiohttp.ClientSession() as client:
        for _ in range(3):
            async with client.post(f"http://127.0.0.1:{port}/push", json={"n": 1}) as response:
                assert response.status == 200

    assert sample("argo_events_events_sent_total", **labels) == sent + 3
    assert sample("argo_events_events_sent_failed_total", **labels) == 0
    assert sample("argo_events_event_processing_duration_milliseconds_count", **labels) == observed + 3
    assert sample("argo_events_event_processing_duration_milliseconds_sum", **labels) > 0
    assert len(await bus.list_events(source="metrics-sent")) == 3


async def test_a_failed_publish_counts_as_failed_not_sent(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "stopped.db")  # never started: publishing raises
    dispatch = BusDispatch(bus, eventsource("metrics-failed", {}), "webhook")
    labels = source_labels("metrics-failed", "push")
    names = (
        "argo_events_events_sent_failed_total",
        "argo_events_events_processing_failed_total",
        "argo_events_events_sent_total",
        "argo_events_event_processing_duration_milliseconds_count",
    )
    before = {name: sample(name, **labels) for name in names}

    with pytest.raises(EventBridgeError):
        await dispatch("push", {"n": 1})

    moved = {name: sample(name, **labels) - before[name] for name in names}
    assert moved == {
        "argo_events_events_sent_failed_total": 1,
        "argo_events_events_processing_failed_total": 1,
        "argo_events_events_sent_total": 0,
        "argo_events_event_processing_duration_milliseconds_count": 1,
    }
    exposed = [
        line
        for line in metrics.exposition()[0].decode().splitlines()
        if line.startswith("argo_events_events_sent_failed_total{") and 'eventsource_name="metrics-failed"' in line
    ]
    assert len(exposed) == 1 and 'event_name="push"' in exposed[0] and 'namespace="team"' in exposed[0]
