"""Pure pieces of the workflow engine: model checks, `{{...}}` substitution, `when`, `depends`, naming."""

from __future__ import annotations

import pytest

from eventbridge.errors import ExprError
from eventbridge.expr.template import substitute, substitute_all
from eventbridge.expr.when import evaluate_when
from eventbridge.models.workflow import CronWorkflow, Workflow, WorkflowTemplate
from eventbridge.workflow.depends import evaluate_depends
from eventbridge.workflow.nodes import fnv32a, node_id, parse_duration


def workflow(spec: dict[str, object]) -> Workflow:
    return Workflow.model_validate({"metadata": {"name": "w"}, "spec": spec})


def messages(wf: Workflow | WorkflowTemplate | CronWorkflow) -> list[str]:
    return [f.message for f in wf.check() if f.severity == "error"]


def test_check_reports_what_argo_rejects() -> None:
    assert messages(workflow({"templates": [{"name": "a", "container": {"command": ["x"]}}]})) == [
        "spec.entrypoint is required"
    ]
    found = messages(
        workflow(
            {
                "entrypoint": "main",
                "templates": [
                    {
                        "name": "main",
                        "steps": [[{"name": "s", "template": "ghost"}, {"name": "s", "template": "main"}]],
                    },
                    {"name": "main", "container": {"command": ["x"]}},
                    {"name": "empty"},
                ],
            }
        )
    )
    assert any("used twice" in m and "'main'" in m for m in found)
    assert any("unknown template 'ghost'" in m for m in found)
    assert any("step name 's' is used twice" in m for m in found)
    assert any("'empty' has no type" in m for m in found)


def test_check_finds_dag_cycles_and_unknown_dependencies() -> None:
    found = messages(
        workflow(
            {
                "entrypoint": "d",
                "templates": [
                    {
                        "name": "d",
                        "dag": {
                            "tasks": [
                                {"name": "a", "template": "t", "dependencies": ["c"]},
                                {"name": "b", "template": "t", "depends": "a.Succeeded"},
                                {"name": "c", "template": "t", "depends": "b || zz"},
                            ]
                        },
                    },
                    {"name": "t", "container": {"command": ["true"]}},
                ],
            }
        )
    )
    assert any("cycle" in m for m in found)
    assert any("unknown task 'zz'" in m for m in found)


def test_valid_workflow_and_template_have_no_errors() -> None:
    wf = workflow({"entrypoint": "m", "templates": [{"name": "m", "script": {"command": ["sh"], "source": "true"}}]})
    assert messages(wf) == []
    tmpl = WorkflowTemplate.model_validate(
        {
            "metadata": {"name": "t"},
            "spec": {"templates": [{"name": "m", "container": {"command": ["true"]}}]},
        }
    )
    assert messages(tmpl) == []


def test_numbers_in_parameters_become_strings_and_round_trip() -> None:
    wf = workflow(
        {
            "entrypoint": "m",
            "arguments": {"parameters": [{"name": "n", "value": 3}, {"name": "b", "value": True}]},
            "templates": [{"name": "m", "container": {"command": ["true"]}, "unknownField": 1}],
        }
    )
    params = wf.spec.arguments.parameters if wf.spec.arguments else None
    assert params is not None and [p.value for p in params] == ["3", "true"]
    assert wf.dump()["spec"]["templates"][0]["unknownField"] == 1


def test_cron_workflow_accepts_legacy_schedule() -> None:
    cron = CronWorkflow.model_validate(
        {
            "metadata": {"name": "c"},
            "spec": {
                "schedule": "* * * * *",
                "schedules": ["0 1 * * *"],
                "concurrencyPolicy": "Forbid",
                "workflowSpec": {
                    "entrypoint": "m",
                    "templates": [{"name": "m", "container": {"command": ["true"]}}],
                },
            },
        }
    )
    assert cron.spec.all_schedules() == ["* * * * *", "0 1 * * *"]
    assert messages(cron) == []
    bare = CronWorkflow.model_validate(
        {
            "metadata": {"name": "c"},
            "spec": {
                "workflowSpec": {
                    "entrypoint": "m",
                    "templates": [{"name": "m", "container": {"command": ["true"]}}],
                }
            },
        }
    )
    assert "at least one schedule is required" in messages(bare)


