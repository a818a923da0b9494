"""Planted secrets never show: a webhook authSecret, a GitHub webhookSecret and apiToken, an http
trigger's secureHeaders and basicAuth, an SQS secretKey and a Kafka SASL password are configured on
a real `eventbridge up` (and a MinIO secret key); events flow, triggers fire and fail, sources fail to connect. Then the
process log, every API answer (sources, sensors, traces, event log, workflows, metrics), every UI
page and `eventbridge sensor test` are searched for each secret, raw and base64/hex-encoded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from faults_helpers import eventually, recorder
from harness import Process, http

SECRETS = {
    "webhook": "planted-webhook-token-5b9e1",
    "github": "planted-github-hmac-7c2d4",
    "token": "planted-github-api-token-91aa0",
    "header": "planted-secure-header-3f8e2",
    "password": "planted-basic-password-6d0c7",
    "aws": "planted-sqs-secret-key-2e4f9",
    "sasl": "planted-kafka-sasl-password-8a1b3",
    "minio": "planted-minio-secret-key-4c7d2",
}

MANIFESTS = """
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData:
  webhook: WEBHOOK_SECRET
  github: GITHUB_SECRET
  token: TOKEN_SECRET
  header: HEADER_SECRET
  password: PASSWORD_SECRET
  aws-id: AKIAPLANTEDID
  aws: AWS_SECRET
  sasl-user: eventbridge
  sasl: SASL_SECRET
  minio-id: planted-minio-id
  minio: MINIO_SECRET
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: guarded}
spec:
  webhook:
    push:
      port: "WEBHOOK_PORT"
      endpoint: /push
      method: POST
      authSecret: {name: creds, key: webhook}
  github:
    gh:
      repositories: [{owner: acme, names: [app]}]
      events: [push]
      webhook: {port: "WEBHOOK_PORT", endpoint: /github, method: POST, url: "http://127.0.0.1:1"}
      webhookSecret: {name: creds, key: github}
      apiToken: {name: creds, key: token}
      githubBaseURL: RECORDER/github-api/
      githubUploadURL: RECORDER/github-upload/
  sqs:
    queue:
      region: us-east-1
      queue: planted
      endpoint: http://127.0.0.1:1
      waitTimeSeconds: 1
      accessKey: {name: creds, key: aws-id}
      secretKey: {name: creds, key: aws}
  kafka:
    topic:
      url: 127.0.0.1:1
      topic: planted
      partition: "0"
      sasl:
        mechanism: PLAIN
        userSecret: {name: creds, key: sasl-user}
        passwordSecret: {name: creds, key: sasl}
  minio:
    lake:
      bucket: {name: planted}
      endpoint: 127.0.0.1:1
      insecure: true
      events: ["s3:ObjectCreated:Put"]
      accessKey: {name: creds, key: minio-id}
      secretKey: {name: creds, key: minio}
---
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: guarded}
spec:
  dependencies:
    - {name: push, eventSourceName: guarded, eventName: push}
    - {name: gh, eventSourceName: guarded, eventName: gh}
  triggers:
    - template:
        name: notify
        conditions: push
        http:
          url: RECORDER/notify
          secureHeaders:
            - name: X-Api-Key
              valueFrom: {secretKeyRef: {name: creds, key: header}}
          basicAuth:
            username: {name: creds, key: webhook}
            password: {name: creds, key: password}
          payload:
            - {src: {dependencyName: push, dataKey: body}, dest: body}
    - template:
        name: notify-failing
        conditions: push
        http:
          url: RECORDER/fail
          secureHeaders:
            - name: X-Api-Key
              valueFrom: {secretKeyRef: {name: creds, key: header}}
      retryStrategy: {steps: 2, duration: 100ms}
    - template:
        name: run
        conditions: "push || gh"
        argoWorkflow:
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: guarded-}
              spec:
                entrypoint: main
                templates:
                  - {name: main, container: {image: x, command: [sh, -c, "echo done"]}}
