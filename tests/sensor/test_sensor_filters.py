"""Dependency filters, table-driven from Argo Events' filter docs and filter.go semantics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from eventbridge.events import Event
from eventbridge.models.sensor import (
    DataFilter,
    EventContext,
    EventDependency,
    EventDependencyFilter,
    ExprFilter,
    PayloadField,
    TimeFilter,
)
from eventbridge.sensor.filters import (
    filter_data,
    filter_dependency,
    filter_event,
    filter_exprs,
    filter_time,
)

DATA: dict[str, Any] = {
    "header": {"Content-Type": ["application/json"]},
    "body": {
        "ref": "refs/heads/main",
        "action": "unlabeled",
        "value": 51.5,
        "count": 3,
        "numtext": "42",
        "flag": True,
        "nothing": None,
        "commits": [{"id": "a"}, {"id": "b"}],
    },
}


def event(data: Any = DATA, **overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "id": "e1",
        "source": "webhook",
        "subject": "example",
        "type": "webhook",
        "data": data,
        "time": datetime(2024, 5, 1, 10, 30, 0, tzinfo=UTC),
    }
    fields.update(overrides)
    return Event(**fields)


def df(path: str, kind: str, values: list[str], comparator: str | None = None) -> DataFilter:
    return DataFilter(path=path, type=kind, value=values, comparator=comparator)


# (path, type, values, comparator, expected)
DATA_CASES = [
    # string: unanchored regex search, = (default) and !=
    ("body.ref", "string", ["refs/heads/main"], None, True),
    ("body.ref", "string", ["main"], None, True),
    ("body.ref", "string", ["^main$"], None, False),
    ("body.ref", "string", ["dev", "ma.n"], "=", True),
    ("body.ref", "string", ["dev"], "=", False),
    ("body.ref", "string", ["dev"], "!=", True),
    ("body.ref", "string", ["main"], "!=", False),
    ("body.ref", "string", ["main", "dev"], "!=", True),  # any value not matching passes
    ("body.action", "string", ["labeled"], None, True),  # Argo issue 1515: search, not full match
    ("body.action", "string", ["^labeled$"], None, False),
    ("body.ref", "string", ["main"], ">", False),  # other comparators never match strings
    ("body.count", "string", ["^3$"], None, True),  # numbers are compared as Go prints them
    ("body.value", "string", [r"^51\.5$"], None, True),
    ("body.flag", "string", ["^true$"], None, True),
    ("body.nothing", "string", ["^$"], None, True),  # null is the empty string
    ("body.commits", "string", ['"id":"a"'], None, True),  # arrays as compact JSON
    ("header.Content-Type.0", "string", ["json"], None, True),
    # number: float, any value satisfying the comparator
    ("body.value", "number", ["51.5"], None, True),
    ("body.value", "number", ["51.5"], "=", True),
    ("body.value", "number", ["50"], "=", False),
    ("body.value", "number", ["50.0"], ">", True),
    ("body.value", "number", ["51.5"], ">", False),
    ("body.value", "number", ["51.5"], ">=", True),
    ("body.value", "number", ["60"], "<", True),
    ("body.value", "number", ["51.5"], "<", False),
    ("body.value", "number", ["51.5"], "<=", True),
    ("body.value", "number", ["51.5"], "!=", False),
    ("body.value", "number", ["51.5", "1"], "!=", True),  # Argo issue 3215: nearly always true
    ("body.value", "number", ["1", "2", "51.5"], None, True),
    ("body.count", "number", ["3"], None, True),
    ("body.numtext", "number", ["42"], None, True),  # numeric strings are parsed
    ("body.ref", "number", ["0"], None, True),  # a non-numeric string is 0, as gjson's Float()
    # bool: ParseBool of each value equals the event value; the comparator is ignored
    ("body.flag", "bool", ["true"], None, True),
    ("body.flag", "bool", ["false"], None, False),
    ("body.flag", "bool", ["false", "true"], None, True),
    ("body.flag", "bool", ["T"], None, True),
    ("body.flag", "bool", ["true"], "!=", True),
    ("body.count", "bool", ["true"], None, True),  # non-zero numbers are true
]


@pytest.mark.parametrize(("path", "kind", "values", "comparator", "expected"), DATA_CASES)
def test_data_filter_semantics(path: str, kind: str, values: list[str], comparator: str | None,
                               expected: bool) -> None:
    result = filter_data([df(path, kind, values, comparator)], None, DATA)
    assert result.passed is expected, result.reason
    assert result.error is None


def test_reason_explains_a_string_mismatch() -> None:
    result = filter_data([df("body.ref", "string", ["dev"])], None, {"body": {"ref": "refs/heads/main"}})
    assert not result.passed
    assert result.reason == "data filter 0: body.ref: 'refs/heads/main' does not match 'dev'"


@pytest.mark.parametrize(
    ("filters", "error_part"),
    [
        ([df("body.missing", "string", ["x"])], "path 'body.missing' does not exist"),
        ([df("body.ref", "string", [])], "no values specified"),
        ([df("body.ref", "string", ["(unclosed"])], "invalid regular expression"),
        ([df("body.value", "number", ["abc"])], "is not a number"),
        ([df("body.flag", "bool", ["yes"])], "is not a bool"),
        ([df("body.ref", "object", ["x"])], "unsupported JSON type 'object'"),
    ],
)
def test_data_filter_errors_fail_under_and(filters: list[DataFilter], error_part: str) -> None:
    result = filter_data(filters, "and", DATA)
    assert not result.passed
    assert result.error is not None and error_part in result.error


def test_a_value_json_cannot_write_fails_its_filter_not_the_event() -> None:
    """A float JSON cannot carry (inf, from a source that builds data itself) is a filter error
    under AND; under OR another filter may still pass (found by the fuzz tests)."""
    data = {"body": {"ratio": float("inf"), "ref": "main"}, "header": {}}
    result = filter_data([df("body", "string", ["x"])], "and", data)
    assert not result.passed
    assert result.error is not None
    assert result.error.startswith("data filter 0: value cannot be written as JSON")
    assert filter_data([df("body", "string", ["x"]), df("body.ref", "string", ["main"])], "or", data).passed


def test_and_requires_every_filter() -> None:
    filters = [df("body.ref", "string", ["main"]), df("body.value", "number", ["100"], ">")]
    assert not filter_data(filters, None, DATA).passed
    assert not filter_data(filters, "", DATA).passed
    assert filter_data(filters, "or", DATA).passed


def test_and_missing_path_fails_even_if_others_pass() -> None:
    filters = [df("body.ref", "string", ["main"]), df("body.missing", "string", ["x"])]
    result = filter_data(filters, "and", DATA)
    assert not result.passed and result.error


def test_or_first_passing_filter_wins_over_earlier_errors() -> None:
    filters = [df("body.missing", "string", ["x"]), df("body.ref", "string", ["main"])]
    result = filter_data(filters, "or", DATA)
    assert result.passed and result.error is None


def test_or_with_no_pass_reports_collected_errors() -> None:
    filters = [df("body.missing", "string", ["x"]), df("body.ref", "string", ["dev"])]
    result = filter_data(filters, "or", DATA)
    assert not result.passed
    assert result.error == "data filter errors [data filter 0: path 'body.missing' does not exist]"


def test_no_data_passes() -> None:
    assert filter_data([df("body.ref", "string", ["main"])], None, None).passed


# ---- exprs ----------------------------------------------------------------------------------


def ex(expr: str, **fields: str) -> ExprFilter:
    return ExprFilter(expr=expr, fields=[PayloadField(name=name, path=path) for name, path in fields.items()])


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('a == "refs/heads/main"', True),
        ('a == "x" || c > 50', True),
        ('a == "x" && c > 50', False),
        ("c >= 51.5 && n == 3", True),
        ('a =~ "heads/ma"', True),
        ('a !~ "^x"', True),
        ("f", True),
        ("!f", False),
        ("n in (1, 2, 3)", True),
        ('n == "3"', False),  # no coercion between strings and numbers
        ("c + n > 54", True),
        ("(c > 100 ? 1 : 2) == 2", True),
    ],
)
def test_expr_filters(expr: str, expected: bool) -> None:
    filters = [ex(expr, a="body.ref", c="body.value", n="body.count", f="body.flag")]
    result = filter_exprs(filters, None, DATA)
    assert result.passed is expected, result.reason
    assert result.error is None


def test_expr_errors() -> None:
    missing = filter_exprs([ex("a == 1", a="body.missing")], None, DATA)
    assert not missing.passed and missing.error and "does not exist" in missing.error
    bad_types = filter_exprs([ex("a > 1", a="body.ref")], None, DATA)
    assert not bad_types.passed and bad_types.error
    syntax = filter_exprs([ex("a ==", a="body.ref")], None, DATA)
    assert not syntax.passed and syntax.error


def test_expr_or_and_skipped_expression_without_fields() -> None:
    assert filter_exprs([ex("false"), ex("a == 1", a="body.count")], "and", DATA).passed is False
    assert filter_exprs([ex("nonsense ==")], "and", DATA).passed  # no fields: skipped, as in Argo
    either = [ex('a == "x"', a="body.ref"), ex("n == 3", n="body.count")]
    assert filter_exprs(either, "or", DATA).passed
    assert not filter_exprs(either, "and", DATA).passed


# ---- context and time ------------------------------------------------------------------------


def test_context_filter_matches_non_empty_fields_exactly() -> None:
    ok = EventDependencyFilter(context=EventContext(type="webhook", source="webhook", id="ignored"))
    assert filter_event(ok, None, event()).passed
    wrong = EventDependencyFilter(context=EventContext(subject="other"))
    result = filter_event(wrong, None, event())
    assert not result.passed
    assert result.reason == "context filter: subject is 'example', not 'other'"


@pytest.mark.parametrize(
    ("start", "stop", "timezone", "expected"),
    [
        ("10:00:00", "11:00:00", None, True),
        ("10:30:00", "11:00:00", None, True),  # start is inclusive
        ("09:00:00", "10:30:00", None, False),  # stop is exclusive
        ("11:00:00", "12:00:00", None, False),
        ("22:00:00", "11:00:00", None, True),  # wraps past midnight
        ("22:00:00", "10:00:00", None, False),
        ("12:00:00", "13:00:00", "Europe/Berlin", True),  # 10:30 UTC = 12:30 CEST
        ("10:00:00", "11:00:00", "Europe/Berlin", False),
    ],
)
def test_time_filter(start: str, stop: str, timezone: str | None, expected: bool) -> None:
    moment = datetime(2024, 5, 1, 10, 30, 0, tzinfo=UTC)
    result = filter_time(TimeFilter(start=start, stop=stop, timezone=timezone), moment)
    assert result.passed is expected, result.reason


def test_time_filter_bad_format_is_an_error() -> None:
    result = filter_time(TimeFilter(start="10am", stop="11:00:00"), datetime(2024, 5, 1, tzinfo=UTC))
    assert not result.passed and result.error


# ---- combining kinds -------------------------------------------------------------------------


def test_filters_logical_operator() -> None:
    filters = EventDependencyFilter(
        data=[df("body.ref", "string", ["dev"])],
        context=EventContext(type="webhook"),
    )
    assert not filter_event(filters, None, event()).passed
    assert not filter_event(filters, "and", event()).passed
    assert filter_event(filters, "or", event()).passed


def test_or_discards_when_a_kind_reports_an_error() -> None:
    # Argo's Filter() turns any reported error into "discarded", even when another kind passed.
    filters = EventDependencyFilter(
        data=[df("body.missing", "string", ["x"])],
        context=EventContext(type="webhook"),
    )
    result = filter_event(filters, "or", event())
    assert not result.passed and result.error


def test_or_with_nothing_configured_does_not_pass() -> None:
    assert not filter_event(EventDependencyFilter(), "or", event()).passed
    assert filter_event(EventDependencyFilter(), "and", event()).passed
    assert filter_event(None, "or", event()).passed


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("return event.body.count == 3", True),
        ("return event.body.count > 5", False),
        ('return string.find(event.body.ref, "^refs/heads/") ~= nil', True),
        ("return 1", False),  # only exactly true passes
        ("return #event.body.commits == 2 and event.body.commits[1].id == 'a'", True),
    ],
)
def test_script_filter(script: str, expected: bool) -> None:
    result = filter_event(EventDependencyFilter(script=script), None, event())
    assert result.passed is expected
    assert [check.kind for check in result.checks] == ["script"]


@pytest.mark.parametrize(
    "script", ["while true do end", "return os.time()", "return io.open('/etc/passwd')", "return (", "error('x')"]
)
def test_script_errors_discard_even_under_or(script: str) -> None:
    filters = EventDependencyFilter(script=script, context=EventContext(type="webhook"))
    result = filter_event(filters, "or", event())
    assert not result.passed and result.error and "script filter" in result.reason


def test_transforms_replace_the_data_before_filtering() -> None:
    jq_dependency = EventDependency.model_validate({
        "name": "d", "eventSourceName": "webhook", "eventName": "example",
        "transform": {"jq": ".body | {ref: .ref, n: .count}"},
        "filters": {"data": [{"path": "n", "type": "number", "value": ["3"]}]},
    })
    result = filter_dependency(jq_dependency, event())
    assert result.passed and result.event is not None and result.event.data == {"ref": "refs/heads/main", "n": 3}
    lua_dependency = EventDependency.model_validate({
        "name": "d", "eventSourceName": "webhook", "eventName": "example",
        "transform": {"script": "event.body.ref = string.upper(event.body.ref); return event"},
        "filters": {"data": [{"path": "body.ref", "type": "string", "value": ["^REFS/"]}]},
    })
    result = filter_dependency(lua_dependency, event())
    assert result.passed and result.event is not None and result.event.data["body"]["ref"] == "REFS/HEADS/MAIN"


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ({"jq": ".body.commits"}, "must be a JSON object"),
        ({"jq": "empty"}, "no output"),
        ({"jq": ".["}, "jq"),
        ({"script": "return 1"}, "not of lua table"),
    ],
)
def test_transform_errors_drop_the_event(transform: dict[str, str], message: str) -> None:
    dependency = EventDependency.model_validate(
        {"name": "d", "eventSourceName": "webhook", "eventName": "example", "transform": transform}
    )
    result = filter_dependency(dependency, event())
    assert not result.passed and message in result.reason


@pytest.mark.parametrize(
    ("path", "kind", "template", "values", "comparator", "expected"),
    [
        # the template gets the path's value as a string in .Input and replaces it
        ("body.ref", "string", "{{ .Input | trimPrefix \"refs/heads/\" }}", ["^main$"], None, True),
        ("body.ref", "string", "{{ .Input | upper }}", ["^REFS/"], None, True),
        ("body.count", "number", "{{ .Input }}0", ["30"], None, True),
        ("body.count", "number", "{{ .Input }}", ["2"], ">", True),
        ("body.action", "bool", "{{ eq .Input \"unlabeled\" }}", ["true"], None, True),
        ("body.action", "bool", "{{ eq .Input \"labeled\" }}", ["true"], None, False),
        # Argo's example: base64-decode the value before comparing
        ("body.b64", "string", "{{ b64dec .Input }}", ["^hello$"], None, True),
    ],
)
def test_data_filter_template(path: str, kind: str, template: str, values: list[str], comparator: str | None,
                              expected: bool) -> None:
    data = {**DATA, "body": {**DATA["body"], "b64": "aGVsbG8="}}
    data_filter = DataFilter(path=path, type=kind, value=values, comparator=comparator, template=template)
    assert filter_data([data_filter], None, data).passed is expected


@pytest.mark.parametrize("template", ["{{ .Input.x }}", "{{ \"\" }}", "{{ .Input | nosuch }}", "{{ if }}"])
def test_data_filter_template_errors_fail_the_filter(template: str) -> None:
    data_filter = DataFilter(path="body.ref", type="string", value=["."], template=template)
    result = filter_data([data_filter], None, DATA)
    assert not result.passed and result.error and "template" in result.reason
