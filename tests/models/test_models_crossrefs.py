"""Lint across manifests: sensor dependencies and template references that point at nothing loaded."""

from __future__ import annotations

from pathlib import Path

from eventbridge.models.crossrefs import cross_references
from eventbridge.models.lint import lint_paths
from eventbridge.models.loader import Diagnostic, load_text

EVENT_SOURCES = """\
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: webhook}
spec:
  webhook:
    example: {port: "12000", endpoint: /example, method: POST}
    deploy: {port: "12000", endpoint: /deploy, method: POST}
---
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: github}
spec:
  calendar:
    nightly: {schedule: "0 2 * * *"}
"""

SENSOR = """\
apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: ci}
spec:
  dependencies:
    - {name: ok, eventSourceName: webhook, eventName: example}
    - {name: typo-event, eventSourceName: webhook, eventName: exampel}
    - {name: typo-source, eventSourceName: webhok, eventName: example}
  triggers:
    - template:
        name: run
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: ci-}
              spec:
                workflowTemplateRef: {name: build-typo}
    - template:
        name: parameterized
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata: {generateName: ci-}
              spec:
                workflowTemplateRef: {name: placeholder}
          parameters:
            - src: {dependencyName: ok, dataKey: body.template}
              dest: spec.workflowTemplateRef.name
"""

TEMPLATES = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: build}
spec:
  entrypoint: main
  templates:
    - name: main
      container: {image: alpine, command: [echo, hi]}
    - name: test
      container: {image: alpine, command: [echo, ok]}
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata: {name: shared}
spec:
  templates:
    - name: notify
      container: {image: alpine, command: [echo, sent]}
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: uses-refs}
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - {name: good, templateRef: {name: build, template: test}}
          - {name: no-such-template, templateRef: {name: build, template: tset}}
          - {name: cluster-good, templateRef: {name: shared, template: notify, clusterScope: true}}
          - {name: cluster-missing, templateRef: {name: sharde, template: notify, clusterScope: true}}
          - {name: templated, templateRef: {name: "{{workflow.parameters.t}}", template: main}}
    - name: graph
      dag:
        tasks:
          - {name: a, templateRef: {name: biuld, template: main}}
---
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: nightly}
spec:
  schedules: ["0 3 * * *"]
  workflowSpec:
    workflowTemplateRef: {name: build}
"""


def _messages(diagnostics: list[Diagnostic]) -> dict[tuple[str, str], str]:
    return {(f"{d.kind}/{d.name}", d.path): d.message for d in diagnostics}


def test_sensor_dependencies_are_checked_against_the_loaded_event_sources() -> None:
    result = load_text(EVENT_SOURCES + "---\n" + SENSOR + "---\n" + TEMPLATES)
    assert not result.errors
    found = _messages(cross_references(result.objects))

    assert (
        "has no event 'exampel' (its events: deploy, example)" in found[("Sensor/ci", "spec.dependencies.1.eventName")]
    )
    assert (
        "no EventSource 'webhok' is loaded in namespace 'default' (loaded: github, webhook)"
        in found[("Sensor/ci", "spec.dependencies.2.eventSourceName")]
    )
    assert ("Sensor/ci", "spec.dependencies.0.eventName") not in found
    assert ("Sensor/ci", "spec.dependencies.0.eventSourceName") not in found


def test_template_references_are_checked_against_the_loaded_templates() -> None:
    result = load_text(EVENT_SOURCES + "---\n" + SENSOR + "---\n" + TEMPLATES)
    found = _messages(cross_references(result.objects))
    steps = "spec.templates.0.steps.0"

    assert found[("Workflow/uses-refs", f"{steps}.1.templateRef.template")] == (
        "WorkflowTemplate 'build' has no template 'tset' (its templates: main, test)"
    )
    assert (
        "no ClusterWorkflowTemplate 'sharde' is loaded (loaded: shared)"
        in found[("Workflow/uses-refs", f"{steps}.3.templateRef.name")]
    )
    assert (
        "no WorkflowTemplate 'biuld' is loaded in namespace 'default'"
        in found[("Workflow/uses-refs", "spec.templates.1.dag.tasks.0.templateRef.name")]
    )
    assert (
        "no WorkflowTemplate 'build-typo'"
        in found[("Sensor/ci", "spec.triggers.0.template.argoWorkflow.source.resource.spec.workflowTemplateRef.name")]
    )
    # what resolves, or is built from parameters, is left alone
    for index in (0, 2, 4):
        assert not any(path.startswith(f"{steps}.{index}.") for _, path in found)
    assert not any(path.startswith("spec.triggers.1.") for _, path in found)
    assert not any(kind == "CronWorkflow/nightly" for kind, _ in found)
    assert len(found) == 6, found


def test_nothing_is_reported_when_the_other_kind_is_not_among_the_manifests() -> None:
    """Linting a sensor or a workflow alone: its event sources and templates may live elsewhere."""
    alone = load_text(SENSOR + "---\n" + TEMPLATES.split("---\n")[2])
    assert cross_references(alone.objects) == []


def test_an_embedded_resource_resolves_in_its_own_namespace() -> None:
    before = "metadata: {generateName: ci-}\n              spec:\n"
    before += "                workflowTemplateRef: {name: build-typo}"
    after = "metadata: {generateName: ci-, namespace: other}\n              spec:\n"
    after += "                workflowTemplateRef: {name: build}"
    assert before in SENSOR
    text = TEMPLATES.split("---\n")[0] + "---\n" + SENSOR.replace(before, after)
    found = _messages(cross_references(load_text(text).objects))
    # 'build' is loaded in 'default' only, and the workflow is created in 'other'; nothing else of
    # that kind is loaded in 'other', so the reference may be satisfied elsewhere: no warning
    assert not any(kind == "Sensor/ci" and "workflowTemplateRef" in path for kind, path in found)


def test_lint_reports_them_as_warnings_with_lines(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(EVENT_SOURCES)
    (tmp_path / "sensor.yaml").write_text(SENSOR)
    diagnostics, code = lint_paths([tmp_path])
    assert code == 0  # warnings only: the other object may come from the API or the cluster
    typo = next(d for d in diagnostics if d.path == "spec.dependencies.1.eventName")
    assert typo.severity == "warning"
    assert typo.file.endswith("sensor.yaml")
    assert SENSOR.splitlines()[typo.line - 1].strip().startswith("- {name: typo-event")
    assert "sensor.yaml:7: Sensor/ci: spec.dependencies.1.eventName: warning: EventSource 'webhook'" in str(typo)
