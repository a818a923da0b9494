"""Property tests of what a Sensor does with an event: parameter resolution and application
(``dataKey``, ``dataTemplate``, ``contextKey``, ``dest`` paths, ``useRawData``, operations) and the
data/exprs filters with user regular expressions. Only EventBridgeError comes out, within budget."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fuzz_helpers import guarded, json_values, words
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbridge.events import Event
from eventbridge.models.sensor import DataFilter, ExprFilter, TriggerParameter
from eventbridge.sensor.filters import filter_data, filter_exprs
from eventbridge.sensor.params import MAX_ARRAY_PADDING, apply_params, construct_payload, set_path

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

paths = st.lists(words | st.sampled_from([".", "\\.", ":", "99999999", "#", "*", "|", "@this"]), max_size=6).map(
    "".join
)
templates = st.lists(
    st.sampled_from(["{{", "}}", " ", ".Input", ".Input.body", "toJson", "|", "index", "0", "printf", '"%s"', "x"]),
    max_size=10,
).map("".join)


def event(data: Any) -> Event:
    return Event(
        id="e1", source="src", subject="evt", type="webhook", data=data, namespace="ns",
        time=datetime(2024, 1, 1, tzinfo=UTC),
    )  # fmt: skip


sources = st.fixed_dictionaries(
    {"dependencyName": st.sampled_from(["dep", "other", ""])},
    optional={
        "dataKey": paths,
        "dataTemplate": templates,
        "contextKey": st.sampled_from(["id", "source", "type", "time", "nope", ""]),
        "contextTemplate": templates,
        "value": st.text(max_size=8),
        "useRawData": st.booleans(),
    },
)
parameters = st.builds(
    lambda src, dest, operation: {"src": src, "dest": dest, "operation": operation},
    sources,
    paths,
    st.sampled_from([None, "overwrite", "append", "prepend", "explode"]),
)


@FUZZ
@given(st.lists(parameters, max_size=4), json_values, json_values)
def test_parameters_raise_only_project_errors(raw: list[dict[str, Any]], document: Any, data: Any) -> None:
    params = [TriggerParameter.model_validate(p) for p in raw]
    events = {"dep": event({"body": data, "header": {}})}
    target = document if isinstance(document, dict | list) else {"x": document}
    guarded(lambda: apply_params(target, params, events))
    guarded(lambda: construct_payload(params, events))


def test_setting_far_past_the_end_of_an_array_is_refused_not_allocated() -> None:
    outcome = guarded(lambda: set_path({"items": []}, "items.99999999", 1), trace_memory=True)
    assert "past the end" in str(outcome)
    assert set_path({"items": []}, f"items.{MAX_ARRAY_PADDING}", 1)["items"][-1] == 1
    assert "not an index" in str(guarded(lambda: set_path({"a": []}, "a.²", 1)))


ODD_PATTERNS = ["(a+)+$", "(a|aa)*c", "[", "\\1", "(?<=x)", "(?P<n>x)(?P=n)"]
data_filters = st.fixed_dictionaries(
    {
        "path": paths,
        "type": st.sampled_from(["string", "number", "bool", "", "other"]),
        "value": st.lists(st.text(max_size=12) | st.sampled_from(ODD_PATTERNS), max_size=3),
    },
    optional={"comparator": st.sampled_from(["", "=", "!=", ">", "<", ">=", "<=", "~"]), "template": templates},
)


@FUZZ
@given(st.lists(data_filters, max_size=3), st.sampled_from(["and", "or", "", "xor"]), json_values)
def test_data_filters_raise_nothing_and_stay_within_budget(raw: list[dict[str, Any]], operator: str, body: Any) -> None:
    filters = [DataFilter.model_validate(f) for f in raw]
    result = guarded(lambda: filter_data(filters, operator, {"body": body, "header": {}}))
    assert not isinstance(result, Exception), result  # a filter problem is a failed FilterResult


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=2), json_values)
def test_expr_filters_raise_nothing(expressions: list[str], body: Any) -> None:
    filters = [ExprFilter.model_validate({"expr": text, "fields": [{"name": "x", "path": "body"}]})
               for text in expressions]  # fmt: skip
    result = guarded(lambda: filter_exprs(filters, "and", {"body": body}))
    assert not isinstance(result, Exception), result


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*b", "(x+x+)+y", "^(\\w+\\s?)*$", "^(([a-z])+.)+[A-Z]([a-z])+$"])
def test_catastrophic_filter_regexes_take_linear_time_or_are_refused(pattern: str) -> None:
    data_filter = DataFilter.model_validate({"path": "body.text", "type": "string", "value": [pattern]})
    text = "a" * 50_000 + "!"
    result = guarded(lambda: filter_data([data_filter], "and", {"body": {"text": text}}))
    assert not isinstance(result, Exception)
    assert result.passed is False  # no match (RE2), or refused with a reason (the guarded fallback)
