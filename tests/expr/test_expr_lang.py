"""The expr-lang evaluator (Argo's ``{{=...}}`` tags) and its govaluate dialect."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventbridge.errors import ExprError
from eventbridge.expr.lang import MAX_DEPTH, MAX_LENGTH, evaluate, evaluate_bool, format_value, nest
from eventbridge.expr.template import substitute

ENV: dict[str, Any] = nest(
    {
        "inputs.parameters.x": "3",
        "inputs.parameters.my-param": "hello",
        "inputs.parameters.json": '{"some": {"path": [10, 20]}, "name": "n"}',
        "steps.flip-coin.outputs.result": "heads",
        "steps.heads.outputs.result": "it was heads",
        "workflow.name": "wf-1",
        "workflow.parameters": '[{"name":"a"}]',
        "workflow.parameters.a": "A",
    }
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 % 3", 1),
        ("-7 % 3", -1),
        ("2 ** 10", 1024.0),
        ("-2 ** 2", -4.0),
        ("1_000 + 0x10", 1016),
        ("1 == 1.0", True),
        ("'a' + \"b\" + `c\\n`", "abc\\n"),
        ('"tab\\tx"', "tab\tx"),
        ("true && !false", True),
        ("true and not false or false", True),
        ("1 < 2 ? 'yes' : 'no'", "yes"),
        ("nil ?? 'fallback'", "fallback"),
        ("inputs.parameters.nothing ?? 'd'", "d"),
        ("steps.missing?.outputs ?? 'none'", "none"),
        ("2 in [1, 2, 3]", True),
        ("'k' in {k: 1}", True),
        ("4 not in [1, 2]", True),
        ("'abc' matches '^a.c$'", True),
        ("'abc' contains 'b' && 'abc' startsWith 'a' && 'abc' endsWith 'c'", True),
        ("1..4", [1, 2, 3, 4]),
        ("[1, 2, 3][-1]", 3),
        ("[1, 2, 3, 4][1:3]", [2, 3]),
        ("'hello'[1:]", "ello"),
        ("{a: {b: [5]}}.a.b[0]", 5),
        ("filter([1, 2, 3], {# > 1})", [2, 3]),
        ("filter([1, 2, 3], # > 1)", [2, 3]),
        ("map([1, 2], {# * 2})", [2, 4]),
        ("map([{n: 1}, {n: 2}], .n)", [1, 2]),
        ("all([1, 2], # > 0) && any([1, 2], # > 1) && none([1], # > 5) && one([1, 2], # == 1)", True),
        ("count([1, 2, 3], # >= 2)", 2),
        ("[3, 1, 2] | sort()", [1, 2, 3]),
        ("[1, 2, 3] | filter(# > 1) | map(# * 10)", [20, 30]),
        ("len('abc') + len([1]) + len({a: 1})", 5),
        ("upper('a') + lower('B') + trim('  c ')", "Abc"),
        ("split('a,b', ',')", ["a", "b"]),
        ("join(['a', 'b'], '-')", "a-b"),
        ("replace('aXa', 'X', 'Y')", "aYa"),
        ("keys({a: 1})", ["a"]),
        ("int('42') + int(3.9)", 45),
        ("float('1.5')", 1.5),
        ("string(12)", "12"),
        ("toJSON([1])", "[\n  1\n]"),
        ("fromJSON('{\"a\": [1]}').a[0]", 1),
        ("toBase64('hi') == 'aGk=' && fromBase64('aGk=') == 'hi'", True),
        ("max(1, 5, 3) + min([4, 2])", 7),
        ("sum([1, 2, 3])", 6),
        ("first([7, 8]) + last([7, 8])", 15),
        # Argo's own functions and variables
        ("asInt(inputs.parameters.x) + 1", 4),
        ("asFloat(inputs.parameters.x) / 2", 1.5),
        ("toJson([1, 2])", "[1,2]"),
        ("jsonpath(inputs.parameters.json, '$.some.path[1]')", 20),
        ("jsonpath(inputs.parameters.json, '$.name')", "n"),
        ("inputs.parameters['my-param']", "hello"),
        ("steps['flip-coin'].outputs.result == 'heads' ? steps.heads.outputs.result : 'no'", "it was heads"),
        ("workflow.parameters.a", "A"),
        ("sprig.trim('  x  ')", "x"),
        ("sprig.upper('a') + sprig.lower('B')", "Ab"),
        ("sprig.replace('a', 'b', 'aaa')", "bbb"),
        ("sprig.default('d', '')", "d"),
        ("sprig.default('d', 'given')", "given"),
        ("sprig.join(',', ['a', 'b'])", "a,b"),
        ("sprig.splitList(',', 'a,b')", ["a", "b"]),
        ("sprig.split('$', 'a$b')", {"_0": "a", "_1": "b"}),
        ("sprig.b64dec(sprig.b64enc('x'))", "x"),
        ("sprig.int('nope')", 0),
        ("sprig.add(1, 2, 3)", 6),
        ("sprig.trimPrefix('v', 'v1.2')", "1.2"),
        ("sprig.regexMatch('^[0-9]+$', '123')", True),
        ("sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '${1}W')", "-W-xxW-"),
    ],
)
def test_expressions(expression: str, expected: Any) -> None:
    assert evaluate(expression, ENV) == expected


@pytest.mark.parametrize(
    ("expression", "message", "column"),
    [
        ("1 +", "unexpected the end", 4),
        ("(1", "expected ')'", 3),
        ("1 $ 2", "unexpected", 3),
        ("'abc", "unterminated string", 1),
        ("nope(1)", "unknown function 'nope'", 1),
        ("unknown + 1", "unknown name unknown", 1),
        ("1 + 'a'", "'+' needs numbers", 3),
        ("'a' < 1", "cannot compare", 5),
        ("1 && true", "needs bools", 3),
        ("1 / 0", "division by zero", 3),
        ("5 % 0", "divide by zero", 3),
        ("[1][5]", "index out of range", 4),
        ("nil.a", "cannot fetch a from nil", 5),
        ("asInt('x')", "asInt: cannot convert", 1),
        ("'a' matches '('", "invalid regular expression", 5),
        ("#", "only valid inside a predicate", 1),
        ("__import__('os')", "unknown function", 1),
        ("().__class__", "unexpected ')'", 2),
        ("inputs.__class__.__mro__", "cannot fetch __mro__ from nil", 18),
        ("9223372036854775807 + 1", "integer overflow", 21),
        ("repeat('x', 100000000)", "longer than", 1),
        ("1..1000000", "range of more than", 2),
    ],
)
def test_errors_name_the_column(expression: str, message: str, column: int) -> None:
    with pytest.raises(ExprError, match=re.escape(message)) as info:
        evaluate(expression, ENV)
    assert info.value.column == column  # type: ignore[attr-defined]
    assert f"(column {column})" in str(info.value)


def test_limits_on_length_depth_and_steps() -> None:
    with pytest.raises(ExprError, match="longer than"):
        evaluate("1+" * MAX_LENGTH + "1")
    with pytest.raises(ExprError, match="nested deeper"):
        evaluate("(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5))
    with pytest.raises(ExprError, match="steps"):
        evaluate("map(0..99999, map(0..99999, # + 1))")


def test_format_value_follows_argo() -> None:
    assert format_value("s") == "s"
    assert format_value(3) == "3"
    assert format_value(3.0) == "3"
    assert format_value(1.5) == "1.5"
    assert format_value(True) == "true"
    assert format_value([1, "a", {"b": None}]) == '[1,"a",{"b":null}]'
    with pytest.raises(ExprError, match="nil"):
        format_value(None)


def test_evaluate_bool_requires_a_bool() -> None:
    assert evaluate_bool("1 < 2") is True
    with pytest.raises(ExprError, match="true or false"):
        evaluate_bool("1 + 2")


def test_expression_tags_in_templates() -> None:
    scope = {"inputs.parameters.n": "4", "steps.a.outputs.result": "x"}
    assert substitute("n={{=asInt(inputs.parameters.n) * 2}}", scope) == "n=8"
    assert substitute("{{=toJson(map(1..2, {#}))}}", scope) == "[1,2]"
    assert substitute("{{= {a: {b: 1}}.a.b }}", scope) == "1"
    assert substitute("{{=steps.a.outputs.result + '}}'}}", scope) == "x}}"
    with pytest.raises(ExprError, match="nil"):
        substitute("{{=steps.b?.outputs}}", scope)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("heads == heads", True),
        ("tails == heads", False),
        ("my-val == my-val", True),
        ("a.b == a.b", True),
        ("abc =~ '^a' && abc !~ 'z'", True),
        ("3 in (1, 2, 3)", True),
        ("x in (a, b)", False),
        ("1.5 > 1 && 2 >= 2.0", True),
        ("'5' == 5", False),
    ],
)
def test_govaluate_dialect(expression: str, expected: bool) -> None:
    assert evaluate(expression, dialect="govaluate") is expected


def test_govaluate_dialect_has_no_calls_or_members() -> None:
    for text in ("len(x) == 1", "[1][0] == 1", "a ?? b"):
        with pytest.raises(ExprError):
            evaluate_bool(text, dialect="govaluate")


TOKENS = ["in", "not", "nil", "true", "map(", "filter(", "sprig.", "..", "**", "??", "?.", "#index"]
ALPHABET = st.sampled_from([*"abcxyz019 _.,:?!&|=<>+-*/%^#()[]{}'\"`\\$~@", *TOKENS])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ALPHABET, max_size=40).map("".join), st.sampled_from(["expr", "govaluate"]))
def test_random_text_only_ever_raises_expr_error_and_is_fast(text: str, dialect: Any) -> None:
    started = time.perf_counter()
    with contextlib.suppress(ExprError):
        evaluate(text, {"a": {"b": [1, "x"]}, "x": 3}, dialect=dialect)
    assert time.perf_counter() - started < 1.0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_unicode_only_ever_raises_expr_error(text: str) -> None:
    with contextlib.suppress(ExprError):
        format_value(evaluate(text, ENV))