"""


def _forms(secret: str) -> list[str]:
    """The secret as it could leak: raw, base64 (alone and in user:password), URL-quoted, hex."""
    forms = {secret, base64.b64encode(secret.encode()).decode(), quote(secret), secret.encode().hex()}
    forms.add(base64.b64encode(f"{SECRETS['webhook']}:{SECRETS['password']}".encode()).decode())
    return sorted(forms)


def _leaks(where: str, text: str) -> list[str]:
    return [f"{where}: {name}" for name, secret in SECRETS.items() for form in _forms(secret) if form in text]


async def test_planted_secrets_never_show(eventbridge: Process, tmp_path: Path) -> None:
    async with recorder() as server:
        server.behaviour = {"/fail": ("status", 500), "/github-api/repos/acme/app/hooks": ("status", 401)}
        text = MANIFESTS.replace("RECORDER", server.url)
        for name, secret in SECRETS.items():
            text = text.replace(f"{name.upper()}_SECRET", secret)
        sensor_file = eventbridge.write("guarded.yaml", text)
        await asyncio.to_thread(eventbridge.start)

        status, answer = eventbridge.post_event("/push", {"hello": "world"},
                                                {"Authorization": f"Bearer {SECRETS['webhook']}"})  # fmt: skip
        assert status == 200, answer
        wrong = eventbridge.post_event("/push", {"x": 1}, {"Authorization": f"Bearer {SECRETS['webhook']}x"})
        assert wrong[0] == 401
        body = json.dumps({"ref": "refs/heads/main"}).encode()
        signature = "sha256=" + hmac.new(SECRETS["github"].encode(), body, hashlib.sha256).hexdigest()
        status, _, raw = http("POST", f"http://127.0.0.1:{eventbridge.webhook_port}/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1",
            "X-Hub-Signature-256": signature,
        })  # fmt: skip
        assert status == 200, raw
        bad = http("POST", f"http://127.0.0.1:{eventbridge.webhook_port}/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00",
        })  # fmt: skip
        assert bad[0] == 401

        await eventually(lambda: len(server.paths("/notify")) == 1 and len(server.paths("/fail")) == 2, 30,
                         "the http triggers")  # fmt: skip
        await eventually(lambda: len(eventbridge.workflows()) == 2, 30, "the workflows")
        await eventually(lambda: bool(server.paths("/github-api/repos/acme/app/hooks")), 30, "the hook call")
        await asyncio.sleep(2.5)  # the sqs and kafka sources fail to connect and log it meanwhile

        leaks: list[str] = []
        for path in [
            "/api/v1/event-sources/", "/api/v1/event-sources/default/guarded", "/api/v1/sensors/",
            "/api/v1/sensors/default/guarded", "/api/v1/sensors/default/guarded/traces", "/api/v1/event-log",
            "/api/v1/workflows/default", "/metrics", "/", "/eventsources", "/sensors", "/sensors/default/guarded",
            "/events", "/workflows", "/templates", "/cron",
        ]:  # fmt: skip
            status, _, raw = http("GET", eventbridge.url + path)
            assert status == 200, (path, raw[:200])
            leaks += _leaks(path, raw.decode(errors="replace"))
        for workflow in eventbridge.workflows():
            name = workflow["metadata"]["name"]
            for path in (f"/api/v1/workflows/default/{name}", f"/workflows/default/{name}",
                         f"/api/v1/workflows/default/{name}/log?logOptions.container=main"):  # fmt: skip
                leaks += _leaks(path, http("GET", eventbridge.url + path)[2].decode(errors="replace"))

        event_file = tmp_path / "event.json"
        event_file.write_text(json.dumps({"specversion": "1.0", "id": "1", "source": "guarded", "subject": "push",
                                          "type": "webhook", "data": {"body": {"a": 1}}}))  # fmt: skip
        dry_run = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "eventbridge", "sensor", "test", str(sensor_file), "--event", str(event_file),
             "--name", "guarded", "-o", "json"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert dry_run.returncode == 0, dry_run.stderr
        leaks += _leaks("eventbridge sensor test", dry_run.stdout + dry_run.stderr)

    eventbridge.stop()
    log = eventbridge.log.read_text()
    leaks += _leaks("process log", log)
    # The secrets did reach where they belong, so the search above was not vacuous.
    notify = server.paths("/notify")[0]
    assert notify.body == {"body": '{"hello":"world"}'}
    assert notify.headers["X-Api-Key"] == SECRETS["header"]
    assert base64.b64decode(notify.headers["Authorization"].split()[1]).decode().endswith(SECRETS["password"])
    assert "sqs" in log.lower() and "kafka" in log.lower() and "minio" in log.lower()
    assert leaks == []
