"""Lint of the expression languages inside a Sensor (sensor/lint.py) and the model checks of the
new trigger options."""

from __future__ import annotations

from typing import Any

from eventbridge.models.sensor import Sensor
from eventbridge.sensor.lint import sensor_findings


def sensor(dependency: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None) -> Sensor:
    dep = {"name": "d", "eventSourceName": "es", "eventName": "e", **(dependency or {})}
    trig = trigger or {"template": {"name": "t", "log": {}}}
    return Sensor.model_validate({"kind": "Sensor", "metadata": {"name": "s"},
                                  "spec": {"dependencies": [dep], "triggers": [trig]}})


def paths(found: list[Any]) -> dict[str, str]:
    return {finding.path: finding.message for finding in found}


def test_clean_sensor_has_no_findings() -> None:
    clean = sensor(
        {"filters": {"data": [{"path": "body.a", "type": "string", "value": ["x"], "template": "{{ .Input }}"}],
                     "exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "body.a"}]}],
                     "script": "return true"},
         "transform": {"jq": ".body"}},
        {"template": {"name": "t", "http": {"url": "http://x", "payload": [
            {"src": {"dependencyName": "d", "dataTemplate": "{{ .Input.a | upper }}"}, "dest": "a"}]}}},
    )
    assert sensor_findings(clean) == []
    assert [f for f in clean.check() if f.severity == "error"] == []


def test_syntax_errors_are_reported_with_paths() -> None:
    broken = sensor(
        {"filters": {"data": [{"path": "body.a", "type": "string", "value": ["x"], "template": "{{ if }}"}],
                     "exprs": [{"expr": "a ==", "fields": [{"name": "a", "path": "body.a"}]}],
                     "script": "return ("},
         "transform": {"jq": ".[", "script": "x = "}},
        {"template": {"name": "t", "argoWorkflow": {"source": {"resource": {}}, "parameters": [
            {"src": {"dependencyName": "d", "dataTemplate": "{{ env \"HOME\" }}"}, "dest": "x"}]}}},
    )
    found = paths(sensor_findings(broken))
    assert "missing value for if" in found["spec.dependencies.0.filters.data.0.template"]
    assert "spec.dependencies.0.filters.exprs.0.expr" in found
    assert found["spec.dependencies.0.filters.script"].startswith("Lua:")
    assert "jq" in found["spec.dependencies.0.transform.jq"]
    assert found["spec.dependencies.0.transform.script"].startswith("Lua:")
    assert "no environment access" in found["spec.triggers.0.template.argoWorkflow.parameters.0.src.dataTemplate"]


def test_model_checks_of_trigger_options() -> None:
    checked = sensor(trigger={
        "template": {"name": "t", "conditions": "d", "kafka": {"url": "", "topic": ""},
                     "conditionsReset": [{"byTime": {"cron": "61 * * * *", "timezone": "Mars/Base"}}]},
        "eventbridgeDebounce": {"window": "soon"},
        "dlqTrigger": {"template": {"name": "dlq", "k8s": {"operation": "replace"}}},
    })
    found = paths(checked.check())
    assert "not a 5-field cron" in found["spec.triggers.0.template.conditionsReset.0.byTime.cron"]
    assert "unknown timezone" in found["spec.triggers.0.template.conditionsReset.0.byTime.timezone"]
    assert "no effect" in found["spec.triggers.0.template.conditionsReset"]
    assert "not a duration" in found["spec.triggers.0.eventbridgeDebounce.window"]
    assert "url is required" in found["spec.triggers.0.template.kafka.url"]
    assert "payload parameters are required" in found["spec.triggers.0.template.kafka.payload"]
    assert "unknown operation" in found["spec.triggers.0.dlqTrigger.template.k8s.operation"]
    assert "source is required" in found["spec.triggers.0.dlqTrigger.template.k8s.source"]