def test_substitute_replaces_known_and_rejects_unknown_workflow_variables() -> None:
    scope = {"inputs.parameters.x": "1", "workflow.name": "w"}
    assert substitute("a {{inputs.parameters.x}} {{ workflow.name }}", scope) == "a 1 w"
    assert substitute("shell {{not.ours}} stays", scope) == "shell {{not.ours}} stays"
    assert substitute("{{=expr}}", scope, expression=None) == "{{=expr}}"
    assert substitute("{{= inputs.parameters.x + '2' }}!", scope) == "12!"
    with pytest.raises(ExprError, match="unknown name expr"):
        substitute("{{=expr}}", scope)
    with pytest.raises(ExprError, match=r"failed to resolve \{\{inputs.parameters.y\}\}"):
        substitute("{{inputs.parameters.y}}", scope)
    assert substitute_all({"a": ["{{workflow.name}}", 3]}, scope) == {"a": ["w", 3]}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("heads == heads", True),
        ("tails == heads", False),
        ("5 > 3 && 2 <= 2", True),
        ("10 < 9 || !(a == b)", True),
        ("'a b' != \"a b\"", False),
        ("abc =~ '^a'", True),
        ("abc !~ '^a'", False),
        ("3 in (1, 2, 3)", True),
        ("true == true", True),
        ("my-val == my-val", True),
        ("1.5 > 1", True),
        ("(1 + 2) * 2 == 6", True),
    ],
)
def test_when(expression: str, expected: bool) -> None:
    assert evaluate_when(expression) is expected


@pytest.mark.parametrize("expression", ["heads", "1 +", "(1 == 1", "a < 3", "1 / 0 == 1", "__import__('os') == 1"])
def test_when_rejects_malformed(expression: str) -> None:
    with pytest.raises(ExprError):
        evaluate_when(expression)


def test_depends() -> None:
    phases = {"a": "Succeeded", "b": "Failed", "c": "Skipped"}
    assert evaluate_depends("a && c", phases)
    assert not evaluate_depends("b", phases)
    assert evaluate_depends("b.Failed && !a.Failed", phases)
    assert evaluate_depends("(b.Succeeded || a.Succeeded) && c.Skipped", phases)
    assert evaluate_depends("x.AnySucceeded", {"x": "Failed"}, {"x": ["Failed", "Succeeded"]})
    assert not evaluate_depends("x.AllFailed", {"x": "Failed"}, {"x": ["Failed", "Succeeded"]})
    with pytest.raises(ExprError):
        evaluate_depends("a &&", phases)


def test_node_ids_are_deterministic() -> None:
    assert fnv32a("") == 0x811C9DC5
    assert fnv32a("a") == 0xE40C292C
    assert node_id("wf", "wf") == "wf"
    assert node_id("wf", "wf[0].a") == node_id("wf", "wf[0].a") != node_id("wf", "wf[0].b")


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration(None) is None
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_cron_workflow_lint_checks_schedules_and_timezone() -> None:
    def messages(spec: dict[str, object]) -> list[str]:
        cron = CronWorkflow.model_validate(
            {
                "metadata": {"name": "c"},
                "spec": {"workflowSpec": {"entrypoint": "m", "templates": [{"name": "m", "suspend": {}}]}, **spec},
            }
        )
        return [f.message for f in cron.check()]

    assert messages({"schedules": ["*/5 * * * *", "@daily", "@every 90s", "CRON_TZ=UTC 0 1 * * *"]}) == []
    assert "use 5 cron fields" in messages({"schedule": "* * * *"})[0]
    assert "@every needs a duration" in messages({"schedules": ["@every soon"]})[0]
    assert "unknown timezone" in messages({"schedules": ["* * * * *"], "timezone": "Mars/Base"})[0]
