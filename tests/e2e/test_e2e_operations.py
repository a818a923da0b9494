"""Templates, cron workflows and workflow operations through the CLI against a running server."""

from __future__ import annotations

import json

from harness import Process

TEMPLATE = """
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: greeter
spec:
  entrypoint: main
  arguments:
    parameters: [{name: who, value: world}]
  templates:
    - name: main
      inputs: {parameters: [{name: who}]}
      container: {image: alpine, command: [echo, "hello {{inputs.parameters.who}}"]}
"""

CRON = """
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: nightly
spec:
  schedules: ["0 3 * * *"]
  timezone: Europe/Paris
  workflowSpec:
    entrypoint: main
    templates:
      - name: main
        container: {image: alpine, command: [echo, nightly run]}
"""

APPROVAL = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: approval-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: wait, template: approve}
        - - {name: done, template: say}
    - name: approve
      suspend: {}
    - name: say
      container: {image: alpine, command: [echo, approved]}
"""


def test_templates_cron_and_operations(eventbridge: Process) -> None:
    eventbridge.start()
    (eventbridge.tmp / "template.yaml").write_text(TEMPLATE)
    (eventbridge.tmp / "cron.yaml").write_text(CRON)
    eventbridge.cli("template", "create", "template.yaml")
    assert "greeter" in eventbridge.cli("template", "list").stdout
    eventbridge.cli("cron", "create", "cron.yaml")
    assert "0 3 * * *" in eventbridge.cli("cron", "list").stdout

    from_template = json.loads(
        eventbridge.cli("submit", "--from", "workflowtemplate/greeter", "-p", "who=ops", "--wait", "-o", "json").stdout
    )
    assert from_template["status"]["phase"] == "Succeeded"
    assert "hello ops" in eventbridge.cli("logs", from_template["metadata"]["name"]).stdout

    from_cron = json.loads(eventbridge.cli("submit", "--from", "cronwf/nightly", "--wait", "-o", "json").stdout)
    assert from_cron["status"]["phase"] == "Succeeded"

    eventbridge.cli("cron", "suspend", "nightly")
    status, cron = eventbridge.api("GET", "/api/v1/cron-workflows/default/nightly")
    assert status == 200 and cron["spec"]["suspend"] is True

    (eventbridge.tmp / "approval.yaml").write_text(APPROVAL)
    submitted = json.loads(eventbridge.cli("submit", "approval.yaml", "-o", "json").stdout)
    name = submitted["metadata"]["name"]

    def suspended() -> bool:
        status = eventbridge.api("GET", f"/api/v1/workflows/default/{name}")[1].get("status") or {}
        return any(
            n.get("type") == "Suspend" and n.get("phase") == "Running" for n in (status.get("nodes") or {}).values()
        )

    eventbridge.wait_for(suspended, 30, "the suspend node")
    eventbridge.cli("resume", name)
    assert eventbridge.cli("wait", name).stdout.strip() == f"{name} Succeeded"
    final = json.loads(eventbridge.cli("get", name, "-o", "json").stdout)
    assert final["status"]["phase"] == "Succeeded", final["status"]
    eventbridge.cli("template", "delete", "greeter")
    assert "greeter" not in eventbridge.cli("template", "list").stdout
