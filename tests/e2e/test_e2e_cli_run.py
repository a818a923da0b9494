"""`eventbridge run` and `eventbridge lint` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

STEPS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: steps-
spec:
  entrypoint: main
  arguments:
    parameters: [{name: greeting, value: hello}]
  templates:
    - name: main
      steps:
        - - name: first
            template: say
            arguments: {parameters: [{name: text, value: "{{workflow.parameters.greeting}}"}]}
        - - name: second
            template: say
            arguments: {parameters: [{name: text, value: "{{steps.first.outputs.result}} again"}]}
    - name: say
      inputs: {parameters: [{name: text}]}
      container: {image: busybox, command: [echo, "{{inputs.parameters.text}}"]}
"""


def eventbridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbridge", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_run_succeeds_with_parameters(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(STEPS)
    result = eventbridge("run", "wf.yaml", "-p", "greeting=bonjour", "-o", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    workflow = json.loads(result.stdout)
    results = sorted(n["outputs"]["result"] for n in workflow["status"]["nodes"].values() if n["type"] == "Pod")
    assert results == ["bonjour", "bonjour again"]


def test_run_exits_1_when_the_workflow_fails(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(STEPS.replace("command: [echo,", "command: [sh, -c, 'exit 3',"))
    result = eventbridge("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "Failed" in result.stdout


def test_lint_reports_file_line_kind_field_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(STEPS)
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata:\n  name: s\nspec:\n"
        "  dependencies:\n    - name: d\n      eventSourceName: 12\n"
        "  triggers: not-a-list\n"
    )
    result = eventbridge("lint", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.yaml'}:9: Sensor/s: spec.triggers:" in result.stdout
    clean = eventbridge("lint", str(tmp_path / "ok.yaml"), cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout
