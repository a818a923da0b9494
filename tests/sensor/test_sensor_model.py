"""Sensor model: Argo field names, round trip, semantic checks, conditions parser."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from eventbridge.models.base import UNSUPPORTED_KEY
from eventbridge.models.sensor import (
    ConditionSyntaxError,
    Sensor,
    TriggerTemplate,
    condition_names,
    evaluate_conditions,
    parse_conditions,
)

GOOD = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: webhook
  namespace: argo-events
spec:
  eventBusName: default
  replicas: 1
  loggingFields: {team: ci}
  dependencies:
    - name: test-dep
      eventSourceName: webhook
      eventName: example
      filtersLogicalOperator: or
      filters:
        dataLogicalOperator: and
        data:
          - path: body.ref
            type: string
            value: ["main"]
          - path: body.n
            type: number
            comparator: ">="
            value: [5]
        exprs:
          - expr: a == "x"
            fields: [{name: a, path: body.a}]
        context: {type: webhook}
        time: {start: "09:00:00", stop: "17:00:00", timezone: Europe/Berlin}
  triggers:
    - template:
        name: workflow
        conditions: test-dep
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: hello-}
          parameters:
            - src: {dependencyName: test-dep, dataKey: body.message}
              dest: spec.arguments.parameters.0.value
      retryStrategy: {steps: 3, duration: 1s, factor: 2, jitter: 0.1}
      rateLimit: {unit: Second, requestsPerUnit: 10}
      atLeastOnce: true
"""


def load(text: str) -> Sensor:
    return Sensor.model_validate(yaml.safe_load(text))


def test_good_sensor_has_no_findings_and_round_trips() -> None:
    sensor = load(GOOD)
    assert sensor.check() == []
    assert sensor.spec.dependencies[0].filters is not None
    assert sensor.spec.dependencies[0].filters.data is not None
    assert sensor.spec.dependencies[0].filters.data[1].value == ["5"]  # YAML number -> Go string
    dumped = sensor.dump()
    original = yaml.safe_load(GOOD)
    original["spec"]["dependencies"][0]["filters"]["data"][1]["value"] = ["5"]
    assert dumped == original


def messages(sensor: Sensor) -> dict[str, str]:
    return {finding.path: finding.message for finding in sensor.check()}


def test_check_reports_semantic_problems() -> None:
    doc: dict[str, Any] = {
        "kind": "Sensor",
        "metadata": {"name": "s"},
        "spec": {
            "dependencies": [
                {"name": "a", "eventSourceName": "es", "eventName": "e",
                 "filters": {"data": [
                     {"path": "body.x", "type": "string", "value": ["(bad"]},
                     {"path": "body.y", "type": "number", "comparator": "~", "value": ["1"]},
                     {"path": "body.z", "type": "bool", "value": []},
                 ]}},
                {"name": "a", "eventSourceName": "es", "eventName": "e2"},
            ],
            "triggers": [
                {"template": {"name": "t", "conditions": "a && ghost", "log": {}},
                 "parameters": [{"src": {"dependencyName": "nobody"}, "dest": "x"}]},
                {"template": {"name": "t", "log": {}}},
            ],
        },
    }
    found = messages(Sensor.model_validate(doc))
    assert "duplicate dependency name 'a'" in found["spec.dependencies.1.name"]
    assert "invalid regular expression" in found["spec.dependencies.0.filters.data.0.value.0"]
    assert "unknown comparator '~'" in found["spec.dependencies.0.filters.data.1.comparator"]
    assert "value list is empty" in found["spec.dependencies.0.filters.data.2.value"]
    assert "unknown dependency 'ghost'" in found["spec.triggers.0.template.conditions"]
    assert "unknown dependency 'nobody'" in found["spec.triggers.0.parameters.0.src.dependencyName"]
    assert "duplicate trigger name 't'" in found["spec.triggers.1.template.name"]


def test_check_reports_argo_workflow_parameters_and_bad_conditions() -> None:
    sensor = load(GOOD)
    workflow = sensor.spec.triggers[0].template
    assert workflow is not None and workflow.argo_workflow is not None
    assert workflow.argo_workflow.parameters is not None
    workflow.argo_workflow.parameters[0].src.dependency_name = "missing"  # type: ignore[union-attr]
    workflow.conditions = "test-dep &&"
    found = messages(sensor)
    assert "unknown dependency 'missing'" in found[
        "spec.triggers.0.template.argoWorkflow.parameters.0.src.dependencyName"
    ]
    assert "expression ends" in found["spec.triggers.0.template.conditions"]


def test_unsupported_fields_are_marked_for_lint() -> None:
    for field_name in ("aws_lambda", "nats", "slack", "email"):
        extra = TriggerTemplate.model_fields[field_name].json_schema_extra
        assert isinstance(extra, dict) and UNSUPPORTED_KEY in extra
    for field_name in ("k8s", "http", "kafka", "conditions_reset", "argo_workflow", "log"):
        extra = TriggerTemplate.model_fields[field_name].json_schema_extra
        assert not (isinstance(extra, dict) and UNSUPPORTED_KEY in extra)
    template = TriggerTemplate.model_validate({"name": "x", "http": {"url": "http://x"}})
    assert template.type_keys() == ["http"]


@pytest.mark.parametrize(
    ("text", "present", "expected"),
    [
        ("a", {"a"}, True),
        ("a && b", {"a"}, False),
        ("a && b", {"a", "b"}, True),
        ("a || b", {"b"}, True),
        ("dep-a && (dep-b || dep-c)", {"dep-a", "dep-c"}, True),
        ("dep-a && (dep-b || dep-c)", {"dep-b", "dep-c"}, False),
        ("a || b && c", {"a"}, True),  # && binds tighter
        ("!a", set(), True),
    ],
)
def test_conditions(text: str, present: set[str], expected: bool) -> None:
    assert evaluate_conditions(parse_conditions(text), present) is expected


def test_condition_names_and_syntax_errors() -> None:
    assert condition_names(parse_conditions("x && (y-1 || z.2)")) == ["x", "y-1", "z.2"]
    for bad in ("", "a &&", "(a", "a b", "a & b", "&& a"):
        with pytest.raises(ConditionSyntaxError):
            parse_conditions(bad)
