"""`sensor test` as a library: dry_run, CloudEvents parsing and the readable report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventbridge.errors import InvalidError
from eventbridge.models.sensor import Sensor
from eventbridge.sensor.dryrun import dry_run, format_report, parse_cloudevent_file, parse_cloudevents

SENSOR_YAML = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: github, namespace: argo-events}
spec:
  dependencies:
    - name: push
      eventSourceName: github
      eventName: repo
      filters:
        data:
          - path: body.ref
            type: string
            value: ["^refs/heads/main$"]
    - name: approval
      eventSourceName: github
      eventName: review
  triggers:
    - template:
        name: build
        conditions: push && approval
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: build-}
              spec:
                entrypoint: main
                arguments: {parameters: [{name: sha, value: unset}]}
          parameters:
            - src: {dependencyName: push, dataTemplate: "{{ .Input.body.after | substr 0 7 }}"}
              dest: spec.arguments.parameters.0.value
    - template:
        name: notify
        conditions: approval
        log: {}
"""


def cloudevent(event_id: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "github", "subject": subject, "type": "github",
            "time": "2024-05-01T12:00:00Z", "datacontenttype": "application/json", "data": data}


def sensor() -> Sensor:
    return Sensor.model_validate(yaml.safe_load(SENSOR_YAML))


def test_dry_run_reports_filters_conditions_and_the_parameterized_resource() -> None:
    events = parse_cloudevents(json.dumps([
        cloudevent("dev-push", "repo", {"body": {"ref": "refs/heads/dev", "after": "1111111aaaa"}}),
        cloudevent("main-push", "repo", {"body": {"ref": "refs/heads/main", "after": "abcdef0123"}}),
        cloudevent("ok", "review", {"body": {"state": "approved"}}),
    ]))
    result = dry_run(sensor(), events)
    deps = {(d["name"], d["event"]): d for d in result["dependencies"]}
    assert len(deps) == 6
    assert deps[("push", "dev-push")]["matched"] is False
    assert "data filter 0" in deps[("push", "dev-push")]["reason"]
    assert deps[("push", "main-push")]["matched"] is True
    assert deps[("approval", "main-push")]["matched"] is False
    assert "listens to eventSourceName 'github' eventName 'review'" in deps[("approval", "main-push")]["reason"]
    build = [t for t in result["triggers"] if t["name"] == "build"]
    assert len(build) == 1 and build[0]["fired"] is True
    resource = build[0]["resource"]
    assert resource["spec"]["arguments"]["parameters"][0]["value"] == "abcdef0"
    assert resource["metadata"]["name"].startswith("build-")
    assert resource["metadata"]["labels"]["events.argoproj.io/trigger"] == "build"
    assert build[0]["events"] == ["main-push", "ok"]
    notify = [t for t in result["triggers"] if t["name"] == "notify"]
    assert notify == [{"name": "notify", "fired": True, "events": ["ok"], "resource": None,
                       "reason": "conditions met"}]
    json.dumps(result)  # JSON-ready
    report = format_report(result)
    assert "[FAIL] push <- event dev-push" in report and "[FIRE] build" in report and '"abcdef0"' in report


def test_dry_run_without_a_full_condition_says_what_it_waits_for() -> None:
    events = parse_cloudevents(json.dumps(cloudevent("m", "repo", {"body": {"ref": "refs/heads/main"}})))
    result = dry_run(sensor(), events)
    build = [t for t in result["triggers"] if t["name"] == "build"]
    assert build == [{"name": "build", "fired": False, "events": [], "resource": None,
                      "reason": "waiting for approval"}]
    assert "[----] build did not fire: waiting for approval" in format_report(result)


def test_a_trigger_that_would_fail_is_reported() -> None:
    events = parse_cloudevents(json.dumps([
        cloudevent("m", "repo", {"body": {"ref": "refs/heads/main"}}),  # no "after": the template fails
        cloudevent("ok", "review", {}),
    ]))
    [build] = [t for t in dry_run(sensor(), events)["triggers"] if t["name"] == "build"]
    assert build["fired"] is True and build["resource"] is None
    assert build["reason"].startswith("would fail: unable to resolve 'push' parameter value")


def test_parse_cloudevent_file_accepts_one_object_or_a_list(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(cloudevent("a", "repo", {"x": 1})))
    [event] = parse_cloudevent_file(one)
    assert (event.id, event.source, event.subject, event.type, event.data) == ("a", "github", "repo", "github",
                                                                               {"x": 1})
    assert event.time.isoformat() == "2024-05-01T12:00:00+00:00"
    many = tmp_path / "many.json"
    many.write_text(json.dumps([cloudevent("a", "repo", {}), cloudevent("b", "review", {})]))
    assert [e.id for e in parse_cloudevent_file(many)] == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "no events"),
        ('"text"', "must be a JSON object"),
        ('{"specversion": "1.0", "source": "s", "type": "t"}', r"missing CloudEvents attribute\(s\) id"),
        ('{"specversion": "0.3", "id": "i", "source": "s", "type": "t"}', "specversion"),
        ('{"specversion": "1.0", "id": "i", "source": "s", "type": "t", "time": "yesterday"}', "RFC 3339"),
        ('{"specversion": "1.0", "id": 5, "source": "s", "type": "t"}', "must be a string"),
    ],
)
def test_bad_cloudevents_are_invalid(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidError, match=message):
        parse_cloudevent_file(path)


def test_unreadable_file_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="cannot read"):
        parse_cloudevent_file(tmp_path / "missing.json")
