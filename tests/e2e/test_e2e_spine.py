"""The spine end to end: a real `eventbridge up` process, real HTTP, real steps on the host."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import Process, finished, http

SECRET_AND_SOURCE = """
apiVersion: v1
kind: Secret
metadata:
  name: webhook-token
stringData:
  token: s3cr3t-t0ken
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: guarded
spec:
  webhook:
    push:
      port: "WEBHOOK_PORT"
      endpoint: /push
      method: POST
      maxPayloadSize: 1024
      authSecret:
        name: webhook-token
        key: token
"""

ECHO_SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: guarded
spec:
  dependencies:
    - name: dep
      eventSourceName: guarded
      eventName: push
  triggers:
    - template:
        name: echo
        argoWorkflow:
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: guarded-
              spec:
                entrypoint: main
                arguments:
                  parameters: [{name: text, value: none}]
                templates:
                  - name: main
                    inputs:
                      parameters: [{name: text}]
                    script:
                      image: python:3.11
                      command: [sh]
                      source: |
                        echo "got {{inputs.parameters.text}}"
          parameters:
            - src: {dependencyName: dep, dataKey: body.text}
              dest: spec.arguments.parameters.0.value
"""


def succeeded(process: Process, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        items = process.workflows()
        return items if len(items) >= count and all(finished(w) for w in items) else None

    return list(process.wait_for(done, timeout, f"{count} finished workflow(s)"))


def test_readme_walkthrough(tmp_path: Path) -> None:
    """The README's curl fires the shipped example; get -o json shows the value from the event.

    Paths are relative to the process's directory, as with `make up` (`./sensors`, `./.eventbridge`).
    """
    eventbridge = Process(tmp_path, relative=True)
    try:
        walkthrough(eventbridge)
    finally:
        eventbridge.stop()


def walkthrough(eventbridge: Process) -> None:
    eventbridge.copy_examples()
    eventbridge.start()
    status, body = eventbridge.post_event("/example", {"message": "hello eventbridge"})
    assert status == 200 and len(body["id"]) >= 16
    [workflow] = succeeded(eventbridge)
    name = workflow["metadata"]["name"]
    assert workflow["status"]["phase"] == "Succeeded", workflow["status"]
    labels = workflow["metadata"]["labels"]
    assert labels["events.argoproj.io/sensor"] == "webhook"
    assert labels["events.argoproj.io/trigger"] == "hello-workflow"

    got = json.loads(eventbridge.cli("get", name, "-o", "json").stdout)
    assert got["status"]["phase"] == "Succeeded"
    pods = [n for n in got["status"]["nodes"].values() if n["type"] == "Pod"]
    assert [p["outputs"]["result"] for p in pods] == ["hello from the event: hello eventbridge"]
    assert got["status"]["progress"] == "1/1"
    assert name in eventbridge.cli("list").stdout
    assert "hello from the event: hello eventbridge" in eventbridge.cli("logs", name).stdout

    # A body the sensor's filter rejects fires nothing.
    status, _ = eventbridge.post_event("/example", {"other": 1})
    assert status == 200
    time.sleep(1)
    assert len(eventbridge.workflows()) == 1


def test_acknowledged_event_survives_sigkill_exactly_once(eventbridge: Process) -> None:
    eventbridge.copy_examples()
    eventbridge.start()
    status, body = eventbridge.post_event("/example", {"message": "survivor"})
    assert status == 200
    eventbridge.kill()  # right after the 2xx, before the sensor or controller may have run
    eventbridge.start()
    [workflow] = succeeded(eventbridge)
    pods = [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]
    assert pods[0]["outputs"]["result"] == "hello from the event: survivor"
    assert body["id"] in json.dumps(workflow["metadata"].get("annotations", {}))
    # A second restart replays nothing new.
    eventbridge.stop()
    eventbridge.start()
    time.sleep(1)
    assert len(eventbridge.workflows()) == 1


def test_webhook_bad_input_is_refused_and_enqueues_nothing(eventbridge: Process) -> None:
    eventbridge.write("source.yaml", SECRET_AND_SOURCE)
    eventbridge.write("sensor.yaml", ECHO_SENSOR)
    eventbridge.start()
    base = f"http://127.0.0.1:{eventbridge.webhook_port}"
    good = {"Authorization": "Bearer s3cr3t-t0ken", "Content-Type": "application/json"}
    cases = [
        ("GET", "/push", b"", good, 405),
        ("POST", "/push", b'{"text": "x"}', {"Content-Type": "application/json"}, 401),
        ("POST", "/push", b'{"text": "x"}', {**good, "Authorization": "Bearer wrong"}, 401),
        ("POST", "/push", json.dumps({"text": "x" * 2000}).encode(), good, 413),
        ("POST", "/push", b"{not json", good, 400),
        ("POST", "/nowhere", b"{}", good, 404),
    ]
    for method, path, body, headers, expected in cases:
        status, response_headers, raw = http(method, base + path, body or None, headers)
        assert status == expected, (method, path, status, raw)
        assert response_headers.get("Content-Type", "").startswith("application/json"), (path, response_headers)
        message = json.loads(raw)
        assert message and "s3cr3t" not in raw.decode()
    assert http("GET", base + "/health")[0] == 200

    status, _, raw = http("POST", base + "/push", b'{"text": "authorised"}', good)
    assert status == 200, raw
    [workflow] = succeeded(eventbridge)
    result = next(n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod")["outputs"]["result"]
    assert result == "got authorised"
    assert "s3cr3t" not in eventbridge.log.read_text()


def test_api_errors(eventbridge: Process) -> None:
    eventbridge.start()
    status, body = eventbridge.api("GET", "/api/v1/workflows/default/nope")
    assert status == 404 and body["message"]
    status, _, raw = http(
        "POST", eventbridge.url + "/api/v1/workflows/default", b"{oops", {"Content-Type": "application/json"}
    )
    assert status == 400 and json.loads(raw)["message"]
    status, body = eventbridge.api("GET", "/api/v1/nothing-here")
    assert status == 404 and body["message"]
    status, body = eventbridge.api("GET", "/api/v1/workflows/..%2F..%2Fetc")
    assert status in (400, 404)
    status, body = eventbridge.api(
        "POST",
        "/api/v1/workflows/default",
        {
            "workflow": {
                "metadata": {"generateName": "bad-"},
                "spec": {
                    "entrypoint": "missing",
                    "templates": [{"name": "main", "container": {"image": "x", "command": ["true"]}}],
                },
            }
        },
    )
    assert status == 400 and "missing" in body["message"]
    status, body = eventbridge.api("DELETE", "/api/v1/workflows/default/nope")
    assert status == 404


def test_submit_wait_and_delete_through_the_api(eventbridge: Process) -> None:
    eventbridge.start()
    workflow_file = eventbridge.tmp / "wf.yaml"
    workflow_file.write_text("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: submitted-
spec:
  entrypoint: main
  arguments:
    parameters: [{name: who, value: nobody}]
  templates:
    - name: main
      inputs:
        parameters: [{name: who}]
      container:
        image: alpine
        command: [sh, -c]
        args: ["echo hi {{inputs.parameters.who}}"]
""")
    result = eventbridge.cli("submit", str(workflow_file), "-p", "who=alice", "--wait", "-o", "json")
    workflow = json.loads(result.stdout)
    assert workflow["status"]["phase"] == "Succeeded"
    name = workflow["metadata"]["name"]
    assert "hi alice" in eventbridge.cli("logs", name).stdout
    eventbridge.cli("delete", name)
    assert eventbridge.cli("get", name, check=False).returncode == 1


def test_secret_from_the_environment_when_no_manifest_has_it(eventbridge: Process) -> None:
    source = SECRET_AND_SOURCE.split("---", 1)[1]  # the EventSource without its Secret manifest
    eventbridge.write("source.yaml", source)
    eventbridge.start({"EVENTBRIDGE_SECRET_WEBHOOK_TOKEN_TOKEN": "from-env"})
    base = f"http://127.0.0.1:{eventbridge.webhook_port}/push"
    headers = {"Content-Type": "application/json"}
    assert http("POST", base, b"{}", {**headers, "Authorization": "Bearer from-env"})[0] == 200
    assert http("POST", base, b"{}", {**headers, "Authorization": "Bearer s3cr3t-t0ken"})[0] == 401
