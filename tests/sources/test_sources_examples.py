"""The example manifests under sensors/: lint clean, and every event source starts without
credentials or reachable servers (unreachable ones retry instead of failing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sources_helpers import DictReferences

from eventbridge.bus.sqlite import SqliteBus
from eventbridge.models.eventsource import EventSource, WebhookContext
from eventbridge.models.lint import lint_paths
from eventbridge.models.loader import load_paths
from eventbridge.sources.manager import SourceManager

SENSORS = Path(__file__).resolve().parents[2] / "sensors"
MINE = ["github-eventsource.yaml", "github-ci-sensor.yaml", "s3-sqs-eventsource.yaml", "s3-etl-sensor.yaml",
        "nightly-calendar.yaml"]  # fmt: skip


def test_examples_lint_clean() -> None:
    diagnostics, code = lint_paths([SENSORS / name for name in MINE])
    assert code == 0
    assert [str(d) for d in diagnostics] == []


def test_examples_do_not_clash_with_the_webhook_example() -> None:
    ports: dict[str, str] = {}
    for manifest in load_paths([SENSORS]).manifests:
        if not isinstance(manifest, EventSource):
            continue
        for type_key, name, spec in manifest.spec.sources():
            context = spec if isinstance(spec, WebhookContext) else getattr(spec, "webhook", None)
            if isinstance(context, WebhookContext):
                key = f"{context.port}{context.endpoint}"
                assert key not in ports, f"{type_key}/{name} clashes with {ports[key]}"
                ports[key] = f"{type_key}/{name}"
    assert "12000/example" in ports and "12001/github" in ports


async def test_example_sources_start_without_credentials(
    bus: SqliteBus, references: DictReferences, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    eventsources = [m for m in load_paths([SENSORS / name for name in MINE]).manifests if isinstance(m, EventSource)]
    for es in eventsources:  # any free port instead of the fixed ones, which may be taken here
        for _, _, spec in es.spec.sources():
            context = getattr(spec, "webhook", None)
            if isinstance(context, WebhookContext):
                context.port = "0"
    manager = SourceManager(bus, references, host="127.0.0.1", state_dir=tmp_path / "state")
    try:
        await manager.apply(eventsources)
        states = {str(s.key): s.state for s in manager.status()}
        assert states == {
            "default/github/github/push": "running",
            "default/nightly/calendar/nightly": "running",
            "default/s3-uploads/sqs/upload": states["default/s3-uploads/sqs/upload"],
        }
        assert states["default/s3-uploads/sqs/upload"] in ("running", "retrying")
    finally:
        await manager.stop()
