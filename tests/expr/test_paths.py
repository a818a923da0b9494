"""gjson path wrapper: lookups, missing vs malformed paths, Go stringification."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventbridge.errors import ExprError
from eventbridge.expr.paths import (
    check_path,
    format_number,
    go_bool,
    go_float,
    go_string,
    lookup,
    parse_go_bool,
    parse_go_float,
    value_text,
)

DATA: dict[str, Any] = {
    "header": {"X-GitHub-Event": ["push"]},
    "body": {
        "ref": "refs/heads/main",
        "count": 3,
        "ratio": 1.5,
        "ok": True,
        "nothing": None,
        "fav.movie": "Deer Hunter",
        "commits": [{"id": "abc", "n": 1}, {"id": "def", "n": 2}],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("body.ref", "refs/heads/main"),
        ("body.commits.0.id", "abc"),
        ("body.commits.#", 2),
        ("body.commits.#.id", ["abc", "def"]),
        (r"body.fav\.movie", "Deer Hunter"),
        ('body.commits.#(id=="def").n', 2),
        ("header.X-GitHub-Event.0", "push"),
        ("body.nothing", None),
        ("body.commits|@reverse|0.id", "def"),
    ],
)
def test_lookup_finds_values_like_go_gjson(path: str, expected: Any) -> None:
    assert lookup(DATA, path) == (True, expected)


@pytest.mark.parametrize(
    "path",
    ["body.missing", "body.ref.deeper", "body.commits.9.id", 'body.commits.#(id=="zzz").id', "body.count.0"],
)
def test_missing_paths_are_not_found(path: str) -> None:
    assert lookup(DATA, path) == (False, None)


@pytest.mark.parametrize("path", ["", "body..ref", "body|@nosuchmodifier", "body.commits.#(id==\"x\""])
def test_malformed_paths_raise_expr_error(path: str) -> None:
    with pytest.raises(ExprError):
        lookup(DATA, path)


@pytest.mark.parametrize("path", ["", "body..ref", "@nosuchmodifier", "body.commits.#(id==\"x\""])
def test_check_path_reports_syntax_errors_found_without_data(path: str) -> None:
    assert check_path(path) is not None


def test_check_path_accepts_valid_path() -> None:
    assert check_path("body.commits.#.id") is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("x", "x"),
        (3, "3"),
        (3.0, "3"),
        (1.5, "1.5"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        ({"a": [1, 2], "b": "é"}, '{"a":[1,2],"b":"é"}'),
        ([1, "x", None], '[1,"x",null]'),
    ],
)
def test_value_text_is_go_stringification(value: Any, text: str) -> None:
    assert value_text(value) == text


def test_go_string_prints_null_as_empty_like_gjson_result_string() -> None:
    assert go_string(None) == ""
    assert go_string(2.50) == "2.5"


def test_go_number_and_bool_conversions() -> None:
    assert go_float("2.5") == 2.5
    assert go_float("nope") == 0.0
    assert go_float(True) == 1.0
    assert go_float({"a": 1}) == 0.0
    assert go_bool("TRUE") is True
    assert go_bool(0) is False
    assert go_bool(2) is True
    assert parse_go_bool("t") is True
    assert parse_go_bool("yes") is None
    assert parse_go_float("1e3") == 1000.0
    assert parse_go_float(" 1") is None
    assert parse_go_float("1_000") is None


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_number_round_trips_and_never_uses_exponents(number: float) -> None:
    text = format_number(number)
    assert "e" not in text.lower()
    assert float(text) == number


@given(st.text(max_size=30))
def test_lookup_only_raises_expr_error(path: str) -> None:
    with contextlib.suppress(ExprError):
        lookup(DATA, path)


FAST_DATA = {"a": {"b": [{"c": 1}, {"c": None}], "0": "zero", "x-y": 3, "k:v/w": True}, "l": [[1, 2], [3]]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b.0.c", (True, 1)),
        ("a.b.1.c", (True, None)),
        ("a.b.1.c.d", (False, None)),
        ("a.b.2.c", (False, None)),
        ("a.0", (True, "zero")),  # a digit key on an object is a key
        ("a.x-y", (True, 3)),
        ("a.k:v/w", (True, True)),
        ("l.0.1", (True, 2)),
        ("l.x", (False, None)),
        ("a.b.c", (False, None)),
        ("a.b.01", (True, {"c": None})),  # Go's gjson parses the index with leading zeros
    ],
)
def test_plain_paths_take_the_fast_path_with_gjson_answers(path: str, expected: tuple[bool, Any]) -> None:
    assert lookup(FAST_DATA, path) == expected
