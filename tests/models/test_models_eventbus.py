"""EventBus: the retention a JetStream streamConfig asks for, and its problems."""

from __future__ import annotations

from eventbridge.models.eventbus import EventBus, Retention, log_retention
from eventbridge.models.loader import load_text


def bus(name: str, stream_config: str, key: str = "jetstream", namespace: str = "default") -> EventBus:
    indented = "\n".join("      " + line for line in stream_config.splitlines())
    text = (
        f"apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  {key}:\n    version: latest\n    streamConfig: |\n{indented}\n"
    )
    result = load_text(text, "bus.yaml")
    assert len(result.objects) == 1, [str(d) for d in result.diagnostics]
    manifest = result.objects[0].manifest
    assert isinstance(manifest, EventBus)
    return manifest


def errors_of(text: str) -> list[str]:
    return [str(d) for d in load_text(text, "bus.yaml").errors]


def test_retention_from_stream_config() -> None:
    assert bus("default", "maxAge: 24h\nmaxMsgs: 5000").retention() == Retention(86400, 5000)
    assert bus("default", "maxMsgs: -1").retention() == Retention(None, 0)  # JetStream's "no bound"
    assert bus("default", "maxAge: 0\nduplicates: 5m", key="jetstreamExotic").retention() == Retention(0, None)
    assert bus("default", "replicas: 3").retention() == Retention(None, None)


def test_stream_config_problems_are_errors_naming_the_key() -> None:
    head = "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\nspec:\n  jetstream:\n"
    assert errors_of(head + "    streamConfig: |\n      maxAge: 3d\n") == [
        "bus.yaml:6: EventBus/default: spec.jetstream.streamConfig.maxAge: "
        "'3d' is not a Go duration like 72h or 30m (time: invalid duration \"3d\")"
    ]
    assert errors_of(head + "    streamConfig: |\n      maxMsgs: lots\n") == [
        "bus.yaml:6: EventBus/default: spec.jetstream.streamConfig.maxMsgs: 'lots' is not a whole number "
        "(-1 or 0 keeps all)"
    ]
    assert errors_of(head + "    streamConfig: '[1, 2]'\n") == [
        "bus.yaml:6: EventBus/default: spec.jetstream.streamConfig: "
        "must be a YAML mapping (maxAge: 72h, maxMsgs: 1000000, ...)"
    ]


def test_the_log_takes_the_loosest_bound_of_the_default_buses() -> None:
    tight = bus("default", "maxAge: 1h\nmaxMsgs: 10", namespace="a")
    loose = bus("default", "maxAge: 2h\nmaxMsgs: 0", namespace="b")
    other = bus("other", "maxAge: 9h\nmaxMsgs: 99")
    assert log_retention([tight, loose, other]) == Retention(7200, 0)
    assert log_retention([tight]) == Retention(3600, 10)
    assert log_retention([other]) == Retention(None, None)  # only the bus sensors use by default
