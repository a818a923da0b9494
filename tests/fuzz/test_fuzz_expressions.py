"""Property tests of the small languages in manifests: expr-lang, govaluate (sensor ``exprs``),
Argo's ``when``, gjson paths and the Go-template subset. Inputs are built from each language's
own tokens (so they reach deep into the parsers), plus hand-written hostile inputs. Whatever the
input: only :class:`EventBridgeError` comes out, within a CPU and memory budget."""

from __future__ import annotations

from typing import Any

import pytest
from fuzz_helpers import guarded, json_values, words
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbridge.errors import ExprError
from eventbridge.expr.gotemplate import render_template
from eventbridge.expr.lang import evaluate
from eventbridge.expr.paths import lookup
from eventbridge.expr.when import evaluate_when
from eventbridge.sensor import govaluate

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXPR_TOKENS = [
    "1", "0x1f", "1e308", "9223372036854775807", "-", "+", "*", "/", "%", "**", "^", "(", ")", "[", "]", "{", "}",
    ",", ":", "?", "??", "?.", ".", "..", "|", "!", "not", "and", "or", "&&", "||", "==", "!=", "<", ">=", "in",
    "matches", "contains", "startsWith", "'a'", '"(a+)+$"', "`raw`", "true", "nil", "body", "body.items", "#",
    "#index", "len", "upper", "split", "join", "repeat", "filter", "map", "all", "any", "count", "toJSON",
    "fromJSON", "int", "float", "string", "keys", "values", "now()", "duration", "date", "sprig.repeat",
    "sprig.regexReplaceAll", "sprig.regexSplit", "sprig.until", "jsonpath", "asInt", "let", "=", ";",
]  # fmt: skip
GOVALUATE_TOKENS = [
    "1", "2.5", "-", "+", "*", "/", "%", "(", ")", ",", "==", "!=", "<", "<=", ">", "=~", "!~", "&&", "||", "!",
    "in", "'a'", '"(x+)+y"', "body", "body.n", "body.items", "true", "false", "heads", "[", "]", "?", ":",
]  # fmt: skip
TEMPLATE_PIECES = [
    "{{", "}}", "{{-", "-}}", " ", ".", ".body", ".Input", "$", "$x", ":=", "=", "|", "(", ")", "range", "if",
    "else", "end", "with", "define", "template", "block", "printf", '"%v"', '"%09999999d"', "len", "index",
    "slice", "eq", "and", "or", "not", "print", "toJson", "repeat", "1000000000", '"x"', "until", "upper",
    "b64enc", "b64dec", "regexReplaceAll", '"(a+)+$"', "text", "1", "-1", "nil", "true",
]  # fmt: skip

environments = st.fixed_dictionaries({"body": json_values, "header": json_values})


def joined(tokens: list[str], max_size: int = 14) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(tokens), max_size=max_size).map(" ".join)


@FUZZ
@given(joined(EXPR_TOKENS), environments)
def test_expr_lang_raises_only_expr_errors(text: str, env: dict[str, Any]) -> None:
    guarded(lambda: evaluate(text, env))


@FUZZ
@given(st.text(max_size=60), environments)
def test_expr_lang_on_arbitrary_text(text: str, env: dict[str, Any]) -> None:
    guarded(lambda: evaluate(text, env))


@FUZZ
@given(joined(GOVALUATE_TOKENS), environments)
def test_govaluate_raises_only_expr_errors(text: str, env: dict[str, Any]) -> None:
    guarded(lambda: govaluate.evaluate(govaluate.parse(text), env))


@FUZZ
@given(joined(GOVALUATE_TOKENS) | st.text(max_size=40))
def test_when_raises_only_expr_errors(text: str) -> None:
    guarded(lambda: evaluate_when(text))


PATH_PIECES = st.sampled_from([*".|#*?@!=<>%[](){},\\\"'^~:", "..", "#(", "@this", "@reverse", "#.", '%"a*"'])


@FUZZ
@given(st.lists(words | PATH_PIECES, min_size=0, max_size=10).map("".join), json_values)
def test_gjson_paths_raise_only_expr_errors(path: str, data: Any) -> None:
    guarded(lambda: lookup({"body": data, "items": [data, data]}, path))


@FUZZ
@given(st.lists(st.sampled_from(TEMPLATE_PIECES), max_size=16).map("".join), json_values)
def test_go_templates_raise_only_expr_errors(source: str, data: Any) -> None:
    guarded(lambda: render_template(source, {"body": data, "Input": data}))


# Hand-written hostile inputs: each must fail with ExprError (or finish) cheaply, never exhaust
# the process. Catastrophic regular expressions are among them: they run on RE2 (or are refused).
HOSTILE_EXPR = [
    "repeat('x', 1000000000)",
    "sprig.repeat(1000000000, 'x')",
    "1..1000000000",
    "map(1..100000, {1..100000})",
    "len(toJSON(map(1..5000, {1..5000})))",
    "(" * 5000 + "1" + ")" * 5000,
    "[" * 5000 + "]" * 5000,
    "-" * 20000 + "1",
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!' matches '(a+)+$'",
    "body.text matches '(a|aa)*c'",
    "sprig.regexReplaceAll('(x+x+)+y', body.text, 'z')",
    "9223372036854775807 + 1",
    "2 ** 100000",
    "fromJSON(repeat('[', 100000))",
]
HOSTILE_GOVALUATE = [
    "body.text =~ '(a+)+$'",
    "body.text !~ '(a|a)*b'",
    "(" * 3000 + "1" + ")" * 3000,
    "body.text =~ '" + "a?" * 500 + "a" * 500 + "'",
]
HOSTILE_TEMPLATES = [
    '{{ printf "%0999999999d" 1 }}',
    '{{ repeat 1000000000 "x" }}',
    "{{ range $i := until 100000000 }}{{ $i }}{{ end }}",
    "{{ range until 10000 }}{{ range until 10000 }}x{{ end }}{{ end }}",
    '{{ regexReplaceAll "(a+)+$" .body.text "b" }}',
    "{{" * 5000,
    '{{ define "t" }}{{ template "t" . }}{{ end }}{{ template "t" . }}',
]
TEXT = {"text": "a" * 30_000 + "!"}


@pytest.mark.parametrize("text", HOSTILE_EXPR, ids=range(len(HOSTILE_EXPR)))
def test_hostile_expressions_stay_within_budget(text: str) -> None:
    outcome = guarded(lambda: evaluate(text, {"body": TEXT}), trace_memory=True)
    assert isinstance(outcome, ExprError | bool | int | float | str | list | dict)


@pytest.mark.parametrize("text", HOSTILE_GOVALUATE, ids=range(len(HOSTILE_GOVALUATE)))
def test_hostile_govaluate_stays_within_budget(text: str) -> None:
    guarded(lambda: govaluate.evaluate(govaluate.parse(text), {"body": TEXT}), trace_memory=True)


@pytest.mark.parametrize("source", HOSTILE_TEMPLATES, ids=range(len(HOSTILE_TEMPLATES)))
def test_hostile_templates_stay_within_budget(source: str) -> None:
    guarded(lambda: render_template(source, {"body": TEXT}), trace_memory=True)
