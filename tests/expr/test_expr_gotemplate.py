"""Go text/template + sprig subset: expected outputs follow Go's and sprig's documented behaviour."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventbridge.errors import ExprError
from eventbridge.expr.gotemplate import (
    MAX_OUTPUT,
    check_template,
    go_format_float,
    go_json,
    render_input,
    render_template,
)

PAYLOAD: dict[str, Any] = {
    "body": {
        "name": "John Smith",
        "message": "hello world",
        "pull_request": {"number": 42, "head": {"sha": "0123456789abcdef"}},
        "count": 3,
        "big": 1000000,
        "ratio": 0.5,
        "tags": ["a", "b", "c"],
        "labels": {"z": 1, "a": "x"},
        "empty": "",
        "nothing": None,
        "yes": True,
    },
    "header": {"X-Event": ["push"]},
}
DATA = {"Input": PAYLOAD}

CASES = [
    # text, actions, field chains
    ("plain text", "plain text"),
    ("{{ .Input.body.name }}", "John Smith"),
    ("{{.Input.body.pull_request.head.sha}}", "0123456789abcdef"),
    ("Hi {{.Input.body.name}},\n\n\tHello.", "Hi John Smith,\n\n\tHello."),
    # Argo's example templates
    ("{{ .Input.body.name | nospace | lower }}-", "johnsmith-"),
    ("{{ .Input.body.pull_request.number }}-{{ .Input.body.pull_request.head.sha | substr 0 7 }}", "42-0123456"),
    ("{{ .Input.body.message | title }}", "Hello World"),
    # Go printing: JSON numbers are float64
    ("{{ .Input.body.count }}", "3"),
    ("{{ .Input.body.big }}", "1e+06"),
    ("{{ .Input.body.ratio }}", "0.5"),
    ("{{ .Input.body.tags }}", "[a b c]"),
    ("{{ .Input.body.labels }}", "map[a:x z:1]"),
    ("{{ .Input.body.missing }}", "<no value>"),
    ("{{ .Input.body.nothing }}", "<no value>"),
    ("{{ .Input.body.missing.deeper }}", "<no value>"),
    ("{{ .Input.body.yes }}", "true"),
    # trimming and comments
    ("a  {{- .Input.body.count -}}  b", "a3b"),
    ("a \n {{- 1 }} \n b", "a1 \n b"),
    ("a {{ 1 -}} \n b", "a 1b"),
    ("{{/* comment */}}x", "x"),
    ("a {{- /* comment */ -}} b", "ab"),
    ("{{-3}}", "-3"),
    # literals
    ('{{ "q\\"uote\\n" }}', 'q"uote\n'),
    ("{{ `raw\\n` }}", "raw\\n"),
    ("{{ 1.5 }} {{ 0x10 }} {{ true }} {{ 'a' }}", "1.5 16 true 97"),
    # pipelines and arguments
    ('{{ "A,B" | lower | splitList "," | join "+" }}', "a+b"),
    ('{{ replace "o" "0" .Input.body.message }}', "hell0 w0rld"),
    ('{{ .Input.body.message | replace "o" "0" | upper }}', "HELL0 W0RLD"),
    ('{{ printf "%s-%d-%v" "x" 7 .Input.body.ratio }}', "x-7-0.5"),
    ("{{ (index .Input.header.X-Event 0) }}", None),  # '-' is not part of a field name: parse error
    ('{{ index .Input.header "X-Event" 0 }}', "push"),
    ("{{ index .Input.body.tags 1 | upper }}", "B"),
    ("{{ (index .Input.body.tags 2) | quote }}", '"c"'),
    ("{{ len .Input.body.tags }} {{ len .Input.body.name }}", "3 10"),
    # variables
    ("{{ $n := .Input.body.name }}{{ $n }}", "John Smith"),
    ("{{ $x := 1 }}{{ $x = add $x 2 }}{{ $x }}", "3"),
    ("{{ $.Input.body.count }}", "3"),
    # if / else if / else
    ("{{ if .Input.body.yes }}y{{ else }}n{{ end }}", "y"),
    ("{{ if .Input.body.empty }}y{{ else }}n{{ end }}", "n"),
    ("{{ if .Input.body.missing }}y{{ else if .Input.body.count }}c{{ else }}n{{ end }}", "c"),
    ("{{ if eq .Input.body.ratio 0.5 }}half{{ end }}", "half"),
    ('{{ if eq .Input.body.name "x" "John Smith" }}one of{{ end }}', "one of"),
    ('{{ if ne .Input.body.name "x" }}ne{{ end }}', "ne"),
    ("{{ if lt .Input.body.count 5.0 }}lt{{ end }}", "lt"),
    ("{{ if and .Input.body.yes .Input.body.count }}and{{ end }}", "and"),
    ("{{ if or .Input.body.empty .Input.body.missing }}or{{ else }}neither{{ end }}", "neither"),
    ("{{ if not .Input.body.empty }}not{{ end }}", "not"),
    ('{{ if eq .Input.body.missing "x" }}y{{ else }}n{{ end }}', "n"),
    # range / with
    ("{{ range .Input.body.tags }}<{{ . }}>{{ end }}", "<a><b><c>"),
    ("{{ range $i, $t := .Input.body.tags }}{{ $i }}={{ $t }};{{ end }}", "0=a;1=b;2=c;"),
    ("{{ range $k, $v := .Input.body.labels }}{{ $k }}:{{ $v }} {{ end }}", "a:x z:1 "),
    ("{{ range .Input.body.missing }}x{{ else }}none{{ end }}", "none"),
    ('{{ range .Input.body.tags }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', "a"),
    ('{{ range .Input.body.tags }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "ac"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ with .Input.body.pull_request }}#{{ .number }}{{ end }}", "#42"),
    ("{{ with .Input.body.missing }}x{{ else }}absent{{ end }}", "absent"),
    ("{{ with .Input.body.empty }}x{{ else with .Input.body.name }}{{ . }}{{ end }}", "John Smith"),
    # sprig subset
    (
        '{{ "  pad  " | trim }}|{{ trimAll "-" "--x--" }}|{{ trimPrefix "v" "v1.2" }}|{{ trimSuffix ".go" "a.go" }}',
        "pad|x|1.2|a",
    ),
    ('{{ "Hello" | upper }} {{ "Hello" | lower }}', "HELLO hello"),
    ('{{ .Input.body.missing | default "fallback" }}', "fallback"),
    ('{{ .Input.body.name | default "fallback" }}', "John Smith"),
    ('{{ default "d" "" }} {{ default "d" 0 }}', "d d"),
    ("{{ empty .Input.body.empty }} {{ empty .Input.body.name }} {{ empty .Input.body.missing }}", "true false true"),
    ('{{ "hi" | b64enc }} {{ "aGk=" | b64dec }}', "aGk= hi"),
    ("{{ toJson .Input.body.labels }}", '{"a":"x","z":1}'),
    ('{{ toJson "<&>" }}', '"\\u003c\\u0026\\u003e"'),
    ('{{ (fromJson "{\\"a\\": [1, 2]}").a }}', "[1 2]"),
    ('{{ $p := split "/" "org/repo" }}{{ $p._1 }}', "repo"),
    ('{{ contains "ell" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }}', "true true true"),
    ("{{ add 1 2 3 }} {{ sub 10 .Input.body.count }} {{ add .Input.body.ratio 1 }}", "6 7 1"),
    ('{{ quote "a" 1 }}', '"a" "1"'),
    ('{{ substr 2 100 "abcdef" }} {{ substr -1 2 "abcdef" }}', "cdef ab"),
    ('{{ "x" | repeat 3 }}', "xxx"),
    ('{{ "abcdef" | trunc 3 }}', "abc"),
    ('{{ sha256sum "a" | trunc 8 }}', "ca978112"),
]


@pytest.mark.parametrize(("template", "expected"), CASES)
def test_render(template: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ExprError):
            render_template(template, DATA)
    else:
        assert render_template(template, DATA) == expected


ERRORS = [
    ("{{ .Input.body.nothing.deeper }}", "nil pointer evaluating interface {}.deeper"),
    ("{{ .Input.body.name.first }}", "can't evaluate field first in type string"),
    ("{{ eq .Input.body.count 3 }}", "incompatible types for comparison"),
    ("{{ .Input.body.count | lower }}", "expected string; got float64"),
    ("{{ .Input.body.missing | lower }}", "invalid value; expected string"),
    ('{{ env "HOME" }}', "no environment access"),
    ('{{ expandenv "$HOME" }}', "no environment access"),
    ("{{ nosuchfunc 1 }}", "not defined"),
    ("{{ if .Input }}x", "has no {{end}}"),
    ("x{{ end }}", "unexpected {{end}}"),
    ("{{ else }}", "unexpected {{else}}"),
    ("{{ .Input", "unclosed action"),
    ("{{ break }}", "outside {{range}}"),
    ('{{ "unterminated }}', "unterminated"),
    ("{{ index .Input.body.tags 9 }}", "index out of range"),
    ("{{ index .Input.body.tags 0.5 }}", "cannot index"),
    ("{{ range .Input.body.name }}{{ end }}", "range can't iterate"),
    ("{{ .Input.body.name 1 }}", "not a method but has arguments"),
    ("{{ 1 | 2 }}", "non executable command"),
    ("{{ lower }}", "wrong number of args"),
    ('{{ "x" | repeat 5000000 }}', "too large"),
    ("{{ range 10000000 }}{{ end }}", "exceeds"),
    ('{{ define "x" }}{{ end }}', "not supported"),
]


@pytest.mark.parametrize(("template", "message"), ERRORS)
def test_errors(template: str, message: str) -> None:
    with pytest.raises(ExprError, match=None) as caught:
        render_template(template, DATA)
    assert message in str(caught.value)


def test_check_template_reports_parse_errors_with_position() -> None:
    assert check_template("{{ .Input.body }}") is None
    problem = check_template("line one\n  {{ if }}")
    assert problem is not None and "template:2:3" in problem


def test_render_input_rejects_empty_and_no_value_like_argo() -> None:
    assert render_input("{{ .Input.a }}", {"a": "x"}) == "x"
    with pytest.raises(ExprError, match="empty string or no value"):
        render_input("{{ .Input.b }}", {"a": "x"})
    with pytest.raises(ExprError, match="empty string or no value"):
        render_input("{{ .Input.a }}", {"a": ""})


def test_data_filter_template_input_is_the_string_value() -> None:
    # Argo passes the path result as a string to data filter templates
    assert render_input("{{ b64dec .Input }}", "aGVsbG8=") == "hello"


def test_output_is_bounded() -> None:
    big = {"Input": "x" * 1000}
    template = "{{ range 2000 }}{{ $.Input }}{{ end }}"
    with pytest.raises(ExprError, match=str(MAX_OUTPUT)):
        render_template(template, big)


@pytest.mark.parametrize(
    ("number", "go_v", "go_json_text"),
    [
        (0.0, "0", "0"),
        (3.0, "3", "3"),
        (0.1, "0.1", "0.1"),
        (123456.0, "123456", "123456"),
        (1234567.0, "1.234567e+06", "1234567"),
        (1e21, "1e+21", "1e+21"),
        (0.0001, "0.0001", "0.0001"),
        (0.00001, "1e-05", "0.00001"),
        (1e-7, "1e-07", "1e-7"),
        (-2.5, "-2.5", "-2.5"),
    ],
)
def test_go_float_formatting(number: float, go_v: str, go_json_text: str) -> None:
    assert go_format_float(number) == go_v
    assert go_format_float(number, json_style=True) == go_json_text


def test_go_json_sorts_keys_and_is_compact() -> None:
    assert go_json({"b": [1, 2.5, None], "a": True}) == '{"a":true,"b":[1,2.5,null]}'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}-. |$()\"`'abIn1 =:,/*ei\n", max_size=40))
def test_arbitrary_text_only_raises_expr_error(text: str) -> None:
    with contextlib.suppress(ExprError):
        render_template(text, DATA)
