"""Trigger parameter resolution and application, following Argo's params.go."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from eventbridge.errors import PermanentError
from eventbridge.events import Event
from eventbridge.models.sensor import TriggerParameter, TriggerParameterSource
from eventbridge.sensor.params import (
    apply_params,
    get_path,
    resolve_param_value,
    set_path,
    whole_event_json,
)

EVENT = Event(
    id="abc123",
    source="webhook",
    subject="example",
    type="webhook",
    data={"body": {"message": "hello", "n": 3, "ratio": 2.0, "ok": True, "none": None,
                   "obj": {"a": 1}, "list": [1, 2]}},
    time=datetime(2024, 5, 1, 10, 30, 0, 123456, tzinfo=UTC),
)
EVENTS = {"dep": EVENT}


def src(**fields: Any) -> TriggerParameterSource:
    return TriggerParameterSource.model_validate({"dependencyName": "dep", **fields})


def param(dest: str, operation: str | None = None, **fields: Any) -> TriggerParameter:
    return TriggerParameter(src=src(**fields), dest=dest, operation=operation)


@pytest.mark.parametrize(
    ("fields", "text", "kind"),
    [
        ({"dataKey": "body.message"}, "hello", "String"),
        ({"dataKey": "body.n"}, "3", "Number"),
        ({"dataKey": "body.ratio"}, "2", "Number"),
        ({"dataKey": "body.ok"}, "true", "True"),
        ({"dataKey": "body.none"}, "null", "Null"),
        ({"dataKey": "body.obj"}, '{"a":1}', "JSON"),
        ({"dataKey": "body.list"}, "[1,2]", "JSON"),
        ({"dataKey": "body.missing", "value": "fallback"}, "fallback", "String"),
        ({"value": "constant"}, "constant", "String"),
        ({"contextKey": "id"}, "abc123", "String"),
        ({"contextKey": "type"}, "webhook", "String"),
        ({"contextKey": "time"}, "2024-05-01T10:30:00Z", "String"),
        ({"contextKey": "id", "dataKey": "body.message"}, "hello", "String"),  # data wins
        # dataTemplate wins over dataKey, and its result is always a String
        ({"dataTemplate": "{{ .Input.body.message }}", "dataKey": "body.n"}, "hello", "String"),
        ({"dataTemplate": "{{ .Input.body.message | upper }}-{{ .Input.body.n }}"}, "HELLO-3", "String"),
        ({"dataTemplate": "{{ .Input.body.obj.a }}"}, "1", "String"),
        # an empty / <no value> / failing template falls back to the key, then to value
        ({"dataTemplate": "{{ .Input.body.missing }}", "dataKey": "body.n"}, "3", "Number"),
        ({"dataTemplate": "{{ .Input.body.none.x }}", "value": "v"}, "v", "String"),
        ({"dataTemplate": "{{ .Input.body.message | lower }}", "value": "v"}, "hello", "String"),
        ({"contextTemplate": "{{ .Input.subject | title }}"}, "Example", "String"),
        ({"contextTemplate": "{{ .Input.type }}/{{ .Input.source }}"}, "webhook/webhook", "String"),
        # data selectors win over context ones, templates included
        ({"contextTemplate": "{{ .Input.id }}", "dataTemplate": "{{ .Input.body.message }}"}, "hello", "String"),
    ],
)
def test_resolve_param_value(fields: dict[str, Any], text: str, kind: str) -> None:
    resolved = resolve_param_value(src(**fields), EVENTS)
    assert resolved is not None
    assert (resolved.text, resolved.type) == (text, kind)


def test_whole_event_when_no_selector_and_no_value() -> None:
    resolved = resolve_param_value(src(), EVENTS)
    assert resolved is not None and resolved.type == "String"
    decoded = json.loads(resolved.text)
    assert decoded["context"]["id"] == "abc123"
    assert decoded["context"]["subject"] == "example"
    assert json.loads(base64.b64decode(decoded["data"])) == EVENT.data
    assert resolved.text == whole_event_json(EVENT)


def test_absent_dependency_uses_value_or_skips() -> None:
    assert resolve_param_value(src(dataKey="body.message"), {}) is None
    resolved = resolve_param_value(src(dataKey="body.message", value="default"), {})
    assert resolved is not None and resolved.text == "default"


def test_unresolvable_parameter_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="unable to resolve 'dep' parameter value"):
        resolve_param_value(src(dataKey="body.missing"), EVENTS)


def test_non_json_content_type_falls_back_to_value_or_fails() -> None:
    text_event = Event(id="t", source="s", subject="e", type="webhook", data="plain",
                       datacontenttype="text/plain")
    resolved = resolve_param_value(src(dataKey="body", value="v"), {"dep": text_event})
    assert resolved is not None and resolved.text == "v"
    with pytest.raises(PermanentError, match="unsupported event content type"):
        resolve_param_value(src(dataKey="body"), {"dep": text_event})


WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "hello-", "labels": {"app": "x"}},
    "spec": {"arguments": {"parameters": [{"name": "message", "value": "default"}]}, "list": ["a"]},
}


def test_apply_params_overwrites_at_dest_and_does_not_mutate_input() -> None:
    parameters = [param("spec.arguments.parameters.0.value", dataKey="body.message")]
    result = apply_params(WORKFLOW, parameters, EVENTS)
    assert result["spec"]["arguments"]["parameters"][0]["value"] == "hello"
    assert WORKFLOW["spec"]["arguments"]["parameters"][0]["value"] == "default"


def test_numbers_are_strings_unless_use_raw_data() -> None:
    as_string = apply_params({}, [param("a.n", dataKey="body.n")], EVENTS)
    assert as_string == {"a": {"n": "3"}}
    raw = apply_params({}, [param("a.n", dataKey="body.n", useRawData=True),
                            param("a.o", dataKey="body.obj", useRawData=True),
                            param("a.b", dataKey="body.ok", useRawData=True),
                            param("a.z", dataKey="body.none", useRawData=True),
                            param("a.s", dataKey="body.message", useRawData=True)], EVENTS)
    assert raw == {"a": {"n": 3, "o": {"a": 1}, "b": True, "z": None, "s": "hello"}}


def test_append_and_prepend_concatenate_strings() -> None:
    result = apply_params(
        WORKFLOW,
        [
            param("metadata.generateName", "append", dataKey="body.message"),
            param("metadata.labels.app", "prepend", dataKey="body.n", useRawData=True),
            param("metadata.labels.new", "append", value="v"),
        ],
        EVENTS,
    )
    assert result["metadata"]["generateName"] == "hello-hello"
    assert result["metadata"]["labels"]["app"] == "3x"  # prepend coerces to a string
    assert result["metadata"]["labels"]["new"] == "v"


def test_unknown_operation_fails() -> None:
    with pytest.raises(PermanentError, match="unsupported trigger parameter operation"):
        apply_params({}, [param("a", "replace", value="v")], EVENTS)


def test_skipped_parameter_leaves_document_alone() -> None:
    parameter = TriggerParameter(src=TriggerParameterSource(dependency_name="other", data_key="x"), dest="a")
    assert apply_params({"a": 1}, [parameter], EVENTS) == {"a": 1}


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({}, "a.b", {"a": {"b": "V"}}),
        ({"l": ["x", "y"]}, "l.1", {"l": ["x", "V"]}),
        ({"l": ["x"]}, "l.-1", {"l": ["x", "V"]}),
        ({"l": ["x"]}, "l.3", {"l": ["x", None, None, "V"]}),
        ({}, "l.0.name", {"l": [{"name": "V"}]}),
        ({}, "l.-1", {"l": ["V"]}),
        ({"m": {}}, "m.:1", {"m": {"1": "V"}}),
        ({}, "m.:1.x", {"m": {"1": {"x": "V"}}}),
        ({}, r"a\.b", {"a.b": "V"}),
        ({"m": {"0": "old"}}, "m.0", {"m": {"0": "V"}}),
        ({"a": "scalar"}, "a.b", {"a": {"b": "V"}}),
    ],
)
def test_set_path_sjson_semantics(document: dict[str, Any], path: str, expected: dict[str, Any]) -> None:
    assert set_path(document, path, "V") == expected


def test_set_path_errors() -> None:
    with pytest.raises(PermanentError):
        set_path({}, "", "V")
    with pytest.raises(PermanentError):
        set_path({"l": []}, "l.name", "V")


def test_get_path() -> None:
    assert get_path({"l": [{"a": 1}]}, "l.0.a") == (True, 1)
    assert get_path({"l": []}, "l.0") == (False, None)


def test_failing_template_without_fallback_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="unable to resolve 'dep' parameter value"):
        resolve_param_value(src(dataTemplate="{{ .Input.body.missing }}"), EVENTS)
