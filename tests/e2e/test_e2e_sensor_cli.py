"""`eventbridge sensor test` and lint's engine checks, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: ci
spec:
  dependencies:
    - name: push
      eventSourceName: github
      eventName: repo
      filters:
        data:
          - path: body.ref
            type: string
            value: ["refs/heads/main"]
  triggers:
    - template:
        name: build
        argoWorkflow:
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: build-}
              spec:
                entrypoint: main
                arguments: {parameters: [{name: sha, value: none}]}
                templates: [{name: main, container: {image: x, command: ["true"]}}]
          parameters:
            - src: {dependencyName: push, dataKey: body.after}
              dest: spec.arguments.parameters.0.value
"""


def event(ref: str, event_id: str) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "github",
        "subject": "repo",
        "type": "github",
        "time": "2026-11-28T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"body": {"ref": ref, "after": "abc123"}},
    }


def eventbridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbridge", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_sensor_test_reports_matches_reasons_and_the_resource(tmp_path: Path) -> None:
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    (tmp_path / "main.json").write_text(json.dumps(event("refs/heads/main", "e1")))
    (tmp_path / "dev.json").write_text(json.dumps(event("refs/heads/dev", "e2")))
    result = eventbridge(
        "sensor", "test", "sensor.yaml", "--event", "dev.json", "--event", "main.json", "-o", "json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    matched = {(d["event"]["id"] if isinstance(d["event"], dict) else d["event"]): d for d in report["dependencies"]}
    assert matched["e1"]["matched"] is True
    assert matched["e2"]["matched"] is False and "body.ref" in matched["e2"]["reason"]
    fired = [t for t in report["triggers"] if t["fired"]]
    assert len(fired) == 1 and fired[0]["name"] == "build"
    assert fired[0]["resource"]["spec"]["arguments"]["parameters"][0]["value"] == "abc123"

    text = eventbridge("sensor", "test", "sensor.yaml", "--event", "dev.json", cwd=tmp_path)
    assert text.returncode == 0 and "build" in text.stdout


def test_sensor_test_exits_2_on_invalid_input(tmp_path: Path) -> None:
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    (tmp_path / "bad.json").write_text("{not json")
    assert eventbridge("sensor", "test", "sensor.yaml", "--event", "bad.json", cwd=tmp_path).returncode == 2
    (tmp_path / "broken.yaml").write_text("kind: Sensor\n")
    (tmp_path / "ok.json").write_text(json.dumps(event("x", "e")))
    assert eventbridge("sensor", "test", "broken.yaml", "--event", "ok.json", cwd=tmp_path).returncode == 2


def test_lint_runs_the_engines_syntax_checks(tmp_path: Path) -> None:
    bad = SENSOR.replace("dataKey: body.after", 'dataTemplate: "{{ .Input.body.after | nosuchfunc }}"')
    (tmp_path / "sensor.yaml").write_text(bad)
    result = eventbridge("lint", "sensor.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "sensor.yaml:" in result.stdout and "Sensor/ci: spec.triggers.0" in result.stdout
