"""Lint: unsupported and unknown fields, output format, exit codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from eventbridge.models.base import ArgoModel, Manifest, unsupported
from eventbridge.models.kinds import KINDS
from eventbridge.models.lint import UNKNOWN_FIELD, format_diagnostics, lint, lint_paths, model_warnings
from eventbridge.models.loader import Diagnostic, load_text


class Leaf(ArgoModel):
    name: str = ""
    retries: int | None = unsupported("retries are not supported yet")


class Branch(ArgoModel):
    leaves: list[Leaf] = Field(default_factory=list)
    by_name: dict[str, Leaf] = Field(default_factory=dict)
    raw: dict[str, Any] | None = None


class TreeSpec(ArgoModel):
    branches: list[Branch] = Field(default_factory=list)
    legacy: dict[str, Any] | None = unsupported("legacy mode is gone")


class Tree(Manifest):
    kind: Literal["Tree"] = "Tree"
    API_VERSION: ClassVar[str] = "test.eventbridge.io/v1"
    spec: TreeSpec = Field(default_factory=TreeSpec)


TREE = """\
apiVersion: test.eventbridge.io/v1
kind: Tree
metadata:
  name: oak
spec:
  legacy: {on: true}
  branches:
    - leaves:
        - name: a
          retries: 3
        - name: b
          retries: 0
          colour: green
      byName:
        x:
          name: x
          retries: 2
      raw:
        anything: goes
"""


@pytest.fixture
def tree_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(KINDS, ("test.eventbridge.io/v1", "Tree"), Tree)


@pytest.mark.usefixtures("tree_kind")
def test_unsupported_and_unknown_fields_are_warned_at_their_lines() -> None:
    diagnostics = lint(load_text(TREE, "tree.yaml"))
    assert [str(d) for d in diagnostics] == [
        "tree.yaml:6: Tree/oak: spec.legacy: warning: legacy mode is gone",
        "tree.yaml:10: Tree/oak: spec.branches.0.leaves.0.retries: warning: retries are not supported yet",
        f"tree.yaml:13: Tree/oak: spec.branches.0.leaves.1.colour: warning: {UNKNOWN_FIELD}",
        "tree.yaml:17: Tree/oak: spec.branches.0.byName.x.retries: warning: retries are not supported yet",
    ]
    assert all(d.severity == "warning" for d in diagnostics)


@pytest.mark.usefixtures("tree_kind")
def test_model_warnings_walks_models_built_in_python() -> None:
    tree = Tree.model_validate(
        {"kind": "Tree", "metadata": {"name": "t"}, "spec": {"branches": [{"leaves": [{"retries": 1}]}]}}
    )
    assert model_warnings(tree) == [
        (("spec", "branches", 0, "leaves", 0, "retries"), "retries are not supported yet")
    ]


def test_unknown_top_level_and_metadata_fields() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  colour: red\ndata: {}\nweird: 1\n"
    assert [str(d) for d in lint(load_text(text, "c.yaml"))] == [
        f"c.yaml:5: ConfigMap/c: metadata.colour: warning: {UNKNOWN_FIELD}",
        f"c.yaml:7: ConfigMap/c: weird: warning: {UNKNOWN_FIELD}",
    ]


def test_event_bus_jetstream_says_what_is_used() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\n"
        "spec:\n  jetstream:\n    version: latest\n"
        "    streamConfig: |\n      maxAge: 24h\n      maxMsgs: 500\n      replicas: 3\n      maxBytes: 1GB\n"
    )
    assert [str(d) for d in lint(load_text(text, "eb.yaml"))] == [
        "eb.yaml:5: EventBus/default: spec.jetstream: warning: "
        "embedded mode keeps events in its SQLite log: of this bus only streamConfig's maxAge and maxMsgs are "
        "used, as the log's retention (EVENTBRIDGE_BUS_MAX_AGE and EVENTBRIDGE_BUS_MAX_EVENTS win when set); "
        "cluster mode uses spec.kafka",
        "eb.yaml:7: EventBus/default: spec.jetstream.streamConfig: warning: "
        "maxBytes, replicas: not used (embedded mode reads only maxAge and maxMsgs)",
    ]


def test_event_bus_nats_streaming_is_unsupported() -> None:
    text = (
        "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\n"
        "spec:\n  nats:\n    native: {}\n"
    )
    assert [str(d) for d in lint(load_text(text, "eb.yaml"))] == [
        "eb.yaml:5: EventBus/default: spec.nats: warning: "
        "embedded mode uses the SQLite log (its retention: EVENTBRIDGE_BUS_MAX_AGE, EVENTBRIDGE_BUS_MAX_EVENTS); "
        "cluster mode uses kafka"
    ]


def test_lint_paths_exit_codes_and_format(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n")
    diagnostics, code = lint_paths([good])
    assert (diagnostics, code) == ([], 0)
    assert format_diagnostics(diagnostics) == "no problems found"

    warned = tmp_path / "warned.yaml"
    warned.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    diagnostics, code = lint_paths([warned])
    assert code == 0
    assert format_diagnostics(diagnostics) == (
        f"{warned}:2: Service/s: warning: kind Service is not used by eventbridge; ignored\n"
        "0 errors, 1 warning"
    )

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: [1]}\n")
    diagnostics, code = lint_paths([tmp_path])
    assert code == 1
    assert format_diagnostics(diagnostics, summary=False).splitlines() == [
        f"{bad}:4: ConfigMap/c: data.a: Input should be a valid string",
        f"{warned}:2: Service/s: warning: kind Service is not used by eventbridge; ignored",
    ]
    assert format_diagnostics(diagnostics).splitlines()[-1] == "1 error, 1 warning"


def test_diagnostic_string_forms() -> None:
    error = Diagnostic("f.yaml", 3, "Sensor", "s", "spec.triggers.0.template.name", "required", "error")
    assert str(error) == "f.yaml:3: Sensor/s: spec.triggers.0.template.name: required"
    warning = Diagnostic("f.yaml", 4, "Sensor", "s", "spec.x", "unknown field (kept, not used)", "warning")
    assert str(warning) == "f.yaml:4: Sensor/s: spec.x: warning: unknown field (kept, not used)"
    file_level = Diagnostic("f.yaml", 0, "", "", "", "cannot read: Permission denied")
    assert str(file_level) == "f.yaml:0: cannot read: Permission denied"
    unnamed = Diagnostic("f.yaml", 1, "Workflow", "", "", "boom")
    assert str(unnamed) == "f.yaml:1: Workflow/(unnamed): boom"
