"""Hot reload: changed manifests apply live; a broken file keeps its last good objects running."""

from __future__ import annotations

import time

from harness import Process, finished

SOURCE = """
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: hooks
spec:
  webhook:
    first:
      port: "WEBHOOK_PORT"
      endpoint: ENDPOINT
      method: POST
"""

SENSOR = """
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: hooks
spec:
  dependencies:
    - name: dep
      eventSourceName: hooks
      eventName: first
  triggers:
    - template:
        name: run
        argoWorkflow:
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: PREFIX-}
              spec:
                entrypoint: main
                templates:
                  - name: main
                    container: {image: x, command: ["true"]}
"""


def endpoint_status(process: Process, endpoint: str) -> int:
    return process.post_event(endpoint, {"x": 1})[0]


def test_changes_apply_live_and_broken_files_keep_last_good(eventbridge: Process) -> None:
    eventbridge.write("source.yaml", SOURCE.replace("ENDPOINT", "/one"))
    eventbridge.write("sensor.yaml", SENSOR.replace("PREFIX", "alpha"))
    eventbridge.start()
    assert endpoint_status(eventbridge, "/one") == 200

    # Move the endpoint: the old path is gone, the new one answers.
    eventbridge.write("source.yaml", SOURCE.replace("ENDPOINT", "/two"))
    eventbridge.wait_for(lambda: endpoint_status(eventbridge, "/two") == 200, 15, "the new endpoint")
    assert endpoint_status(eventbridge, "/one") == 404

    # Break the sensor file: it is reported and the previous sensor keeps firing.
    eventbridge.write("sensor.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: hooks\n")
    eventbridge.wait_for(
        lambda: (
            "sensor.yaml" in eventbridge.log.read_text().split("the new endpoint")[-1]
            and "error" in eventbridge.log.read_text().lower()
        ),
        15,
        "the error report",
    )
    time.sleep(0.5)
    assert endpoint_status(eventbridge, "/two") == 200
    # Three events so far (/one, the /two probe, the one after the break), all fired by "alpha".
    eventbridge.wait_for(
        lambda: (
            len(eventbridge.workflows()) == 3
            and all(w["metadata"]["name"].startswith("alpha-") and finished(w) for w in eventbridge.workflows())
        ),
        30,
        "the old sensor to fire",
    )

    # Fix it with a new prefix: new events use the new version.
    eventbridge.write("sensor.yaml", SENSOR.replace("PREFIX", "beta"))
    time.sleep(1.5)
    assert endpoint_status(eventbridge, "/two") == 200
    eventbridge.wait_for(
        lambda: any(w["metadata"]["name"].startswith("beta-") for w in eventbridge.workflows()),
        30,
        "the fixed sensor to fire",
    )
