"""govaluate subset: grammar, govaluate's strict types, limits, and no escape hatches."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbridge.errors import ExprError
from eventbridge.sensor.govaluate import evaluate, parse

VARS: dict[str, Any] = {"s": "hello", "n": 10, "f": 2.5, "t": True, "o": {"k": {"v": 1}}, "l": [1, 2]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("2 ** 3 ** 2", 512.0),
        ("10 % 4", 2.0),
        ("-n + 1", -9.0),
        ("7 / 2", 3.5),
        ("1 / 0", float("inf")),
        ("6 & 3 | 8", 10.0),
        ("1 << 4 >> 2", 4.0),
        ("s + n", "hello10"),
        ("s + f", "hello2.5"),
        ("n == 10.0", True),
        ("n == '10'", False),
        ("s > 'a'", True),
        ("s =~ 'l+o$'", True),
        ("s !~ '^h'", False),
        ("n in (1, 10)", True),
        ("n in l", False),
        ("o.k.v == 1", True),
        ("[o] == [o]", True),
        ("t && n > 5 || false", True),
        ("!t || s == 'hello'", True),
        ("t ? 'y' : 'n'", "y"),
        ("false ? 'y' : 'n'", "n"),
        ("l == (1, 2)", True),
        ("false && missing", False),  # short circuit
        ("true || missing", True),
        (r"my\-dep && t", True),
    ],
)
def test_evaluate(expr: str, expected: Any) -> None:
    variables = {**VARS, "my-dep": True}
    assert evaluate(parse(expr), variables) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "missing == 1",  # unknown parameter
        "s > 1",  # mixed comparison
        "t + 1",  # bool arithmetic
        "n && t",  # non-bool logic
        "!n",
        "-s",
        "s =~ '('",  # invalid regex
        "n in 3",
        "1 +",
        "(1",
        "1 2",
        "'unclosed",
        "a $ b",
        "n ? 1 : 2",
    ],
)
def test_errors_are_expr_errors(expr: str) -> None:
    with pytest.raises(ExprError):
        evaluate(parse(expr), VARS)


def test_limits() -> None:
    with pytest.raises(ExprError):
        parse("1 + " * 5000 + "1")
    with pytest.raises(ExprError):
        parse("(" * 100 + "1" + ")" * 100)


def test_no_python_attribute_access() -> None:
    with pytest.raises(ExprError):
        evaluate(parse("s.__class__ == 1"), VARS)


@given(st.text(max_size=60))
def test_parse_only_raises_expr_error(text: str) -> None:
    with contextlib.suppress(ExprError):
        evaluate(parse(text), VARS)


@pytest.mark.parametrize("text", ["a \\", "\\", "1 + \\"])
def test_trailing_backslash_is_an_error_not_a_hang(text: str) -> None:
    with pytest.raises(ExprError):
        parse(text)
