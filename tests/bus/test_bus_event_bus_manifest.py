"""The embedded runtime takes the event log's retention from the EventBus manifest, live."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bus_sqlite import make_event

from eventbridge.runtime import EmbeddedRuntime, Settings

EVENT_BUS = """\
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {name: default}
spec:
  jetstream:
    version: latest
    streamConfig: |
      maxAge: 24h
      maxMsgs: MAX
"""


async def test_retention_follows_the_event_bus_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTBRIDGE_BUS_MAX_AGE", raising=False)
    monkeypatch.delenv("EVENTBRIDGE_BUS_MAX_EVENTS", raising=False)
    manifests = tmp_path / "sensors"
    manifests.mkdir()
    (manifests / "bus.yaml").write_text(EVENT_BUS.replace("MAX", "3"))
    runtime = EmbeddedRuntime(Settings(paths=[manifests], state_dir=tmp_path / "state", port=0, watch=False))
    async with runtime:
        bus = runtime.bus
        assert (bus.max_age, bus.max_events) == (24 * 3600, 3)
        for n in range(5):
            await bus.publish(make_event(n))
        assert await bus.prune() == 2
        assert [d.event.id for d in await bus.list_events(limit=10)] == ["id-2", "id-3", "id-4"]

        (manifests / "bus.yaml").write_text(EVENT_BUS.replace("MAX", "-1"))  # JetStream's "no bound"
        await runtime.reload()
        assert (bus.max_age, bus.max_events) == (24 * 3600, 0)

        (manifests / "bus.yaml").unlink()
        await runtime.reload()
        assert (bus.max_age, bus.max_events) == (72 * 3600, 1_000_000)  # JetStream's defaults again
